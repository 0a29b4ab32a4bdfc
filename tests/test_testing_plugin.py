"""oxicache.testing as a pytest plugin, OXICACHE_DISABLE, and the quiet loopback LLM server (issue 16, item 7).

The plugin is checked the way a user meets it: pytester runs a user's test file in a new pytest process,
where the fixtures come from the installed ``pytest11`` entry point (no conftest, no ``-p``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from llm_server import ChatServer

pytest_plugins = ["pytester"]


USER_TESTS = '''
import os, oxicache
from oxicache import DiskCache
from oxicache.llm import default_cache_dir

runs = []

@oxicache.memoize
def square(x):
    runs.append(x)
    return x * x

def test_bypass_runs_every_call(oxicache_bypass):
    runs.clear()
    assert [square(3), square(3)] == [9, 9]
    assert runs == [3, 3]

def test_without_the_fixture_calls_are_cached():
    runs.clear()
    assert [square(4), square(4)] == [16, 16]
    assert runs == [4]

def test_isolated_first(oxicache_isolated):
    runs.clear()
    square(5)  # emptied before: computed even if another test stored it
    assert runs == [5]
    assert len(oxicache_isolated.cache) == 0
    disk = DiskCache(oxicache_isolated.folder / "store")
    disk.set("f", output=1, x=1)
    assert default_cache_dir() == oxicache_isolated.llm_cache_dir
    assert str(oxicache_isolated.llm_cache_dir).startswith(str(oxicache_isolated.folder.parent))
    oxicache_isolated.cache.set("g", output=2, x=1)
    disk.close()

def test_isolated_second(oxicache_isolated):
    runs.clear()
    square(5)
    assert runs == [5]  # the first test's entry did not leak into this one
    assert len(oxicache_isolated.cache) == 0 and list(oxicache_isolated.folder.iterdir()) == []
'''


def test_the_plugin_is_loaded_from_the_entry_point_in_a_new_process(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)


def test_the_fixtures_are_listed_with_their_docs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_nothing(): pass\n")
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*oxicache_bypass*", "*oxicache_isolated*"])
    assert "Memoized calls made by the test" in result.stdout.str()


DISABLED_PROGRAM = textwrap.dedent('''
    import json, sys, tempfile, oxicache
    runs = []
    disk = oxicache.DiskCache(tempfile.mkdtemp())

    @oxicache.memoize
    def f(x):
        runs.append(x); return x

    @disk.memoize(shared_flight=True)
    def g(x):
        runs.append(-x); return x

    @disk.batch_memoize
    def h(xs):
        runs.extend(xs); return xs

    for _ in range(2):
        f(1); g(2); h([3])
    print(json.dumps({"runs": runs, "stored": len(disk), "misses": f.cache_info().misses}))
''')


@pytest.mark.parametrize(("value", "disabled"), [("1", True), ("TRUE", True), ("on", True), ("0", False), ("", False), (None, False)])
def test_oxicache_disable_turns_memoization_off_for_the_process(value, disabled) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != "OXICACHE_DISABLE"}
    if value is not None:
        env["OXICACHE_DISABLE"] = value
    out = subprocess.run([sys.executable, "-c", DISABLED_PROGRAM], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    got = json.loads(out)
    if disabled:
        assert got == {"runs": [1, -2, 3, 1, -2, 3], "stored": 0, "misses": 2}
    else:
        assert got == {"runs": [1, -2, 3], "stored": 2, "misses": 1}


def test_a_value_of_oxicache_disable_that_means_nothing_is_refused_at_decoration() -> None:
    env = {**os.environ, "OXICACHE_DISABLE": "maybe"}
    done = subprocess.run([sys.executable, "-c", DISABLED_PROGRAM], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "OXICACHE_DISABLE='maybe' is not understood: set it to 1" in done.stderr


def test_a_client_hanging_up_mid_stream_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    server = ChatServer()
    server.chunk_delay = 0.05
    try:
        host, port = server.url.split("//")[1].split("/")[0].split(":")
        body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "a long answer " * 20}]})
        for _ in range(3):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
            sock.recv(200)  # the stream has begun
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # a reset, as a killed client sends
        deadline = time.monotonic() + 10
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open_connections == 0
    finally:
        server.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err and "BrokenPipeError" not in err, err


def test_the_fixture_examples_of_docs_testing_md_pass_under_pytest(pytester: pytest.Pytester) -> None:
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "def test_" in b]
    assert len(blocks) == 2
    pytester.makepyfile(**{f"test_doc{n}": block for n, block in enumerate(blocks)})
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q").assert_outcomes(passed=2)
