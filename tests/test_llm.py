"""``oxicache.llm`` against a real OpenAI-compatible HTTP server on loopback (tests/llm_server.py).

The ``openai`` SDK talks HTTP to ``ChatServer``, which counts the requests it receives: "served from the
cache" means the server saw no new request, and "the right reply" means the text equals what the server
derives from the request (``reply_for``), so a reply served for another request shows.

Every call is made through one of four kinds (``oracle``, ``stream``, ``aoracle``, ``astream``); async
kinds run each call in its own event loop, closing the LLM's async client at the end, as a program
calling ``asyncio.run`` repeatedly would.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import time
from typing import Any

import pytest

import backends
from llm_server import ChatServer, reply_for, tool_arguments
from oxicache import CacheEntry, InMemCache

openai = pytest.importorskip("openai", reason="the LLM integration needs openai: pip install 'oxicache[llm]'")

from oxicache.llm import LLM, TRANSPORT, NoChoicesError, Text, cache_client, default_cache_dir, register_preset  # noqa: E402
from oxicache.llm import client as llm_client  # noqa: E402

KINDS = ["oracle", "stream", "aoracle", "astream"]
CACHES = ["inmem", "disk-path", "json", "sqlite"]


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.close()


@pytest.fixture
def other_server():
    s = ChatServer()
    yield s
    s.close()


def open_cache(kind: str, tmp_path: Any) -> Any:
    """What the test passes as ``cache=``: a cache instance, or a folder path (DiskCache)."""
    if kind == "inmem":
        return InMemCache()
    if kind == "disk-path":
        return str(tmp_path / "llm-cache")
    return backends.make(kind)


def make_llm(server: ChatServer, cache: Any, **kwargs: Any) -> LLM:
    kwargs.setdefault("model", "m1")
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("max_retries", 0)
    return LLM(base_url=server.url, cache=cache, **kwargs)


def ask(llm: LLM, kind: str, prompt: Any = "What is Python?", **params: Any) -> tuple[str, list[bool]]:
    """One call of ``kind``: the reply's text and the ``cached`` flag of each returned piece."""
    if kind == "oracle":
        text = llm.oracle(prompt, **params)
        assert isinstance(text, Text)
        return str(text), [text.cached]
    if kind == "stream":
        pieces = list(llm.stream(prompt, **params))
        assert pieces and all(isinstance(p, Text) for p in pieces)
        return "".join(pieces), [p.cached for p in pieces]

    async def run() -> tuple[str, list[bool]]:
        try:
            if kind == "aoracle":
                text = await llm.aoracle(prompt, **params)
                return str(text), [text.cached]
            pieces = [p async for p in llm.astream(prompt, **params)]
            assert pieces
            return "".join(pieces), [p.cached for p in pieces]
        finally:
            await llm.aclose()

    return asyncio.run(run())


def expect_new_request(server: ChatServer, before: int, text: str, flags: list[bool]) -> None:
    assert server.count == before + 1, "the call should have sent one request"
    assert text == reply_for(server.bodies()[-1])
    assert not any(flags)


# ---- one request for repeated calls ------------------------------------------------------------------


@pytest.mark.parametrize("cache_kind", CACHES)
@pytest.mark.parametrize("kind", KINDS)
def test_repeated_identical_calls_send_one_request(server, tmp_path, kind, cache_kind):
    llm = make_llm(server, open_cache(cache_kind, tmp_path), temperature=0)
    first, flags = ask(llm, kind)
    expect_new_request(server, 0, first, flags)
    for _ in range(3):
        again, flags = ask(llm, kind)
        assert again == first
        assert all(flags), "a replayed reply is flagged cached"
    assert server.count == 1
    assert len(llm.cache) == 1
    llm.close()
    llm.cache.close()


@pytest.mark.parametrize("kind", ["oracle", "stream"])
def test_sync_and_async_share_entries(server, kind):
    llm = make_llm(server, InMemCache())
    text, _ = ask(llm, kind, "shared")
    again, flags = ask(llm, "a" + kind, "shared")
    assert (again, all(flags), server.count) == (text, True, 1)


def test_plain_and_streamed_calls_have_their_own_entries(server):
    llm = make_llm(server, InMemCache())
    ask(llm, "oracle", "q")
    text, flags = ask(llm, "stream", "q")
    assert server.count == 2 and not any(flags)
    assert server.bodies()[-1]["stream"] is True
    assert text == reply_for(server.bodies()[-1])
    assert llm.key_inputs("q")["stream"] is False and llm.key_inputs("q", stream=True)["stream"] is True


# ---- every output-affecting parameter is in the key --------------------------------------------------

TOOL_A = {"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": {}}}}
TOOL_B = {"type": "function", "function": {"name": "b", "parameters": {"type": "object", "properties": {}}}}

