"""Several "hosts" on one machine, made with Linux network namespaces, for the multi-host tests.

``Fleet.start()`` makes one server namespace and three worker namespaces:

    server namespace  <name>-srv   bridge br0 10.77.0.1/24, redis-server bound to 10.77.0.1:6379
                                   veths vh1 vh2 vh3 (enslaved to br0)
    worker namespaces <name>-h1..3 eth0 = 10.77.0.11..13/24, the other end of vh1..vh3

Everything lives inside the fleet's own namespaces, so the root namespace gets no address, route or
interface, and fleets of parallel runs (each with its own names) never collide even though they use the
same subnet. Workers run as ``ip netns exec <host> python ...`` and reach Redis over their veth, through
the bridge; the test process itself talks to the same redis-server through a unix socket in a temporary
folder (file system paths are not per network namespace), to read counters and set flags.

``<name>`` is ``oxmh-<pid of the test process>-<random hex>``. ``Fleet.start()`` first removes what a
killed earlier run left (namespaces of this prefix whose test process is gone, and every process still
inside them), and ``Fleet.close()`` removes everything it made, whatever state the test left it in.

Making namespaces needs root and iproute2's ``ip``, and the server needs Debian's ``redis-server``.
``require_fleet`` skips a test when they are missing or do not work, and fails it instead under
OXICACHE_REQUIRE_SERVERS=1 (as ``servers.require_server`` does for the database and Redis servers).

Import as top-level ``multihost_support`` (pytest puts tests/multihost on sys.path).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from servers import REQUIRE_ENV

NAME_PREFIX = "oxmh-"
SUBNET = "10.77.0"
SERVER_ADDR = f"{SUBNET}.1"
REDIS_PORT = 6379  # the server namespace's own port space: no other redis can hold it
HOSTS = 3
BRIDGE = "br0"
HOST_IF = "eth0"  # each worker's interface, inside its namespace
IP_TIMEOUT = 20  # seconds for one `ip` command


class FleetUnavailable(Exception):
    """Namespaces, veths or the server cannot be made here (not root, no `ip`, no redis-server...)."""


def _ip(*args: str) -> str:
    """Runs ``ip ARGS``; raises CalledProcessError with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, ["ip", *args], done.stdout, done.stderr)
    return done.stdout


def _namespaces() -> list[str]:
    # `ip netns list` prints "name" or "name (id: N)"
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _remove_namespace(ns: str) -> None:
    """Kills every process inside ``ns`` (workers, a redis-server) and deletes it (its veths go with it)."""
    try:
        pids = [int(p) for p in _ip("netns", "pids", ns).split()]
    except (subprocess.CalledProcessError, ValueError):
        pids = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        _ip("netns", "del", ns)
    except subprocess.CalledProcessError:
        pass


