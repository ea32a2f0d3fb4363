"""Markov-modulated Poisson process: bursts and lulls, or on/off traffic.

The process stays in state i for an exponential time of mean `mean_duration`, sending
Poisson arrivals at that state's `rate`, then jumps to one of the other states, each
equally likely (with two states: it alternates). That jump chain is doubly stochastic,
so the long-run share of time in state i is mean_duration_i / sum of mean durations.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from simulator.scenario.spec import Spec
from simulator.scenario.units import Duration, Rate
from simulator.traffic.arrivals.base import ArrivalProcess, Arrivals


class MMPPState(Spec):
    rate: Rate
    mean_duration: Duration = Field(gt=0)


class MMPP(ArrivalProcess):
    """Markov-modulated Poisson arrivals over two or more states."""

    process: Literal["mmpp"]
    states: list[MMPPState] = Field(min_length=2, max_length=32)

    def _shares(self) -> np.ndarray:
        durations = np.array([s.mean_duration for s in self.states])
        shares: np.ndarray = durations / durations.sum()
        return shares

    def scaled(self, factor: float) -> MMPP:
        states = [s.model_copy(update={"rate": s.rate * factor}) for s in self.states]
        return self.model_copy(update={"states": states})

    def mean_rate(self) -> float:
        return float(self._shares() @ np.array([s.rate for s in self.states]))

    def _generator(self) -> tuple[np.ndarray, np.ndarray]:
        """(Q, rates): the state chain's generator matrix and each state's arrival rate."""
        n = len(self.states)
        leave = np.array([1.0 / s.mean_duration for s in self.states])
        q = np.repeat((leave / (n - 1))[:, None], n, axis=1)
        np.fill_diagonal(q, -leave)
        return q, np.array([s.rate for s in self.states])

    def cv(self) -> float | None:
        """CV of the gap between consecutive arrivals (stationary, any number of states).

        The gaps are phase-type: with D0 = Q - diag(rates) and the state seen by an arrival
        p = shares x rates / mean rate, E[X^k] = k! p (-D0)^-k 1 (Neuts).
        """
        q, rates = self._generator()
        if rates.sum() == 0:
            return None
        at_arrival = self._shares() * rates
        at_arrival = at_arrival / at_arrival.sum()
        inverse = np.linalg.inv(np.diag(rates) - q)
        ones = np.ones(len(rates))
        m1 = float(at_arrival @ inverse @ ones)
        m2 = float(2 * at_arrival @ inverse @ inverse @ ones)
        return math.sqrt(max(m2 - m1 * m1, 0.0)) / m1

    def index_of_dispersion(self, window: float) -> float | None:
        """Var / mean of the count in a window of `window` seconds (two states, stationary).

        With switching rates r1 = 1/d1, r2 = 1/d2 and rates l1, l2:
        IDC(t) = 1 + 2 (l1 - l2)^2 r1 r2 / ((r1 + r2)^3 m) x (1 - (1 - e^{-(r1+r2)t}) / ((r1+r2)t))
        where m is the mean rate (Heffes & Lucantoni 1986).
        """
        if len(self.states) != 2 or self.mean_rate() == 0:
            return None
        (a, b) = self.states
        r1, r2 = 1.0 / a.mean_duration, 1.0 / b.mean_duration
        s = r1 + r2
        asymptotic = 2 * (a.rate - b.rate) ** 2 * r1 * r2 / (s**3 * self.mean_rate())
        return 1.0 + asymptotic * (1.0 - (1.0 - math.exp(-s * window)) / (s * window))

    def draws(self, horizon: float) -> float:
        """Arrivals, and a switch of state each mean duration: n states over a cycle of the
        sum of their mean durations."""
        cycle = sum(s.mean_duration for s in self.states)
        return self.mean_rate() * horizon + horizon * len(self.states) / cycle

    def generate(self, rng: np.random.Generator, horizon: float, clock: float = 0.0) -> Arrivals:
        n_states = len(self.states)
        rates = np.array([s.rate for s in self.states])
        durations = np.array([s.mean_duration for s in self.states])
        # sojourns: the first state from the stationary shares (exact: sojourns are memoryless)
        expected_switches = horizon / durations.mean() + 16
        block = int(expected_switches + 6 * math.sqrt(expected_switches))
        states: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        current = int(rng.choice(n_states, p=self._shares()))
        covered = 0.0
        while covered < horizon:
            steps = rng.integers(1, n_states, block)  # jump to one of the other states
            sequence = (current + np.concatenate([[0], np.cumsum(steps[:-1])])) % n_states
            sojourn = rng.exponential(durations[sequence])
            states.append(sequence)
            lengths.append(sojourn)
            covered += float(sojourn.sum())
            current = int((sequence[-1] + steps[-1]) % n_states)
        state = np.concatenate(states)
        length = np.concatenate(lengths)
        start = np.concatenate([[0.0], np.cumsum(length)[:-1]])
        keep = start < horizon
        state, length, start = state[keep], length[keep], start[keep]
        counts = rng.poisson(rates[state] * length)
        times = np.repeat(start, counts) + rng.random(int(counts.sum())) * np.repeat(length, counts)
        times.sort()
        return Arrivals(times[times < horizon])
