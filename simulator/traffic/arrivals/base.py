"""What every arrival process is: a scenario spec that generates times and knows its theory.

Every process generates sorted arrival times in `[0, horizon)` from its own seeded stream,
in numpy blocks, and exposes its analytic long-run rate (and inter-arrival CV where defined)
so tests can hold samples against it. A process that replays a file may also carry each
request's token counts. `clock` is the time at t = 0 in seconds since Monday 00:00, for
processes that follow the time of day.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator.records import Blocks
from simulator.scenario.spec import Spec

GapSampler = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Arrivals:
    """Arrival times (seconds, sorted) and, for replayed traffic, their token counts."""

    times: np.ndarray
    input_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    blocks: Blocks | None = None  # replayed prompts' KV blocks, when the trace has them


class ArrivalProcess(Spec):
    """Base of the arrival processes."""

    closed_loop: ClassVar[bool] = False  # True: the engine issues requests as others finish
    carries_tokens: ClassVar[bool] = False  # True: token counts come with the arrivals

    def mean_rate(self) -> float:
        """Long-run arrivals per second."""
        raise NotImplementedError

    def cv(self) -> float | None:
        """Coefficient of variation of inter-arrival gaps, where the process defines one."""
        return None

    def expected(self, horizon: float) -> float:
        """About how many arrivals `horizon` seconds hold (the run-size guard's count)."""
        return self.mean_rate() * horizon

    def draws(self, horizon: float) -> float:
        """About how many random numbers generating `horizon` seconds takes (the run-size
        guard's measure of the work before the first request: arrivals, and the candidates
        or state switches some processes draw besides)."""
        return self.expected(horizon)

    def generate(self, rng: np.random.Generator, horizon: float, clock: float = 0.0) -> Arrivals:
        """Arrival times in `[0, horizon)`, drawn from `rng` only."""
        raise NotImplementedError

    def scaled(self, factor: float) -> ArrivalProcess:
        """The same traffic at `factor` times the rate, its shape kept (a forecast's growth);
        ValueError where the process has no rate to scale."""
        raise ValueError(f"{self.__class__.__name__} arrivals cannot be scaled")


def renewal_times(
    draw_gaps: GapSampler, rng: np.random.Generator, rate: float, horizon: float
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


def thinned_poisson(
    rng: np.random.Generator,
    peak_rate: float,
    horizon: float,
    intensity: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Non-homogeneous Poisson arrivals by thinning (Lewis & Shedler): candidates at the
    peak rate, each kept with probability intensity(t) / peak_rate. Done in windows of about
    a million candidates, so memory follows the arrivals kept, not the candidates."""
    if peak_rate <= 0 or horizon <= 0:
        return np.empty(0)
    window = max(1e6 / peak_rate, 1.0)
    kept: list[np.ndarray] = []
    start = 0.0
    while start < horizon:
        end = min(start + window, horizon)
        count = int(rng.poisson(peak_rate * (end - start)))
        candidates = start + rng.random(count) * (end - start)
        keep = rng.random(count) * peak_rate < intensity(candidates)
        kept.append(np.sort(candidates[keep]))
        start = end
    return np.concatenate(kept)
