"""Debug logging of memoized calls (issue 16, item 8): hits, misses, stores and backend errors under
``oxicache.memo``, on a real store; nothing emitted and one level check per lookup when debug is off;
CallbackCache logs under its module's name."""

from __future__ import annotations

import logging
import shutil

import pytest

from oxicache import CallbackCache, DiskCache, JsonCache
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
        for _ in range(5):
            double(1)
    assert memo_records(caplog) == []
    assert asked == [logging.DEBUG] * 5  # one check per hit, nothing formatted


def test_callback_cache_logs_under_its_module_s_logger(caplog) -> None:  # type: ignore[no-untyped-def]
    def broken(key: int, value: dict) -> None:  # type: ignore[type-arg]
        raise RuntimeError("sink down")

    cache = CallbackCache(callbacks=[broken])
    with caplog.at_level(logging.ERROR, logger="oxicache"):
        cache.set("f", output=1, x=1)
    names = {r.name for r in caplog.records if "sink down" in (r.exc_text or "") or "broken" in r.getMessage()}
    assert names == {"oxicache.backends.callback"}