# parameter -> two values that must not share a key (with each other or with leaving it out)
VARIATIONS: dict[str, tuple[Any, Any]] = {
    "temperature": (0, 0.7),
    "top_p": (1.0, 0.5),
    "seed": (1, 2),
    "max_tokens": (10, 20),
    "max_completion_tokens": (10, 20),
    "stop": (["x"], ["y"]),
    "tools": ([TOOL_A], [TOOL_B]),
    "tool_choice": ("auto", "none"),
    "response_format": ({"type": "text"}, {"type": "json_object"}),
    "n": (1, 2),
    "presence_penalty": (0.0, 1.0),
    "frequency_penalty": (0.0, 1.0),
    "logit_bias": ({"50256": -100}, {"50256": 100}),
    "logprobs": (False, True),
    "reasoning_effort": ("low", "high"),
    "extra_body": ({"top_k": 1}, {"top_k": 2}),
    "model": ("m2", "m3"),
    "system": ("be brief", "be thorough"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_output_affecting_parameter_changes_the_key(server, kind):
    llm = make_llm(server, InMemCache())
    base, _ = ask(llm, kind, "q")
    for name, values in VARIATIONS.items():
        for value in values:
            before = server.count
            text, flags = ask(llm, kind, "q", **{name: value})
            expect_new_request(server, before, text, flags)
            if name not in ("system",):
                assert server.bodies()[-1][name if name != "extra_body" else "top_k"] == (value if name != "extra_body" else value["top_k"])
            again, flags = ask(llm, kind, "q", **{name: value})
            assert (again, all(flags), server.count) == (text, True, before + 1), f"{name}={value!r} did not hit"
    # the prompt itself, and the conversation
    for prompt in ("other question", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]):
        before = server.count
        text, flags = ask(llm, kind, prompt)
        expect_new_request(server, before, text, flags)
    # after all that, the first call is still served from its own entry
    before = server.count
    text, flags = ask(llm, kind, "q")
    assert (text, all(flags), server.count) == (base, True, before)


def test_stream_options_are_in_a_streams_key(server):
    llm = make_llm(server, InMemCache())
    ask(llm, "stream", "q")
    before = server.count
    text, flags = ask(llm, "stream", "q", stream_options={"include_usage": True})
    expect_new_request(server, before, text, flags)


def test_default_parameters_of_the_llm_are_in_the_key(server):
    cache = InMemCache()
    cold = make_llm(server, cache, temperature=0)
    warm = make_llm(server, cache, temperature=1)
    ask(cold, "oracle", "q")
    text, flags = ask(warm, "oracle", "q")
    expect_new_request(server, 1, text, flags)
    assert server.bodies()[-1]["temperature"] == 1
    # a call's own value wins over the default, and then shares the entry
    assert ask(warm, "oracle", "q", temperature=0) == (reply_for(server.bodies()[0]), [True])


# ---- transport settings are not in the key -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_transport_settings_do_not_miss(server, kind):
    cache = InMemCache()
    first = make_llm(server, cache, api_key="key-1", timeout=30)
    text, _ = ask(first, kind, "q")
    # another key, other timeouts and retries, the URL spelled with a trailing slash: same entry
    second = LLM(model="m1", base_url=server.url + "/", api_key="key-2", timeout=60, max_retries=5, cache=cache)
    again, flags = ask(second, kind, "q")
    assert (again, all(flags)) == (text, True)
    # per-call transport options, request bookkeeping, credential and tracing headers: still the same entry
    again, flags = ask(second, kind, "q", timeout=12, extra_headers={"X-Request-Id": "1", "Authorization": "Bearer x"},
                       extra_query={"api-key": "k"}, user="u1", metadata={"run": "7"}, store=False,
                       safety_identifier="s", prompt_cache_key="p")
    assert (again, all(flags)) == (text, True)
    assert server.count == 1
    assert server.requests[0].headers["authorization"] == "Bearer key-1"


@pytest.mark.parametrize("kind", KINDS)
def test_the_endpoint_is_in_the_key(server, other_server, kind):
    """Two servers may serve different models under one name: B must not get A's reply."""
    cache = InMemCache()
    text, _ = ask(make_llm(server, cache), kind, "q")
    on_b = make_llm(other_server, cache)
    again, flags = ask(on_b, kind, "q")
    expect_new_request(other_server, 0, again, flags)
    assert on_b.key_inputs("q")["endpoint"] == other_server.url
    # credentials in the URL are not part of it
    assert LLM(model="m1", base_url="https://user:secret@Example.COM/v1/", cache=None).endpoint == "https://example.com/v1"


@pytest.mark.parametrize("kind", ["oracle", "astream"])
def test_key_endpoint_false_shares_entries_across_servers(server, other_server, kind):
    cache = InMemCache()
    text, _ = ask(make_llm(server, cache, key_endpoint=False), kind, "q")
    again, flags = ask(make_llm(other_server, cache, key_endpoint=False), kind, "q")
    assert (again, all(flags), other_server.count) == (text, True, 0)
    # the key of entries written before the endpoint was keyed
    earlier = {"model": "m1", "messages": [{"role": "user", "content": "q"}], "stream": False, "params": {}}
    llm = make_llm(server, cache, key_endpoint=False)
    assert llm.key_inputs("q") == earlier and llm.cache_key("q") == CacheEntry("oxicache.llm", earlier).key
    with pytest.raises(TypeError, match="key_endpoint must be True or False"):
        make_llm(server, cache, key_endpoint="no")


@pytest.mark.parametrize("kind", ["oracle", "stream"])
def test_routing_headers_and_query_are_in_the_key(server, kind):
    llm = make_llm(server, InMemCache())
    ask(llm, kind, "q")
    for extra in ({"extra_headers": {"X-Route-To": "model-b"}}, {"extra_query": {"deployment": "b"}}):
        before = server.count
        text, flags = ask(llm, kind, "q", **extra)
        expect_new_request(server, before, text, flags)
        # header names are keyed case-insensitively, and credentials beside them are not keyed
        same = {"extra_headers": {"x-route-to": "model-b", "Authorization": "Bearer other"}} if "extra_headers" in extra \
            else {"extra_query": {"deployment": "b", "api-key": "other"}}
        assert ask(llm, kind, "q", **same) == (text, [True] * len(flags))
    assert server.requests[1].headers["x-route-to"] == "model-b" and server.requests[2].path.endswith("?deployment=b")


def test_json_schema_property_order_is_in_the_key(server):
    """A model writes a JSON object's properties in the schema's order: two orders, two replies."""
    llm = make_llm(server, InMemCache())

    def schema(*names: str) -> dict[str, Any]:
        props = {n: {"type": "string"} for n in names}
        return {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object", "properties": props}}}

    ask(llm, "oracle", "q", response_format=schema("a", "b"))
    text, flags = ask(llm, "oracle", "q", response_format=schema("b", "a"))
    expect_new_request(server, 1, text, flags)
    assert list(server.bodies()[-1]["response_format"]["json_schema"]["schema"]["properties"]) == ["b", "a"]
    assert ask(llm, "oracle", "q", response_format=schema("b", "a")) == (text, [True])


def test_excluded_parameters_are_still_sent(server):
    llm = make_llm(server, InMemCache())
    ask(llm, "oracle", "q", user="u1", extra_headers={"X-Trace": "t1"})
    request = server.requests[-1]
    assert request.body["user"] == "u1" and request.headers["x-trace"] == "t1"


def test_exclude_extends_the_transport_names(server):
    llm = make_llm(server, InMemCache(), exclude=["seed"])
    assert llm.exclude == TRANSPORT | {"seed"}
    text, _ = ask(llm, "oracle", "q", seed=1)
    assert ask(llm, "oracle", "q", seed=2) == (text, [True])
    assert server.count == 1


def test_the_users_cache_is_not_modified(server):
    cache = InMemCache(exclude=["mine"])
    make_llm(server, cache, exclude=["seed"])
    assert cache.exclude == frozenset({"mine"})


# ---- the key can be seen ------------------------------------------------------------------------------


def test_key_inputs_show_what_is_hashed(server):
    llm = make_llm(server, InMemCache(), temperature=0, system="be brief")
    inputs = llm.key_inputs("q", seed=3, timeout=5, extra_headers={"X-Request-Id": "b"}, user="u")
    assert inputs == {
        "model": "m1",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q"}],
        "stream": False,
        "endpoint": server.url,
        "params": {"temperature": 0, "seed": 3},
    }
    llm.oracle("q", seed=3, timeout=5)
    [entry] = list(llm.cache)
    assert entry.inputs == inputs and entry.func == "oxicache.llm"
    assert entry.key == llm.cache_key("q", seed=3) == CacheEntry("oxicache.llm", inputs).key
    assert entry.output["choices"][0]["message"]["content"] == reply_for(server.bodies()[0])


def test_removing_a_key_sends_the_request_again(server):
    llm = make_llm(server, InMemCache())
    ask(llm, "oracle", "q")
    assert llm.cache.remove(llm.name, llm.key_inputs("q"))
    ask(llm, "oracle", "q")
    assert server.count == 2
    del llm.cache[llm.cache_key("q")]
    text, flags = ask(llm, "oracle", "q")
    expect_new_request(server, 2, text, flags)


def test_name_separates_entries(server):
    cache = InMemCache()
    ask(make_llm(server, cache, name="project-a"), "oracle", "q")
    text, flags = ask(make_llm(server, cache, name="project-b"), "oracle", "q")
    expect_new_request(server, 1, text, flags)
    assert {e.func for e in cache} == {"project-a", "project-b"}


def test_sdk_message_objects_in_a_conversation(server):
    """An assistant message taken from a response (a pydantic object) keys like its dict form."""
    llm = make_llm(server, InMemCache())
    answer = openai.types.chat.ChatCompletion.model_validate(llm.oracle("q").raw).choices[0].message
    convo = [{"role": "user", "content": "q"}, answer, {"role": "user", "content": "more"}]
    text, _ = ask(llm, "oracle", convo)
    as_dicts = [{"role": "user", "content": "q"}, {"role": "assistant", "content": str(answer.content)},
                {"role": "user", "content": "more"}]
    assert server.bodies()[-1]["messages"][1] == {"role": "assistant", "content": answer.content}
    assert ask(llm, "oracle", as_dicts) == (text, [True])
    assert server.count == 2


# ---- streams: record, replay, store only complete ones ----------------------------------------------


@pytest.mark.parametrize("kind", ["stream", "astream"])
@pytest.mark.parametrize("fault", ["dropped connection", "error event"])
def test_a_broken_stream_is_not_stored(server, kind, fault):
    llm = make_llm(server, InMemCache())
    (server.break_next_stream if fault == "dropped connection" else server.error_next_stream)(after=3)
    with pytest.raises(openai.APIError):
        ask(llm, kind, "q")
    assert len(llm.cache) == 0
    text, flags = ask(llm, kind, "q")
    expect_new_request(server, 1, text, flags)
    assert ask(llm, kind, "q") == (text, [True] * len(flags))
    assert server.count == 2


def test_a_stream_left_early_is_not_stored(server):
    llm = make_llm(server, InMemCache())
    pieces = llm.stream("q")
    next(pieces)
    pieces.close()  # type: ignore[attr-defined]
    for piece in llm.stream("q"):
        break
    assert len(llm.cache) == 0 and server.count == 2
    text, flags = ask(llm, "stream", "q")
    expect_new_request(server, 2, text, flags)


def test_an_async_stream_left_early_is_not_stored(server):
    llm = make_llm(server, InMemCache())

    async def leave_early() -> None:
        stream = llm.astream("q")
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
        await llm.aclose()

    asyncio.run(leave_early())
    assert len(llm.cache) == 0 and server.count == 1


def test_a_stream_is_replayed_piece_by_piece(server):
    llm = make_llm(server, InMemCache())
    live = list(llm.stream("q", stream_options={"include_usage": True}))
    replay = list(llm.stream("q", stream_options={"include_usage": True}))
    assert replay == live and len(live) > 1
    assert [p.raw for p in replay] == [p.raw for p in live]
    [entry] = list(llm.cache)
    assert entry.output[-1]["usage"]["total_tokens"] > 0  # every chunk is recorded, usage included


def test_a_failed_request_is_not_stored(server):
    llm = make_llm(server, InMemCache())
    server.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        llm.oracle("q")
    assert len(llm.cache) == 0
    text, flags = ask(llm, "oracle", "q")
    expect_new_request(server, 1, text, flags)


# ---- the cache argument -------------------------------------------------------------------------------


def test_cache_none_or_false_sends_every_call(server):
    for off in (None, False):
        llm = make_llm(server, off)
        before = server.count
        for kind in KINDS:
            _, flags = ask(llm, kind, "q")
            _, flags2 = ask(llm, kind, "q")
            assert not any(flags + flags2)
        assert server.count == before + 2 * len(KINDS)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG_CACHE_HOME applies on Linux and other Unix systems")
def test_cache_true_is_a_disk_cache_in_the_users_cache_folder(server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "oxicache" / "llm"
    llm = make_llm(server, True)
    assert type(llm.cache).__name__ == "DiskCache"
    ask(llm, "oracle", "q")
    llm.cache.close()
    reopened = make_llm(server, True)  # another LLM, another process's view: the same folder
    assert ask(reopened, "oracle", "q")[1] == [True] and server.count == 1
    assert (tmp_path / "xdg" / "oxicache" / "llm").is_dir()
    reopened.cache.close()


def test_default_cache_folder_per_platform(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == tmp_path / ".cache" / "oxicache" / "llm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / ".cache" / "oxicache" / "llm"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_cache_dir() == tmp_path / "Library" / "Caches" / "oxicache" / "llm"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_cache_dir() == tmp_path / "local" / "oxicache" / "Cache" / "llm"


def test_a_folder_cache_persists_across_llm_objects(server, tmp_path):
    folder = tmp_path / "persist"
    first = make_llm(server, folder)  # a pathlib.Path works too
    text, _ = ask(first, "stream", "q")
    first.cache.close()
    second = make_llm(server, str(folder))
    assert ask(second, "stream", "q")[0] == text and server.count == 1
    second.cache.close()


@pytest.mark.parametrize("bad", [42, 1.5, b"bytes", ["a list"], object()])
def test_a_wrong_cache_argument_is_a_type_error(bad):
    with pytest.raises(TypeError, match=r"cache must be a cache instance .*folder path.*True.*None/False.*got") as info:
        LLM(model="m", api_key="k", cache=bad)
    assert repr(bad)[:20] in str(info.value)
    with pytest.raises(TypeError, match="cache must be"):
        cache_client(openai.OpenAI(api_key="k"), bad)


def test_missing_openai_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # what a missing package looks like to import
    with pytest.raises(ImportError, match=r"pip install 'oxicache\[llm\]'"):
        LLM(model="m", cache=None)
    with pytest.raises(ImportError, match=r"pip install 'oxicache\[llm\]'"):
        cache_client(object(), None)


def test_other_bad_input(server):
    with pytest.raises(TypeError, match="needs a model"):
        LLM(api_key="k", cache=None)
    with pytest.raises(ValueError, match="unknown LLM preset 'nope'.*register_preset"):
        LLM(preset="nope", cache=None)
    llm = make_llm(server, InMemCache())
    with pytest.raises(TypeError, match="does not take stream="):
        llm.oracle("q", stream=True)
    with pytest.raises(TypeError, match="messages must be a prompt string"):
        llm.oracle(42)
    with pytest.raises(TypeError, match="each message must be a dict"):
        llm.oracle(["just a string in a list"])
    with pytest.raises(TypeError, match="wraps an openai.OpenAI"):
        cache_client(object(), None)
    with pytest.raises(TypeError, match="cannot set"):
        register_preset("p", cache=True)
    assert server.count == 0


def test_presets(server, monkeypatch):
    monkeypatch.setattr(llm_client, "PRESETS", {})
    register_preset("chat", model="preset-model", base_url=server.url, api_key="k", max_retries=0, temperature=0)
    llm = LLM(preset="chat", cache=InMemCache())
    assert (llm.model, llm.params) == ("preset-model", {"temperature": 0})
    llm.oracle("q")
    assert server.bodies()[-1]["model"] == "preset-model" and server.bodies()[-1]["temperature"] == 0
    assert LLM(preset="chat", model="other", cache=None).model == "other"


def test_replay_needs_no_api_key(server, monkeypatch):
    cache = InMemCache()
    ask(make_llm(server, cache), "oracle", "q")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    offline = LLM(model="m1", base_url=server.url, cache=cache)  # no key anywhere: fine until a miss
    assert offline.oracle("q").cached
    with pytest.raises(openai.OpenAIError, match="api_key"):
        offline.oracle("a new question")


def test_text_is_a_str(server):
    llm = make_llm(server, InMemCache())
    text = llm.oracle("q")
    assert text == reply_for(server.bodies()[0]) and isinstance(text, str)
    copy = pickle.loads(pickle.dumps(text))
    assert (copy, copy.cached, copy.raw) == (text, text.cached, text.raw)


# ---- cache_client --------------------------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "q"}]


@pytest.mark.parametrize("cache_kind", CACHES)
def test_cache_client_returns_sdk_types_on_misses_and_hits(server, tmp_path, cache_kind):
    client = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
    cached = cache_client(client, open_cache(cache_kind, tmp_path))
    assert isinstance(cached, openai.OpenAI)
    create = cached.chat.completions.create
    miss = create(model="m1", messages=MESSAGES, temperature=0)
    hit = create(model="m1", messages=MESSAGES, temperature=0)
    for response in (miss, hit):
        assert type(response) is openai.types.chat.ChatCompletion
    assert hit.model_dump() == miss.model_dump() and hit.id == "chatcmpl-1"
    assert miss.choices[0].message.content == reply_for(server.bodies()[0])
    with create(model="m1", messages=MESSAGES, stream=True) as live:
        live_chunks = list(live)
    replayed = list(create(model="m1", messages=MESSAGES, stream=True))
    for chunk in live_chunks + replayed:
        assert type(chunk) is openai.types.chat.ChatCompletionChunk
    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in live_chunks]
    assert "".join(c.choices[0].delta.content or "" for c in replayed if c.choices) == reply_for(server.bodies()[1])
    assert server.count == 2
    # the original client is untouched: it still sends every call
    client.chat.completions.create(model="m1", messages=MESSAGES, temperature=0)
    assert server.count == 3
    client.close()
    cached.close()


def test_async_cache_client(server):
    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0)
        cached = cache_client(client, InMemCache())
        assert isinstance(cached, openai.AsyncOpenAI)
        create = cached.chat.completions.create
        miss = await create(model="m1", messages=MESSAGES)
        hit = await create(model="m1", messages=MESSAGES)
        assert type(hit) is openai.types.chat.ChatCompletion and hit.model_dump() == miss.model_dump()
        streams = []
        for _ in range(2):
            stream = await create(model="m1", messages=MESSAGES, stream=True)
            async with stream:
                streams.append([c async for c in stream])
        assert all(type(c) is openai.types.chat.ChatCompletionChunk for c in streams[0] + streams[1])
        assert [c.model_dump() for c in streams[0]] == [c.model_dump() for c in streams[1]]
        assert server.count == 2
        await cached.close()  # the pool is the original client's, which is still here: left open
        assert not client.is_closed()
        await client.close()

    asyncio.run(main())


def test_cache_client_and_llm_share_entries(server):
    cache = InMemCache()
    cached = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), cache)
    response = cached.chat.completions.create(model="m1", messages=MESSAGES, timeout=5)
    assert cached.chat.completions.create.key_inputs(model="m1", messages=MESSAGES) == make_llm(server, cache).key_inputs("q")
    text = make_llm(server, cache).oracle("q")
    assert (text, text.cached, server.count) == (response.choices[0].message.content, True, 1)
    # the documented way to know a hit before calling through the SDK's types
    assert cached.chat.completions.create.cache_key(model="m1", messages=MESSAGES) in cache
    assert cached.chat.completions.create.cache_key(model="m1", messages=MESSAGES, seed=1) not in cache


