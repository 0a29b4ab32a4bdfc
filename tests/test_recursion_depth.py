"""Deep recursion through a memoized function raises RecursionError, as through functools.lru_cache, and
never overflows the C stack (issue 11, crash 7): at the default recursion limit, at a raised one, and at a
limit far beyond what the thread's stack can hold (where the native wrapper's own stack check answers).
Each case runs in a subprocess, since the failure being guarded against is a segfault."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import backends
import pytest

CHILD = textwrap.dedent(
    """
    import json, sys, threading, warnings
    import oxicache
    warnings.simplefilter("error")  # a RecursionError must not be reported as a backend failure
    name, args, kwargs = json.loads(sys.argv[1])
    limit, in_thread = int(sys.argv[2]), sys.argv[3] == "thread"
    cache = getattr(oxicache, name)(*args, **kwargs)
    sys.setrecursionlimit(limit)

    @cache.memoize
    def down(n):
        return 0 if n == 0 else down(n - 1) + 1

    result = {}
    def run():
        try:
            result["value"] = down(100_000)
        except RecursionError as err:
            result["error"] = str(err)
    if in_thread:
        threading.stack_size(16 * 1024 * 1024)
        t = threading.Thread(target=run)
        t.start()
        t.join()
    else:
        run()
    # The interpreter is still sound: a shallow call works and recursion can go as deep again.
    result["after"] = down(10)
    print(json.dumps(result))
    """
)


def run_child(cache, limit: int, where: str = "main") -> dict:
    spec = backends.SPECS.get(id(cache), (type(cache).__name__, (), {}))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec), str(limit), where],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, f"exit status {out.returncode} (a negative status is a signal):\n{out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


CASES = [("inmem", 4000, "main"), ("inmem", 100_000, "main"), ("inmem", 1_000_000, "thread"), ("disk", 4000, "main"),
         ("disk", 100_000, "main")]
SLOW_CASES = [(name, limit, "main") for name in ("json", "sqlite", "none") for limit in (4000, 100_000)]


@pytest.mark.parametrize(("name", "limit", "where"), CASES + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW_CASES])
def test_deep_recursion_raises_recursion_error(name, limit, where):
    cache = backends.make(name)
    result = run_child(cache, limit, where)
    assert "value" not in result, "100,000 levels cannot fit; the call should have raised"
    assert "maximum recursion depth exceeded" in result["error"]
    assert result["after"] == 10


def test_recursion_within_the_limit_still_works():
    cache = backends.make("inmem")

    @cache.memoize
    def down(n):
        return 0 if n == 0 else down(n - 1) + 1

    assert down(400) == 400  # well inside the default limit: no spurious RecursionError
