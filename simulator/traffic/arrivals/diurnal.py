"""Diurnal traffic: a non-homogeneous Poisson process following the time of day (and week).

`rate` is the long-run mean. The shape is either a smooth daily peak, `peak_to_mean` at
`peak_at` (a von Mises bump: intensity proportional to exp(k cos(2 pi (t - peak) / day)),
whose peak-to-mean ratio e^k / I0(k) is solved for k), or 24 `hourly` weights (piecewise
constant); `weekly` multiplies each day by its weight. Weights are normalized to mean 1, so
the mean rate stays `rate`. Arrivals are drawn by thinning a Poisson process at the peak.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from simulator.scenario.units import Rate
from simulator.traffic.arrivals.base import ArrivalProcess, Arrivals, thinned_poisson

DAY = 86400.0
WEEK = 7 * DAY
_CLOCK = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def parse_clock(value: object) -> float:
    """Seconds after midnight from 'HH:MM'."""
    match = _CLOCK.match(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a time of day like '14:00', got {value!r}")
    return int(match.group(1)) * 3600.0 + int(match.group(2)) * 60.0


def _concentration(peak_to_mean: float) -> float:
    """k with e^k / I0(k) = peak_to_mean (i0e(k) = I0(k) e^-k)."""
    from scipy.optimize import brentq  # scipy loads where used: start-up stays fast
    from scipy.special import i0e

    if peak_to_mean <= 1.0:
        return 0.0
    return float(brentq(lambda k: -math.log(i0e(k)) - math.log(peak_to_mean), 1e-12, 1e8))


class Diurnal(ArrivalProcess):
    """Poisson arrivals whose rate follows the day (and optionally the week)."""

    process: Literal["diurnal"]
    rate: Rate
    peak_to_mean: float | None = Field(default=None, ge=1, le=1000)
    peak_at: str = "14:00"
    hourly: list[float] | None = Field(default=None, min_length=24, max_length=24)
    weekly: list[float] | None = Field(default=None, min_length=7, max_length=7)

    @field_validator("peak_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value)
        return value

    @field_validator("hourly", "weekly")
    @classmethod
    def _weights(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (
            any(not math.isfinite(w) or w < 0 for w in value) or sum(value) <= 0
        ):
            raise ValueError("weights must be finite, >= 0 and not all zero")
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> Diurnal:
        if (self.peak_to_mean is None) == (self.hourly is None):
            raise ValueError("give either peak_to_mean (with peak_at) or hourly weights")
        return self

    def mean_rate(self) -> float:
        return self.rate

    def scaled(self, factor: float) -> Diurnal:
        return self.model_copy(update={"rate": self.rate * factor})

    def _daily(self, seconds_of_day: np.ndarray) -> np.ndarray:
        if self.hourly is not None:
            weights = np.asarray(self.hourly, dtype=np.float64)
            weights = weights / weights.mean()
            hour = np.minimum((seconds_of_day // 3600).astype(np.int64), 23)
            shaped: np.ndarray = weights[hour]
            return shaped
        k = _concentration(float(self.peak_to_mean or 1.0))
        angle = 2 * math.pi * (seconds_of_day - parse_clock(self.peak_at)) / DAY
        # exp(k cos) / I0(k), written with i0e to stay finite for large k
        from scipy.special import i0e

        bump: np.ndarray = np.exp(k * (np.cos(angle) - 1.0)) / i0e(k)
        return bump

    def intensity(self, t: np.ndarray, clock: float = 0.0) -> np.ndarray:
        """Arrivals per second at simulated times `t` (t = 0 is `clock` after Monday 00:00)."""
        absolute = (np.asarray(t, dtype=np.float64) + clock) % WEEK
        multiplier = self._daily(absolute % DAY)
        if self.weekly is not None:
            days = np.asarray(self.weekly, dtype=np.float64)
            multiplier = multiplier * (days / days.mean())[(absolute // DAY).astype(np.int64) % 7]
        scaled: np.ndarray = self.rate * multiplier
        return scaled

    def peak_rate(self) -> float:
        if self.hourly is not None:
            daily_peak = max(self.hourly) / (sum(self.hourly) / 24)
        else:
            daily_peak = float(self._daily(np.array([parse_clock(self.peak_at)]))[0])
        weekly_peak = max(self.weekly) / (sum(self.weekly) / 7) if self.weekly else 1.0
        return self.rate * daily_peak * weekly_peak

    def draws(self, horizon: float) -> float:
        """Thinning draws candidates at the peak rate."""
        return self.peak_rate() * horizon

    def generate(self, rng: np.random.Generator, horizon: float, clock: float = 0.0) -> Arrivals:
        times = thinned_poisson(rng, self.peak_rate(), horizon, lambda t: self.intensity(t, clock))
        return Arrivals(times)