def test_cache_client_broken_stream_is_not_stored(server):
    cached = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), InMemCache())
    server.break_next_stream(after=2)
    with pytest.raises(openai.APIConnectionError):
        list(cached.chat.completions.create(model="m1", messages=MESSAGES, stream=True))
    stream = cached.chat.completions.create(model="m1", messages=MESSAGES, stream=True)
    next(stream)
    stream.close()  # closed before the end: not stored either
    assert server.count == 2
    list(cached.chat.completions.create(model="m1", messages=MESSAGES, stream=True))
    list(cached.chat.completions.create(model="m1", messages=MESSAGES, stream=True))
    assert server.count == 3


def test_cache_client_omitted_values_mean_not_given(server):
    cached = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), InMemCache())
    create = cached.chat.completions.create
    create(model="m1", messages=MESSAGES)
    create(model="m1", messages=MESSAGES, temperature=openai.omit, stream=False, timeout=openai.NOT_GIVEN)
    assert server.count == 1
    with pytest.raises(TypeError, match="missing required keyword argument.*'messages'"):
        create(model="m1")


# ---- concurrent identical calls -------------------------------------------------------------------------


@pytest.mark.parametrize("cache_kind", ["inmem", "sqlite"])
def test_concurrent_identical_calls_send_one_request(server, tmp_path, cache_kind):
    """Threads that miss the same key together share one request (memoize's single-flight); the ones
    that did not send it get the reply flagged cached."""
    import threading

    llm = make_llm(server, open_cache(cache_kind, tmp_path))
    barrier = threading.Barrier(8)
    results: list[Text] = []

    def worker() -> None:
        barrier.wait(timeout=60)
        results.append(llm.oracle("q"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 8 and len(set(results)) == 1
    assert server.count == 1
    assert sorted(r.cached for r in results) == [False] + [True] * 7
    llm.close()
    llm.cache.close()


def test_concurrent_identical_async_calls_send_one_request(server):
    llm = make_llm(server, InMemCache())

    async def main() -> list[Text]:
        try:
            return list(await asyncio.gather(*(llm.aoracle("q") for _ in range(8))))
        finally:
            await llm.aclose()

    results = asyncio.run(main())
    assert len(set(results)) == 1 and server.count == 1
    assert sorted(r.cached for r in results) == [False] + [True] * 7


@pytest.mark.filterwarnings("error::ResourceWarning")
def test_async_calls_work_across_event_loops(server):
    """Each event loop gets its own async client: successive asyncio.run() calls without aclose() work,
    and each loop's client is closed when asyncio.run ends it (no unclosed connection is left behind)."""
    import gc

    llm = make_llm(server, InMemCache())
    texts = [asyncio.run(llm.aoracle(f"q{i}")) for i in range(3)]
    assert server.count == 3 and not any(t.cached for t in texts)
    assert [t == reply_for(b) for t, b in zip(texts, server.bodies())] == [True] * 3

    async def last() -> Text:
        try:
            return await llm.aoracle("another")
        finally:
            await llm.aclose()

    assert not asyncio.run(last()).cached and server.count == 4
    gc.collect()  # an unclosed client's ResourceWarning would be emitted here, inside this test
    assert server.open_connections == 0 or _settles(lambda: server.open_connections == 0)


def _settles(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# ---- servers that are not OpenAI (issue 17, item 4) -----------------------------------------------------


def test_tgi_style_replies_replay_through_cache_client(server):
    """text-generation-inference sends finish_reason "eos" and no `created`; the SDK accepts that live, so a
    hit must too, streamed or not."""
    server.style = "tgi"
    cached = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), InMemCache())
    create = cached.chat.completions.create
    miss = create(model="m1", messages=MESSAGES)
    hit = create(model="m1", messages=MESSAGES)
    assert type(hit) is openai.types.chat.ChatCompletion
    assert (hit.choices[0].finish_reason, hit.choices[0].message.content) == ("eos", reply_for(server.bodies()[0]))
    assert hit.model_dump(exclude_unset=True, warnings=False) == miss.model_dump(exclude_unset=True, warnings=False)
    assert "created" not in hit.model_fields_set and hit.system_fingerprint == "3.0.1-native"
    live = list(create(model="m1", messages=MESSAGES, stream=True))
    replayed = list(create(model="m1", messages=MESSAGES, stream=True))
    assert all(type(c) is openai.types.chat.ChatCompletionChunk for c in live + replayed)
    assert [c.choices[0].finish_reason for c in replayed][-1] == "eos"
    assert "".join(c.choices[0].delta.content or "" for c in replayed) == reply_for(server.bodies()[1])
    assert server.count == 2
    cached.close()


def test_tgi_style_replies_through_async_cache_client_and_llm(server):
    server.style = "tgi"
    cache = InMemCache()

    async def main() -> list[Any]:
        cached = cache_client(openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0), cache)
        out = []
        for _ in range(2):
            out.append(await cached.chat.completions.create(model="m1", messages=MESSAGES))
            stream = await cached.chat.completions.create(model="m1", messages=MESSAGES, stream=True)
            out.append([c async for c in stream])
        await cached.close()  # nothing else holds the pool: this closes it
        assert cached.is_closed()
        return out

    miss, live, hit, replayed = asyncio.run(main())
    assert hit.choices[0].finish_reason == "eos" and [c.model_dump() for c in replayed] == [c.model_dump() for c in live]
    llm = make_llm(server, cache)
    assert ask(llm, "oracle", "q") == (miss.choices[0].message.content, [True])
    assert ask(llm, "stream", "q")[1][0] is True and server.count == 2


