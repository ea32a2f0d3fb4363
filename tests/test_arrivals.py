"""Arrival processes against their analytic rate and inter-arrival CV."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.traffic.arrivals import Poisson
from tests.stats_helpers import Z, batch_tolerance, cv


@settings(max_examples=30, deadline=None)
@given(st.floats(0.01, 500), st.integers(0, 2**32))
def test_poisson_rate_and_cv(rate: float, seed: int) -> None:
    process = Poisson(process="poisson", rate=rate)
    horizon = 50_000 / rate
    times = process.generate(np.random.default_rng(seed), horizon).times
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < horizon
    expected_count = process.mean_rate() * horizon
    # a Poisson count has variance equal to its mean
    assert abs(len(times) - expected_count) <= Z * math.sqrt(expected_count)
    gaps = np.diff(times)
    assert abs(cv(gaps) - process.cv()) <= batch_tolerance(gaps, cv)


def test_zero_rate_gives_no_arrivals() -> None:
    assert (
        len(Poisson(process="poisson", rate=0).generate(np.random.default_rng(0), 1e6).times) == 0
    )


def test_counts_in_disjoint_windows_are_independent_and_poisson() -> None:
    times = Poisson(process="poisson", rate=2.0).generate(np.random.default_rng(5), 200_000).times
    counts = np.histogram(times, bins=np.arange(0, 200_001, 10.0))[0]
    # index of dispersion of a Poisson process is 1; its standard error is ~sqrt(2/(k-1))
    dispersion = counts.var(ddof=1) / counts.mean()
    assert abs(dispersion - 1) <= Z * math.sqrt(2 / (len(counts) - 1))
