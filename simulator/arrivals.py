"""Arrival processes: when requests come, as a scenario writes them, with their theory.

Every process generates sorted arrival times in `[0, horizon)` from its own seeded stream,
in numpy blocks, and exposes its analytic long-run rate (and inter-arrival CV where defined)
so tests can hold samples against it. A process that replays a file may also carry each
request's token counts (`Arrivals.input_tokens` / `output_tokens`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from simulator.spec import Spec
from simulator.units import Rate


@dataclass(frozen=True)
class Arrivals:
    """Arrival times (seconds, sorted) and, for replayed traffic, their token counts."""

    times: np.ndarray
    input_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None


class ArrivalProcess(Spec):
    """Base of the arrival processes."""

    def mean_rate(self) -> float:
        """Long-run arrivals per second."""
        raise NotImplementedError

    def cv(self) -> float | None:
        """Coefficient of variation of inter-arrival gaps, where the process defines one."""
        return None

    def generate(self, rng: np.random.Generator, horizon: float) -> Arrivals:
        """Arrival times in `[0, horizon)`, drawn from `rng` only."""
        raise NotImplementedError


def renewal_times(
    draw_gaps: _GapSampler, rng: np.random.Generator, rate: float, horizon: float
) -> np.ndarray:
    """Cumulative sums of i.i.d. gaps up to `horizon`, drawn in blocks sized from the rate."""
    if rate <= 0 or horizon <= 0:
        return np.empty(0)
    expected = rate * horizon
    block = int(expected + 6 * math.sqrt(expected) + 16)
    chunks: list[np.ndarray] = []
    last = 0.0
    while True:
        times = last + np.cumsum(draw_gaps(rng, block))
        end = int(np.searchsorted(times, horizon, side="left"))
        chunks.append(times[:end])
        if end < block:
            break
        last = float(times[-1])
        block = max(1024, block // 4)
    return np.concatenate(chunks)


class _GapSampler:
    """A callable drawing `n` inter-arrival gaps (kept a class for typing)."""

    def __call__(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


class _ExponentialGaps(_GapSampler):
    def __init__(self, rate: float) -> None:
        self.scale = 1.0 / rate

    def __call__(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.scale, n)


class Poisson(ArrivalProcess):
    """Steady traffic: exponential gaps at a constant rate."""

    process: Literal["poisson"]
    rate: Rate

    def mean_rate(self) -> float:
        return self.rate

    def cv(self) -> float:
        return 1.0

    def generate(self, rng: np.random.Generator, horizon: float) -> Arrivals:
        if self.rate <= 0:
            return Arrivals(np.empty(0))
        return Arrivals(renewal_times(_ExponentialGaps(self.rate), rng, self.rate, horizon))


ARRIVAL_PROCESSES: tuple[type[ArrivalProcess], ...] = (Poisson,)
"""Registered arrival processes; a new one is a class plus an entry here and in `ArrivalSpec`."""

ArrivalSpec = Annotated[Poisson, Field(discriminator="process")]