# ---- replies without choices (item 5) ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oracle", "aoracle"])
def test_an_error_body_with_http_200_is_not_stored(server, kind):
    llm = make_llm(server, InMemCache())
    server.error_body_next()
    with pytest.raises(NoChoicesError, match="no choices.*upstream overloaded") as info:
        ask(llm, kind, "q")
    assert info.value.body["error"]["code"] == 529
    assert len(llm.cache) == 0
    text, flags = ask(llm, kind, "q")
    expect_new_request(server, 1, text, flags)


def test_cache_client_returns_an_error_body_as_the_sdk_does_without_storing_it(server):
    cached = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), InMemCache())
    server.error_body_next()
    first = cached.chat.completions.create(model="m1", messages=MESSAGES)
    assert first.choices is None  # the SDK's own object, as a live call returns it
    second = cached.chat.completions.create(model="m1", messages=MESSAGES)
    assert second.choices[0].message.content == reply_for(server.bodies()[1]) and server.count == 2
    third = cached.chat.completions.create(model="m1", messages=MESSAGES)
    assert third.model_dump() == second.model_dump() and server.count == 2
    cached.close()


# ---- cache_client: the SDK's other ways to call create (item 6) ----------------------------------------


def test_cache_client_passes_raw_streaming_and_helper_calls_through(server):
    cache = InMemCache()
    client = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
    cached = cache_client(client, cache)
    raw = cached.chat.completions.with_raw_response.create(model="m1", messages=MESSAGES)
    assert raw.http_request.method == "POST" and raw.parse().choices[0].message.content == reply_for(server.bodies()[-1])
    raw = cached.with_raw_response.chat.completions.create(model="m1", messages=MESSAGES)
    assert raw.parse().id == f"chatcmpl-{server.count}"
    with cached.chat.completions.with_streaming_response.create(model="m1", messages=MESSAGES) as response:
        assert response.parse().choices[0].message.content == reply_for(server.bodies()[-1])
    with cached.chat.completions.stream(model="m1", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == reply_for(server.bodies()[-1])
    assert server.count == 4 and len(cache) == 0  # passed through: sent, not cached
    cached.chat.completions.create(model="m1", messages=MESSAGES)
    cached.chat.completions.create(model="m1", messages=MESSAGES)
    assert server.count == 5 and len(cache) == 1
    client.close()


def test_async_cache_client_passes_raw_and_helper_calls_through(server):
    async def main() -> None:
        cached = cache_client(openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0), InMemCache())
        raw = await cached.chat.completions.with_raw_response.create(model="m1", messages=MESSAGES)
        assert raw.parse().choices[0].message.content == reply_for(server.bodies()[-1])
        async with cached.chat.completions.with_streaming_response.create(model="m1", messages=MESSAGES) as response:
            assert (await response.parse()).id == f"chatcmpl-{server.count}"
        async with cached.chat.completions.stream(model="m1", messages=MESSAGES) as stream:
            final = await stream.get_final_completion()
        assert final.choices[0].message.content == reply_for(server.bodies()[-1]) and server.count == 3
        await cached.close()

    asyncio.run(main())


