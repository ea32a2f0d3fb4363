"""Durations (`90s`, `15m`, `24h`, `7d`) and rates (`5/s`, `300/min`, `2000000/month`).

Everything inside capsim is in seconds; these parsers are the only place units live.
A rate per month needs the scenario's month, passed through pydantic's validation context.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, WithJsonSchema

DEFAULT_MONTH_S = 30 * 86400.0

_DURATION_UNITS = {
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_RATE_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "m": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "w": 7 * 86400.0,
    "week": 7 * 86400.0,
}
_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
_DURATION_RE = re.compile(rf"^\s*{_NUMBER}\s*([a-z]+)?\s*$")
_RATE_RE = re.compile(rf"^\s*{_NUMBER}\s*/\s*([a-z]+)\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from `90s`, `15m`, `24h`, `7d`, `250ms` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '90s', '15m', '24h', '7d', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value.lower())
        unit = match.group(2) if match else None
        if not match or (unit is not None and unit not in _DURATION_UNITS):
            raise ValueError(f"expected a duration like '90s', '15m', '24h', '7d', got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[unit or "s"]
    else:
        raise ValueError(f"expected a duration like '90s', '15m', '24h', '7d', got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and >= 0, got {value!r}")
    return seconds


def parse_rate(value: Any, month_s: float = DEFAULT_MONTH_S) -> float:
    """Events per second from `5/s`, `300/min`, `2000000/month` or a bare number per second."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate like '5/s', '300/min', '2000000/month', got {value!r}")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str):
        match = _RATE_RE.match(value.lower())
        if not match:
            raise ValueError(
                f"expected a rate like '5/s', '300/min', '2000000/month', got {value!r}"
            )
        unit = match.group(2)
        if unit in ("month", "mo"):
            period = month_s
        elif unit in _RATE_UNITS:
            period = _RATE_UNITS[unit]
        else:
            raise ValueError(
                f"unknown rate unit {unit!r} in {value!r}: use /s, /min, /h, /day, /week or /month"
            )
        rate = float(match.group(1)) / period
    else:
        raise ValueError(f"expected a rate like '5/s', '300/min', '2000000/month', got {value!r}")
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"a rate must be finite and >= 0, got {value!r}")
    return rate


def _validate_rate(value: Any, info: ValidationInfo) -> float:
    context = info.context or {}
    return parse_rate(value, context.get("month_s", DEFAULT_MONTH_S))


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "description": "seconds"},
                {"type": "string", "pattern": r"^\s*[0-9.eE+-]+\s*(ms|s|sec|m|min|h|d|w)?\s*$"},
            ],
            "description": "a duration: seconds, or '250ms', '90s', '15m', '24h', '7d'",
        }
    ),
]
"""A duration in seconds, written as a number of seconds or with a unit."""

Rate = Annotated[
    float,
    BeforeValidator(_validate_rate),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "description": "per second"},
                {"type": "string", "pattern": r"^\s*[0-9.eE+-]+\s*/\s*[a-z]+\s*$"},
            ],
            "description": "a rate: per second, or '5/s', '300/min', '2000000/month'",
        }
    ),
]
"""A rate in events per second; `/month` uses the scenario's month."""


def parse_share(value: Any) -> float:
    """A share in (0, 1] from `99.9%` or `0.999` (an availability target)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a share such as '99.9%' or 0.999, got {value!r}")
    text = str(value).strip()
    try:
        share = round(float(text[:-1]) / 100, 12) if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"expected a share such as '99.9%' or 0.999, got {value!r}") from None
    if not 0 < share <= 1:  # NaN fails this too
        raise ValueError(f"expected a share above 0 and at most 100%, got {value!r}")
    return share
