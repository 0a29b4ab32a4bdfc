"""The matrix's own helpers: the watchdog fails a body that overruns, the oracle differs per key."""

import time

import pytest
from reliability_support import expected_value, watchdog


def test_watchdog_fails_an_overrunning_body() -> None:
    with pytest.raises(AssertionError, match="ran past"), watchdog(0.05, "sleeper") as expired:
        while not expired.is_set():
            time.sleep(0.01)


def test_oracle_is_per_key_and_sized() -> None:
    assert expected_value("a") != expected_value("b")
    assert len(expected_value("a", 1000)) == 1032
    assert expected_value(1, 10) == expected_value(1, 10)


def test_seed_is_an_int(seed: int) -> None:
    assert isinstance(seed, int)