def test_cache_client_copies_stay_cached(server, other_server):
    cached = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), InMemCache())
    first = cached.chat.completions.create(model="m1", messages=MESSAGES)
    for copy in (cached.with_options(timeout=5), cached.copy(max_retries=1), cached.with_options(timeout=5).copy()):
        assert copy.chat.completions.create(model="m1", messages=MESSAGES).model_dump() == first.model_dump()
    assert server.count == 1
    # a copy pointed at another server is another endpoint: its own entries
    moved = cached.with_options(base_url=other_server.url)
    moved.chat.completions.create(model="m1", messages=MESSAGES)
    moved.chat.completions.create(model="m1", messages=MESSAGES)
    assert (server.count, other_server.count) == (1, 1)
    cached.close()
    moved.close()


def test_closing_the_cached_copy_leaves_the_original_open(server):
    client = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
    with cache_client(client, InMemCache()) as cached:
        cached.chat.completions.create(model="m1", messages=MESSAGES)
    cache_client(client, InMemCache()).close()
    assert not client.is_closed()
    client.chat.completions.create(model="m1", messages=MESSAGES)
    assert server.count == 2
    client.close()
    # with nothing else holding the pool, closing the cached client closes it
    alone = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), InMemCache())
    alone.close()
    assert alone.is_closed()

    async def main() -> None:
        aclient = openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0)
        async with cache_client(aclient, InMemCache()) as acached:
            await acached.chat.completions.create(model="m1", messages=MESSAGES)
        await aclient.chat.completions.create(model="m1", messages=MESSAGES)
        await aclient.close()

    asyncio.run(main())
    assert server.count == 4


