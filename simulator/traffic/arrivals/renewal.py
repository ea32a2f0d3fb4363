"""Renewal processes: i.i.d. gaps. Poisson (exponential gaps) and gamma (any CV)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from simulator.scenario.units import Rate
from simulator.traffic.arrivals.base import ArrivalProcess, Arrivals, renewal_times


class Poisson(ArrivalProcess):
    """Steady traffic: exponential gaps at a constant rate."""

    process: Literal["poisson"]
    rate: Rate

    def mean_rate(self) -> float:
        return self.rate

    def scaled(self, factor: float) -> ArrivalProcess:
        return self.model_copy(update={"rate": self.rate * factor})

    def cv(self) -> float:
        return 1.0

    def generate(self, rng: np.random.Generator, horizon: float, clock: float = 0.0) -> Arrivals:
        scale = 1.0 / self.rate if self.rate > 0 else 0.0
        times = renewal_times(lambda g, n: g.exponential(scale, n), rng, self.rate, horizon)
        return Arrivals(times)


class Gamma(ArrivalProcess):
    """Renewal traffic with gamma gaps: mean 1 / rate, coefficient of variation `cv`.

    cv = 1 is Poisson; cv > 1 is bursty (many short gaps, a few long silences); cv < 1 is
    more regular than Poisson. The process is an ordinary renewal process started at 0.
    """

    process: Literal["gamma"]
    rate: Rate
    cv_: float = Field(alias="cv", gt=0, le=100)

    def mean_rate(self) -> float:
        return self.rate

    def scaled(self, factor: float) -> ArrivalProcess:
        return self.model_copy(update={"rate": self.rate * factor})

    def cv(self) -> float:
        return self.cv_

    def generate(self, rng: np.random.Generator, horizon: float, clock: float = 0.0) -> Arrivals:
        shape = 1.0 / self.cv_**2
        scale = 1.0 / (self.rate * shape) if self.rate > 0 else 0.0
        times = renewal_times(lambda g, n: g.gamma(shape, scale, n), rng, self.rate, horizon)
        return Arrivals(times)
