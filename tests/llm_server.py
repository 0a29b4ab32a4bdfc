"""A small OpenAI-compatible chat server on loopback, for the LLM tests.

``ChatServer()`` listens on 127.0.0.1 (a free port) in a daemon thread and answers
``POST /v1/chat/completions``, plain or streamed as server-sent events (``"stream": true``). Replies are
derived from the request only: ``reply_for(body)`` is the text, so a reply served for the wrong request
shows. Each response gets a fresh ``id`` (``chatcmpl-<n>``, n counting requests), so a replayed
response is told apart from a new one. The server records every request (``requests``: path, headers,
JSON body) and can be told to fail the next request with an HTTP error (``fail_next``), to drop the
connection in the middle of the next stream (``break_next_stream``) or to send an error event in it
(``error_next_stream``).

It can also answer as servers other than OpenAI do: ``style = "tgi"`` sends replies as
text-generation-inference does (``finish_reason: "eos"``, no ``created``, ``system_fingerprint``),
which the SDK accepts without validating; ``error_body_next()`` answers the next request with HTTP 200
and an ``{"error": ...}`` body (some proxies do); ``cut_next_stream()`` ends the next stream cleanly
before its finish_reason; ``tools_only = True`` streams a tool call and no text; ``chunk_delay`` slows
streams down (seconds per chunk). ``connections`` counts the TCP connections opened, ``open_connections``
those still open.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ChatServer", "Request", "pieces_of", "reply_for", "tool_arguments"]

# Request fields that do not change the reply text (as a real model's reply does not depend on them).
_NOT_IN_REPLY = ("stream", "stream_options", "user", "metadata", "store")


def reply_for(body: dict[str, Any], index: int = 0) -> str:
    """The reply text for a request: the last message echoed, plus a digest of everything else that
    should change the output (model, messages, sampling parameters, tools, ...)."""
    messages = body.get("messages") or [{}]
    last = messages[-1].get("content")
    shaping = {k: v for k, v in body.items() if k not in _NOT_IN_REPLY}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:10]
    suffix = f" #{index}" if index else ""
    return f"{body.get('model')} answers {last!s} [{digest}]{suffix}"


def pieces_of(text: str) -> list[str]:
    """How the server splits a reply into streamed pieces: words with their trailing spaces."""
    return re.findall(r"\S+\s*", text)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Faults:
    fail_status: int | None = None
    break_after: int | None = None
    error_after: int | None = None
    error_body: bool = False
    cut: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (a cancelled stream, a closed client) is part of the tests, not an
    error: socketserver would print its ConnectionResetError/BrokenPipeError traceback in the test output."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ChatServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.style = "openai"
        self.tools_only = False
        self.chunk_delay = 0.0
        self.connections = 0
        self.open_connections = 0
        self._lock = threading.Lock()
        self._faults = _Faults()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="llm-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL to give the client (``.../v1``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def count(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.requests)

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests]

    def fail_next(self, status: int = 500) -> None:
        """The next request gets this HTTP status with an OpenAI-style error body."""
        with self._faults.lock:
            self._faults.fail_status = status

    def break_next_stream(self, after: int = 2) -> None:
        """The next streamed response drops the connection after ``after`` chunks (no end of body)."""
        with self._faults.lock:
            self._faults.break_after = after

    def error_next_stream(self, after: int = 2) -> None:
        """The next streamed response sends an error event after ``after`` chunks, then ends."""
        with self._faults.lock:
            self._faults.error_after = after

    def error_body_next(self) -> None:
        """The next request gets HTTP 200 with ``{"error": {...}}`` as its body, and no choices."""
        with self._faults.lock:
            self._faults.error_body = True

    def cut_next_stream(self, done: bool = False) -> None:
        """The next stream ends cleanly after its text, without a finish_reason (and with ``[DONE]``
        only when ``done``)."""
        with self._faults.lock:
            self._faults.cut = "done" if done else "silent"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=30)

    # ---- used by the handler ---------------------------------------------------------------------
    def _record(self, request: Request) -> int:
        with self._lock:
            self.requests.append(request)
            return len(self.requests)

    def _take_fail(self) -> int | None:
        with self._faults.lock:
            status, self._faults.fail_status = self._faults.fail_status, None
            return status

    def _take_stream_fault(self) -> tuple[int | None, int | None, str | None]:
        with self._faults.lock:
            f = self._faults
            taken = (f.break_after, f.error_after, f.cut)
            f.break_after = f.error_after = f.cut = None
            return taken

    def _take_error_body(self) -> bool:
        with self._faults.lock:
            taken, self._faults.error_body = self._faults.error_body, False
            return taken

    def _connection(self, change: int) -> None:
        with self._lock:
            self.open_connections += change
            self.connections += max(change, 0)


def _head(server: ChatServer, number: int, obj: str, model: Any) -> dict[str, Any]:
    if server.style == "tgi":  # no `created`; a fingerprint instead
        return {"id": f"chatcmpl-{number}", "object": obj, "model": model, "system_fingerprint": "3.0.1-native"}
    return {"id": f"chatcmpl-{number}", "object": obj, "created": 1700000000 + number, "model": model}


def _completion(server: ChatServer, body: dict[str, Any], number: int) -> dict[str, Any]:
    n = int(body.get("n") or 1)
    stop = "eos" if server.style == "tgi" else "stop"
    choices = [
        {"index": i, "message": {"role": "assistant", "content": reply_for(body, i)}, "finish_reason": stop, "logprobs": None}
        for i in range(n)
    ]
    words = sum(len(pieces_of(c["message"]["content"])) for c in choices)
    return {
        **_head(server, number, "chat.completion", body.get("model")),
        "choices": choices,
        "usage": {"prompt_tokens": len(json.dumps(body.get("messages"))) // 4, "completion_tokens": words,
                  "total_tokens": len(json.dumps(body.get("messages"))) // 4 + words},
    }


def tool_arguments(body: dict[str, Any]) -> str:
    """The arguments of the tool call a tools-only stream makes, in full."""
    return json.dumps({"answer": reply_for(body)})


def _chunks(server: ChatServer, body: dict[str, Any], number: int, cut: str | None = None) -> list[dict[str, Any]]:
    base = _head(server, number, "chat.completion.chunk", body.get("model"))
    stop = "eos" if server.style == "tgi" else ("tool_calls" if server.tools_only else "stop")
    out: list[dict[str, Any]] = []
    n = int(body.get("n") or 1)
    for i in range(n):
        out.append({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        if server.tools_only:
            args = tool_arguments(body)
            call = {"index": 0, "id": f"call-{number}", "type": "function", "function": {"name": "answer", "arguments": ""}}
            out.append({**base, "choices": [{"index": i, "delta": {"tool_calls": [call]}, "finish_reason": None}]})
            for at in range(0, len(args), 8):
                part = {"index": 0, "function": {"arguments": args[at:at + 8]}}
                out.append({**base, "choices": [{"index": i, "delta": {"tool_calls": [part]}, "finish_reason": None}]})
        else:
            for piece in pieces_of(reply_for(body, i)):
                out.append({**base, "choices": [{"index": i, "delta": {"content": piece}, "finish_reason": None}]})
        if cut is None:
            out.append({**base, "choices": [{"index": i, "delta": {}, "finish_reason": stop}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        out.append({**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": len(out), "total_tokens": len(out) + 1}})
    return out


def _handler_for(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            number = server._record(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions" or not isinstance(body, dict):
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                return
            fail_status = server._take_fail()
            if fail_status is not None:
                self._json(fail_status, {"error": {"message": "told to fail", "type": "server_error", "code": None}})
                return
            if server._take_error_body():
                self._json(200, {"error": {"message": "upstream overloaded", "type": "proxy_error", "code": 529}})
                return
            if body.get("stream"):
                self._stream(body, number)
            else:
                self._json(200, _completion(server, body, number))

        def setup(self) -> None:
            super().setup()
            server._connection(+1)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                server._connection(-1)

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _stream(self, body: dict[str, Any], number: int) -> None:
            break_after, error_after, cut = server._take_stream_fault()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for sent, chunk in enumerate(_chunks(server, body, number, cut)):
                if server.chunk_delay:
                    time.sleep(server.chunk_delay)
                if break_after is not None and sent == break_after:
                    # drop the connection mid-body: no terminating chunk, no [DONE]
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if error_after is not None and sent == error_after:
                    event = {"error": {"message": "told to break the stream", "type": "server_error"}}
                    self._chunk(f"data: {json.dumps(event)}\n\n".encode())
                    break
                self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            else:
                if cut != "silent":
                    self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")  # the terminating zero-length chunk

    return Handler