# ---- streams: every chunk, fan-out, cut streams, clients per loop (item 8) ---------------------------------


@pytest.mark.parametrize("kind", ["stream", "astream"])
def test_a_tool_only_stream_yields_its_tool_call_deltas(server, kind):
    server.tools_only = True
    llm = make_llm(server, InMemCache())

    def pieces() -> list[Text]:
        if kind == "stream":
            return list(llm.stream("q", tools=[TOOL_A]))

        async def run() -> list[Text]:
            return [p async for p in llm.astream("q", tools=[TOOL_A])]

        return asyncio.run(run())

    for cached in (False, True):
        got = pieces()
        assert got and all(p == "" and p.cached is cached for p in got)
        args = "".join(tc["function"].get("arguments") or "" for p in got
                       for tc in (p.raw["choices"][0]["delta"].get("tool_calls") or ()))
        assert args == tool_arguments(server.bodies()[0])
        assert got[-1].raw["choices"][0]["finish_reason"] == "tool_calls"
    assert server.count == 1


def test_a_stream_yields_the_usage_chunk_and_other_choices(server):
    llm = make_llm(server, InMemCache())
    pieces = list(llm.stream("q", n=2, stream_options={"include_usage": True}))
    assert pieces[-1].raw["usage"]["total_tokens"] > 0 and pieces[-1] == ""
    second = "".join(c["delta"].get("content") or "" for p in pieces for c in p.raw["choices"] if c["index"] == 1)
    assert second == reply_for(server.bodies()[0], 1)
    assert "".join(pieces) == reply_for(server.bodies()[0])  # the text is the first choice's


