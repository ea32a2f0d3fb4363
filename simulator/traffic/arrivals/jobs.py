"""Batch jobs: `requests` requests submitted at once, every `every`, from `start`."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from simulator.scenario.units import Duration
from simulator.traffic.arrivals.base import ArrivalProcess, Arrivals


class BatchJobs(ArrivalProcess):
    """Deterministic submissions of many requests at the same instant (nightly jobs)."""

    process: Literal["batch_jobs"]
    every: Duration = Field(gt=0)
    requests: int = Field(ge=1, le=100_000_000)
    start: Duration = 0.0

    def mean_rate(self) -> float:
        return self.requests / self.every

    def scaled(self, factor: float) -> BatchJobs:
        """Jobs of `factor` times the requests (rounded, at least one)."""
        return self.model_copy(update={"requests": max(1, round(self.requests * factor))})

    def generate(self, rng: np.random.Generator, horizon: float, clock: float = 0.0) -> Arrivals:
        submissions = np.arange(self.start, horizon, self.every)
        return Arrivals(np.repeat(submissions, self.requests))
