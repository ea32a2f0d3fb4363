"""Closed-loop traffic: `concurrency` clients, each sending its next request when the last
one finished (after an optional think time). Throughput then follows from latency, as in a
load-test probe; the engine issues these requests, so there is nothing to pre-generate."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from simulator.scenario.units import Duration
from simulator.traffic.arrivals.base import ArrivalProcess, Arrivals

ASSUMED_LATENCY_S = 1.0
"""Latency assumed only to estimate a closed workload's size before it runs."""


class Closed(ArrivalProcess):
    """A fixed number of requests in flight (or thinking). With `ramp`, client k sends its
    first request at k x ramp / concurrency instead of all at once, as load generators do,
    so the clients do not move in lockstep."""

    closed_loop: ClassVar[bool] = True
    process: Literal["closed"]
    concurrency: int = Field(ge=1, le=100_000)
    think_time: Duration = 0.0
    ramp: Duration = 0.0

    def start_of(self, client: int) -> float:
        """When client `client` (0-based) sends its first request."""
        return client * self.ramp / self.concurrency

    def scaled(self, factor: float) -> Closed:
        raise ValueError(
            "closed-loop arrivals have no rate to grow: their pace follows the answers "
            "(give the workload an open arrival process to forecast it)"
        )

    def mean_rate(self) -> float:
        """An upper-bound estimate (the real rate depends on latency): used for sizing only."""
        return self.concurrency / max(self.think_time + ASSUMED_LATENCY_S, 1e-3)

    def generate(self, rng: np.random.Generator, horizon: float, clock: float = 0.0) -> Arrivals:
        return Arrivals(np.empty(0))