@pytest.mark.parametrize("cache_kind", ["inmem", "sqlite"])
def test_concurrent_identical_streams_send_one_request(server, tmp_path, cache_kind):
    import threading

    server.chunk_delay = 0.02
    llm = make_llm(server, open_cache(cache_kind, tmp_path))
    barrier = threading.Barrier(6)
    results: list[tuple[str, list[bool]]] = []

    def worker() -> None:
        barrier.wait(timeout=60)
        results.append(ask(llm, "stream", "q"))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert server.count == 1
    assert [text for text, _ in results] == [reply_for(server.bodies()[0])] * 6
    assert sorted(all(flags) for _, flags in results) == [False] + [True] * 5
    assert ask(llm, "stream", "q")[1][0] is True and server.count == 1
    llm.cache.close()


def test_concurrent_identical_async_streams_send_one_request(server):
    server.chunk_delay = 0.02
    llm = make_llm(server, InMemCache())

    async def one() -> list[Text]:
        return [p async for p in llm.astream("q")]

    async def main() -> list[list[Text]]:
        return list(await asyncio.gather(*(one() for _ in range(5))))

    results = asyncio.run(main())
    assert server.count == 1 and len({"".join(r) for r in results}) == 1
    assert sorted(all(p.cached for p in r) for r in results) == [False] + [True] * 4


