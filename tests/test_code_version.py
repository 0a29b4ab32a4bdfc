"""``memoize(version="auto")`` (issue 14, item 6): editing a function, or a same-module function it calls,
starts fresh entries; editing anything else in the module keeps them.

Each "edit" is a module built again from changed source under the same module name, as a restarted
program would import it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from typing import Any

import pytest
from backends import STORING, make

from oxicache import InMemCache
from oxicache.memo.code_version import code_version

BASE = """
LIMIT = 10

def helper(x):
    return x + 1

def deeper(x):
    return helper(x) * 2

def f(x):
    return deeper(x) + sum(i for i in range(3))

def unrelated(x):
    return x - 1

def even(n):
    return True if n == 0 else odd(n - 1)

def odd(n):
    return False if n == 0 else even(n - 1)
"""


def load(source: str, name: str = "oxicache_codeversion_fixture") -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(textwrap.dedent(source), f"<{name}>", "exec"), module.__dict__)
    return module


def version_of(source: str, func: str = "f") -> str:
    return code_version(getattr(load(source), func))


def test_the_same_code_gives_the_same_version() -> None:
    assert version_of(BASE) == version_of(BASE)
    assert version_of(BASE).startswith("code-")


def test_editing_the_function_changes_it() -> None:
    assert version_of(BASE.replace("sum(i for i in range(3))", "sum(i for i in range(4))")) != version_of(BASE)


def test_editing_a_called_function_changes_it_recursively() -> None:
    assert version_of(BASE.replace("return helper(x) * 2", "return helper(x) * 3")) != version_of(BASE)
    assert version_of(BASE.replace("return x + 1", "return x + 2")) != version_of(BASE)  # helper, via deeper


def test_unrelated_edits_keep_it() -> None:
    edited = BASE.replace("return x - 1", "return x - 2").replace("LIMIT = 10", "LIMIT = 11")
    edited = "\n\n# a comment and blank lines move every line number\n\n" + edited
    assert version_of(edited) == version_of(BASE)


def test_cycles_end_and_cover_both_functions() -> None:
    assert version_of(BASE, "even") == version_of(BASE, "even")
    assert version_of(BASE.replace("False if n == 0", "n < 0 if n == 0"), "even") != version_of(BASE, "even")


def test_memoized_helpers_count_by_their_code() -> None:
    source = """
    from oxicache import InMemCache
    cache = InMemCache()

    @cache.memoize
    def helper(x):
        return x + 1

    def f(x):
        return helper(x)
    """
    assert version_of(source) != version_of(source.replace("x + 1", "x + 5"))


def test_stable_across_processes_and_hash_seeds(tmp_path: Any) -> None:
    script = tmp_path / "v.py"
    script.write_text(textwrap.dedent("""
        import sys
        from oxicache.memo.code_version import code_version

        def f(x):
            return x in {"alpha", "beta", "gamma", "delta"}

        print(code_version(f))
    """))
    seen = {subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("0", "1", "7")}
    assert len(seen) == 1


def test_needs_a_python_function() -> None:
    with pytest.raises(TypeError, match="version='auto' fingerprints a Python function's code"):
        InMemCache().memoize(version="auto", name="len")(len)


@pytest.mark.parametrize("backend", STORING)
def test_version_auto_on_memoize(backend: str) -> None:
    cache = make(backend)
    module = load(BASE)
    f = cache.memoize(version="auto")(module.f)
    assert f(1) == f(1)
    assert f.cache_name == f"oxicache_codeversion_fixture.f@{code_version(module.f)}"
    edited = load(BASE.replace("return x + 1", "return x + 2"))
    g = cache.memoize(version="auto")(edited.f)
    assert g.cache_name != f.cache_name
    assert g(1) != f(1)  # the edited code's own value, not the stored one
    same = cache.memoize(version="auto")(load(BASE.replace("return x - 1", "return x")).f)
    assert same.cache_name == f.cache_name
    assert same.cache_info().hits == 0 and same(1) == f(1) and same.cache_info().hits == 1
