"""Debug logging of memoized calls (issue 16, item 8): hits, misses, stores and backend errors under
``oxicache.memo``, on a real store; nothing emitted and one level check per lookup when debug is off;
CallbackCache logs under its module's name."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import pytest

from oxicache import CallbackCache, DiskCache, InMemCache, JsonCache
from oxicache.memo import engine


def memo_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "oxicache.memo"]


def test_misses_stores_and_hits_are_debug_events(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path)

    @cache.memoize(name="tests.logging.square")
    def square(x: int) -> int:
        return x * x

    key = f"{square.cache_key(3):032x}"
    with caplog.at_level(logging.DEBUG, logger="oxicache"):
        square(3)
        square(3)
    assert memo_records(caplog) == [f"miss tests.logging.square key={key} on JsonCache",
                                    f"stored tests.logging.square key={key} on JsonCache",
                                    f"hit tests.logging.square key={key} on JsonCache"]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "oxicache.memo")


def test_a_backend_error_is_a_debug_event_with_the_exception(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    cache = DiskCache(tmp_path / "store", on_backend_error="ignore")

    @cache.memoize(name="tests.logging.inc")
    def inc(x: int) -> int:
        return x + 1

    cache.close()
    shutil.rmtree(tmp_path / "store")
    (tmp_path / "store").write_text("no longer a folder")  # the backend cannot reopen its database
    with caplog.at_level(logging.DEBUG, logger="oxicache.memo"):
        assert inc(1) == 2
    errors = [r for r in caplog.records if r.name == "oxicache.memo" and r.getMessage().startswith("backend error")]
    assert errors and errors[0].exc_info is not None
    assert "on DiskCache: tests.logging.inc ran without the cache" in errors[0].getMessage()


def test_with_debug_off_nothing_is_logged_and_a_hit_asks_the_level_once(tmp_path, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = JsonCache(tmp_path)

    @cache.memoize
    def double(x: int) -> int:
        return 2 * x

    double(1)
    asked: list[int] = []
    real = engine.log.isEnabledFor
    monkeypatch.setattr(engine.log, "isEnabledFor", lambda level: asked.append(level) or real(level))
    with caplog.at_level(logging.INFO, logger="oxicache"):
        asked.clear()  # (a level change asks too: the native switch follows it, _logswitch.py)
        for _ in range(5):
            double(1)
        assert asked == [logging.DEBUG] * 5  # one check per hit, nothing formatted
    assert memo_records(caplog) == []


def test_callback_cache_logs_under_its_module_s_logger(caplog) -> None:  # type: ignore[no-untyped-def]
    def broken(key: int, value: dict) -> None:  # type: ignore[type-arg]
        raise RuntimeError("sink down")

    cache = CallbackCache(callbacks=[broken])
    with caplog.at_level(logging.ERROR, logger="oxicache"):
        cache.set("f", output=1, x=1)
    names = {r.name for r in caplog.records if "sink down" in (r.exc_text or "") or "broken" in r.getMessage()}
    assert names == {"oxicache.backends.callback"}


def test_the_native_wrapper_logs_hits_misses_stores_and_evictions(caplog) -> None:  # type: ignore[no-untyped-def]
    """InMemCache's native wrapper (a plain function: no Python code on a hit) logs as the Python engine
    does, and evictions too, once DEBUG is on for "oxicache"; off again, it logs nothing."""
    cache = InMemCache(max_size=2)

    @cache.memoize(name="tests.logging.native")
    def square(x: int) -> int:
        return x * x

    square(1)
    assert memo_records(caplog) == []  # the default: off
    keys = {x: f"{square.cache_key(x):032x}" for x in (1, 2, 3)}
    with caplog.at_level(logging.DEBUG, logger="oxicache"):
        assert [square(1), square(2), square(3)] == [1, 4, 9]
    assert memo_records(caplog) == [
        f"hit tests.logging.native key={keys[1]} on InMemCache",
        f"miss tests.logging.native key={keys[2]} on InMemCache",
        f"stored tests.logging.native key={keys[2]} on InMemCache",
        f"miss tests.logging.native key={keys[3]} on InMemCache",
        "evicted 1 entry on InMemCache storing tests.logging.native (max_size reached: the least recently used go)",
        f"stored tests.logging.native key={keys[3]} on InMemCache",
    ]
    caplog.clear()
    square(3)
    square(4)
    assert memo_records(caplog) == []  # at_level put the level back: the native switch followed
    assert square.cache_info().hits == 2 and cache.stats()["evictions"] == 2


def test_logging_disable_and_dict_config_reach_the_native_switch(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging.config

    cache = InMemCache()

    @cache.memoize(name="tests.logging.switch")
    def inc(x: int) -> int:
        return x + 1

    logger = logging.getLogger("oxicache")
    old = logger.level
    try:
        logging.config.dictConfig({"version": 1, "incremental": True, "loggers": {"oxicache": {"level": "DEBUG"}}})
        caplog.set_level(logging.DEBUG, logger="oxicache.memo")
        inc(1)
        assert [m.split(" ")[0] for m in memo_records(caplog)] == ["miss", "stored"]
        caplog.clear()
        logging.disable(logging.DEBUG)
        inc(1)
        assert memo_records(caplog) == []
        logging.disable(logging.NOTSET)
        inc(1)
        assert [m.split(" ")[0] for m in memo_records(caplog)] == ["hit"]
    finally:
        logging.disable(logging.NOTSET)
        logger.setLevel(old)


def test_the_engine_does_not_import_logging_and_logs_once_something_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Nothing can set a level before logging is imported, so the Python engine leaves it unimported (a
    # short script's start); configured afterwards, the events appear from the next call on.
    code = f"""
import sys
from oxicache import JsonCache
cache = JsonCache({str(tmp_path)!r})
double = cache.memoize(name="double")(lambda x: 2 * x)
assert [double(1), double(1)] == [2, 2]
assert "logging" not in sys.modules, "the engine imported logging"
import logging
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
double(1)
double(2)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    events = [line.split()[1] for line in out.splitlines() if line.startswith("oxicache.memo ")]
    assert events == ["hit", "miss", "stored"], out