def test_a_stream_member_leaving_early_does_not_stop_the_others(server):
    import threading

    server.chunk_delay = 0.02
    llm = make_llm(server, InMemCache())
    leaver = llm.stream("q")
    next(leaver)
    done: list[str] = []
    t = threading.Thread(target=lambda: done.append("".join(llm.stream("q"))))
    t.start()
    time.sleep(0.05)
    leaver.close()  # type: ignore[attr-defined]
    t.join(timeout=60)
    assert done == [reply_for(server.bodies()[0])] and server.count == 1
    assert len(llm.cache) == 1


@pytest.mark.parametrize("done", [False, True])
def test_a_stream_cut_before_its_finish_reason_is_not_stored(server, done):
    llm = make_llm(server, InMemCache())
    server.cut_next_stream(done=done)
    text, flags = ask(llm, "stream", "q")
    assert text == reply_for(server.bodies()[0]) and not any(flags)
    assert len(llm.cache) == 0
    cached = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), llm.cache)
    server.cut_next_stream(done=done)
    assert len(list(cached.chat.completions.create(model="m1", messages=MESSAGES, stream=True))) > 1
    assert len(llm.cache) == 0
    cached.close()
    text, flags = ask(llm, "stream", "q")
    expect_new_request(server, 2, text, flags)
    assert len(llm.cache) == 1


def test_one_async_client_per_event_loop_closed_when_the_loop_ends(server):
    """Threads running their own loops each reuse one client (one connection) for all their calls, and
    asyncio.run closes it at the end, without aclose()."""
    import threading

    llm = make_llm(server, InMemCache())
    barrier = threading.Barrier(3)

    def worker(w: int) -> None:
        async def main() -> None:
            for i in range(4):
                await llm.aoracle(f"{w}-{i}")
                await asyncio.sleep(0.01)  # let the other threads' loops use the LLM in between

        barrier.wait(timeout=60)
        asyncio.run(main())

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert server.count == 12
    assert server.connections == 3
    deadline = time.monotonic() + 10
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.open_connections == 0


def test_concurrent_identical_cache_client_streams_send_one_request(server):
    import threading

    server.chunk_delay = 0.02
    cached = cache_client(openai.OpenAI(base_url=server.url, api_key="k", max_retries=0), InMemCache())
    barrier = threading.Barrier(4)
    results: list[list[Any]] = []

    def worker() -> None:
        barrier.wait(timeout=60)
        with cached.chat.completions.create(model="m1", messages=MESSAGES, stream=True) as stream:
            results.append(list(stream))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert server.count == 1 and len(results) == 4
    assert all(type(c) is openai.types.chat.ChatCompletionChunk for r in results for c in r)
    assert len({tuple(c.model_dump_json() for c in r) for r in results}) == 1
    assert len({id(c) for r in results for c in r}) == 4 * len(results[0])  # each caller has its own objects
    cached.close()


def test_a_shared_stream_that_fails_fails_for_every_member(server):
    import threading

    server.chunk_delay = 0.02
    server.break_next_stream(after=4)
    llm = make_llm(server, InMemCache())
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait(timeout=60)
        try:
            list(llm.stream("q"))
        except openai.APIError as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(errors) == 3 and server.count == 1 and len(llm.cache) == 0
    text, flags = ask(llm, "stream", "q")
    expect_new_request(server, 1, text, flags)


def test_a_clients_routing_default_headers_and_query_are_in_the_key(server):
    """A gateway set up on the client (default_headers / default_query) routes every request: LLMs and
    cached clients that differ there do not share entries; credentials there are not keyed."""
    cache = InMemCache()
    plain_llm = make_llm(server, cache)
    routed = make_llm(server, cache, client_options={"default_headers": {"X-Provider": "b"}})
    text, _ = ask(plain_llm, "oracle", "q")
    again, flags = ask(routed, "oracle", "q")
    expect_new_request(server, 1, again, flags)
    assert server.requests[-1].headers["x-provider"] == "b"
    assert routed.key_inputs("q")["endpoint"] == {"url": server.url, "headers": {"x-provider": "b"}}
    with_key = make_llm(server, cache, client_options={"default_headers": {"api-key": "secret", "X-Request-Id": "7"}})
    assert ask(with_key, "oracle", "q") == (text, [True])

    client = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
    assert cache_client(client, cache).chat.completions.create(model="m1", messages=MESSAGES).choices[0].message.content == text
    queried = cache_client(client.with_options(default_query={"deployment": "b"}), cache)
    queried.chat.completions.create(model="m1", messages=MESSAGES)
    assert server.count == 3 and server.requests[-1].path.endswith("?deployment=b")
    assert queried.chat.completions.create.key_inputs(model="m1", messages=MESSAGES)["endpoint"] == {
        "url": server.url, "query": {"deployment": "b"}}
    client.close()
