import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.scenario.units import parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 604800),
        ("250ms", 0.25),
        (12, 12),
        ("1.5h", 5400),
        ("30d", 2592000),
        ("2w", 1209600),
        (" 3 min ", 180),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5 parsecs", "-3s", "abc", None, True, [1], "nan"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "per_s"),
    [
        ("5/s", 5),
        ("300/min", 5),
        ("3600/h", 1),
        ("86400/day", 1),
        (2.5, 2.5),
        ("2000000/month", 2_000_000 / (30 * 86400)),
    ],
)
def test_rates(text: object, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


def test_month_rate_uses_the_scenarios_month() -> None:
    assert parse_rate("2000000/month", month_s=31 * 86400) == pytest.approx(2e6 / (31 * 86400))


@pytest.mark.parametrize("bad", ["5", "5/parsec", "-1/s", "fast", None])
def test_bad_rates_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_rate(bad)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_duration_round_trip(seconds: float) -> None:
    assert math.isclose(parse_duration(f"{seconds!r}s"), seconds)
