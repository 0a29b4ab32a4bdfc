"""parse_ttl: the accepted forms of a time to live, and the errors for everything else."""

from __future__ import annotations

import datetime

import pytest

from oxicache.durations import parse_ttl


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        (1, 1.0),
        (3600, 3600.0),
        (0.25, 0.25),
        (10**6, 1e6),
        (datetime.timedelta(hours=1), 3600.0),
        (datetime.timedelta(milliseconds=5), 0.005),
        ("250ms", 0.25),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 86400 + 7200 + 180 + 4 + 0.005),
        ("1.5h", 5400.0),
        ("0.5s", 0.5),
        (" 1h 30m ", 5400.0),
        ("30m1h", 5400.0),
    ],
)
def test_accepted_forms(ttl, seconds):
    result = parse_ttl(ttl)
    assert isinstance(result, float)
    assert result == pytest.approx(seconds)


def test_none_means_no_expiry():
    assert parse_ttl(None) is None


@pytest.mark.parametrize(
    "ttl",
    ["", " ", "1", "h", "1x", "1 hour", "1hh", "-1h", "1h-", "1e3s", "inf", "nan", "1,5h", "1h!", "ms", "s1"],
)
def test_malformed_strings(ttl):
    with pytest.raises(ValueError) as info:
        parse_ttl(ttl)
    msg = str(info.value)
    assert repr(ttl) in msg
    assert "'90s'" in msg and "'1h30m'" in msg  # the accepted forms are listed


@pytest.mark.parametrize(
    "ttl",
    [0, 0.0, -1, -0.5, float("inf"), float("-inf"), float("nan"), datetime.timedelta(0), datetime.timedelta(seconds=-1), "0s", "0ms", "0h0m"],
)
def test_non_positive_or_infinite(ttl):
    with pytest.raises(ValueError, match="positive"):
        parse_ttl(ttl)


@pytest.mark.parametrize("ttl", [True, False, [1], {"s": 1}, b"1h", object()])
def test_wrong_types_are_a_type_error(ttl):
    with pytest.raises(TypeError) as info:
        parse_ttl(ttl)
    assert type(ttl).__name__ in str(info.value)


def test_true_is_not_a_duration_and_the_error_says_none_means_no_expiry():
    with pytest.raises(TypeError, match=r"ttl=True: .*None means no expiry"):
        parse_ttl(True)


@pytest.mark.parametrize(("ttl", "lower"), [("1M", "'1m'"), ("1H", "'1h'"), ("2D", "'2d'"), ("90S", "'90s'"), ("5MS", "'5ms'")])
def test_upper_case_units_are_refused_not_folded(ttl, lower):
    # "1M" once meant one minute silently; a reader may well mean a month
    with pytest.raises(ValueError) as info:
        parse_ttl(ttl)
    msg = str(info.value)
    assert repr(ttl) in msg and "lowercase" in msg and lower in msg


@pytest.mark.parametrize("ttl", ["1h1h", "1m30m", "5s1h5s", "1ms1ms"])
def test_a_repeated_unit_is_refused_not_summed(ttl):
    with pytest.raises(ValueError, match="more than once") as info:
        parse_ttl(ttl)
    assert repr(ttl) in str(info.value)


def test_what_names_the_option():
    with pytest.raises(ValueError, match="annotation ttl"):
        parse_ttl("soon", what="annotation ttl")
    with pytest.raises(ValueError, match="annotation ttl"):
        parse_ttl(-1, what="annotation ttl")