def remove_leftovers() -> list[str]:
    """Deletes the namespaces (and their processes) of earlier runs whose test process is gone; the
    namespaces of a run still going on (its pid alive) are left alone. Returns what was removed."""
    removed = []
    for ns in _namespaces():
        if not ns.startswith(NAME_PREFIX):
            continue
        owner = ns[len(NAME_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and Path(f"/proc/{owner}").exists():
            continue  # a live run (possibly in parallel with this one)
        _remove_namespace(ns)
        removed.append(ns)
    return removed


def _unavailable_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "making network namespaces needs root (ip netns add)"
    for tool in ("ip", "redis-server"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH (iproute2 and redis-server are needed)"
    if importlib.util.find_spec("redis") is None:
        return "redis-py is not installed; install the `test` extra"
    return None


def require_fleet(fleet_factory: Any) -> Fleet:
    """``fleet_factory()``, or a skip (a failure under OXICACHE_REQUIRE_SERVERS=1) saying why no fleet
    of namespaces can be made here."""
    problem = _unavailable_reason()
    if problem is None:
        try:
            return fleet_factory()
        except FleetUnavailable as exc:
            problem = str(exc)
    message = f"cannot make network namespaces for the multi-host tests: {problem}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(message)


class Fleet:
    """One server namespace with redis-server, and HOSTS worker namespaces linked to it."""

    def __init__(self, workdir: Path) -> None:
        self.name = f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.server_ns = f"{self.name}-srv"
        self.hosts = [f"{self.name}-h{i}" for i in range(1, HOSTS + 1)]
        self.addresses = {host: f"{SUBNET}.{10 + i}" for i, host in enumerate(self.hosts, 1)}
        self.server_veths = {host: f"vh{i}" for i, host in enumerate(self.hosts, 1)}
        self.workdir = workdir
        self.socket = workdir / "redis.sock"
        self.url = f"redis://{SERVER_ADDR}:{REDIS_PORT}/0"  # as the workers reach it
        self.redis_process: subprocess.Popen[bytes] | None = None
        self._made: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []

    # ---- making and removing -------------------------------------------------------------------------
    @classmethod
    def start(cls, workdir: Path) -> Fleet:
        fleet = cls(workdir)
        try:
            remove_leftovers()
            fleet._make_namespaces()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            fleet.close()
            detail = getattr(exc, "stderr", None) or ""
            raise FleetUnavailable(f"{exc} {detail.strip()}".strip()) from exc
        try:
            fleet._start_redis()
        except BaseException:
            fleet.close()
            raise
        return fleet

    def _make_namespaces(self) -> None:
        for ns in (self.server_ns, *self.hosts):
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        srv = self.server_ns
        _ip("-n", srv, "link", "add", BRIDGE, "type", "bridge")
        _ip("-n", srv, "addr", "add", f"{SERVER_ADDR}/24", "dev", BRIDGE)
        _ip("-n", srv, "link", "set", BRIDGE, "up")
        for host in self.hosts:
            veth = self.server_veths[host]
            # made in the server namespace, its peer moved into the host's namespace as eth0
            _ip("-n", srv, "link", "add", veth, "type", "veth", "peer", "name", HOST_IF, "netns", host)
            _ip("-n", srv, "link", "set", veth, "master", BRIDGE)
            _ip("-n", srv, "link", "set", veth, "up")
            _ip("-n", host, "addr", "add", f"{self.addresses[host]}/24", "dev", HOST_IF)
            _ip("-n", host, "link", "set", HOST_IF, "up")

    def _start_redis(self) -> None:
        import redis

        log = open(self.workdir / "redis.log", "wb")  # noqa: SIM115 - the server's lifetime
        try:
            self.redis_process = subprocess.Popen(
                ["ip", "netns", "exec", self.server_ns, "redis-server",
                 "--bind", SERVER_ADDR, "--port", str(REDIS_PORT), "--protected-mode", "no",
                 "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                 "--dir", str(self.workdir), "--save", "", "--appendonly", "no", "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.redis_process.poll() is not None:
                raise FleetUnavailable(f"redis-server exited with {self.redis_process.returncode}: {self.redis_log()}")
            if self.socket.exists():
                client = self.client()
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise FleetUnavailable(f"redis-server did not answer within 20 s: {self.redis_log()}")
            time.sleep(0.02)

    def redis_log(self) -> str:
        try:
            return (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def close(self) -> None:
        """Kills the workers and the server and deletes the namespaces (with their veths and bridge)."""
        for process in self._processes:
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pass
            _close_pipes(process)
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.kill()
            self.redis_process.wait(10)
        for ns in reversed(self._made):
            _remove_namespace(ns)
        self._made.clear()

    # ---- using it ------------------------------------------------------------------------------------
    def client(self) -> Any:
        """A redis-py client of the test process (through the unix socket)."""
        import redis

        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=10, socket_connect_timeout=10)

    def python(self, host: str, script: str, *args: str, **popen: Any) -> subprocess.Popen[Any]:
        """``python -c script args`` on ``host`` (the environment is passed through; `ip netns exec`
        runs the program in place of itself, so the Popen's pid is the interpreter's)."""
        process = subprocess.Popen(["ip", "netns", "exec", host, sys.executable, "-c", script, *args], **popen)
        self._processes.append(process)
        return process

    def agent(self, host: str, script: str) -> Agent:
        return Agent(self.python(host, script, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True), host)

    def cut(self, host: str, where: str) -> None:
        """Takes ``host`` off the network. ``where="host"``: its own interface goes down (its sends
        fail at once: no route); ``where="server"``: the server's end goes down, so the host's link loses
        its carrier and what it sends is silently lost (a partition: only timeouts tell)."""
        ns, dev = self._link(host, where)
        _ip("-n", ns, "link", "set", dev, "down")

    def restore(self, host: str, where: str) -> None:
        ns, dev = self._link(host, where)
        _ip("-n", ns, "link", "set", dev, "up")

    def _link(self, host: str, where: str) -> tuple[str, str]:
        if where == "host":
            return host, HOST_IF
        if where == "server":
            return self.server_ns, self.server_veths[host]
        raise ValueError(where)


def child(url: str, prefix: str, body: str, **options: object) -> str:
    """A worker script: ``raw`` (a redis-py client of the shared server), ``cache`` (a RedisCache on
    ``prefix`` with ``options``), then ``body``."""
    return textwrap.dedent(
        f"""
        import json, sys, threading, time, warnings
        import oxicache, redis
        raw = redis.Redis.from_url({url!r}, socket_timeout=30, socket_connect_timeout=30)
        cache = oxicache.RedisCache({url!r}, prefix={prefix!r}, **{options!r})
        """
    ) + textwrap.dedent(body)


class Agent:
    """A worker process driven line by line: each JSON command written to its stdin is answered by one
    JSON line on its stdout. Replies are read by a thread, so a worker that hangs fails the test with a
    timeout rather than hanging it."""

    def __init__(self, process: subprocess.Popen[str], host: str) -> None:
        self.process, self.host = process, host
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._drain, daemon=True)]
        for reader in self._threads:
            reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # read as it comes: a full pipe would block the worker
            self._stderr.append(line)

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def reply(self, timeout: float = 60) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.process.kill()
            pytest.fail(f"the worker on {self.host} did not answer within {timeout} s (a hang)")
        if line is None:
            self.process.wait(10)
            time.sleep(0.1)  # the rest of its stderr
            pytest.fail(f"the worker on {self.host} exited ({self.process.returncode}): {''.join(self._stderr)}")
        return json.loads(line)

    def ask(self, timeout: float = 60, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.reply(timeout)

    def stop(self) -> None:
        """Ends the worker (its stdin closed, then killed if it does not exit) and closes its pipes."""
        try:
            if self.process.stdin is not None and not self.process.stdin.closed:
                self.process.stdin.close()
        except OSError:
            pass  # it is gone already (a broken pipe)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for reader in self._threads:
            reader.join(5)
        _close_pipes(self.process)


def _close_pipes(process: subprocess.Popen[Any]) -> None:
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
