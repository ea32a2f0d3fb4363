"""Bursty, on/off, diurnal, batch-job and closed-loop traffic against their theory."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from simulator.records import Outcome
from simulator.traffic.arrivals import MMPP, ArrivalSpec, BatchJobs, Diurnal, Gamma
from tests.helpers import BASE, make_scenario, run_checked
from tests.stats_helpers import Z, batch_tolerance, cv

PROCESS: TypeAdapter[object] = TypeAdapter(ArrivalSpec)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.1, 50), st.floats(0.3, 6), st.integers(0, 2**32))
def test_gamma_rate_and_cv(rate: float, target_cv: float, seed: int) -> None:
    process = Gamma(process="gamma", rate=rate, cv=target_cv)
    horizon = 200_000 / rate
    times = process.generate(np.random.default_rng(seed), horizon).times
    gaps = np.diff(times)
    assert abs(gaps.mean() - 1 / rate) <= Z * gaps.std() / math.sqrt(len(gaps))
    assert abs(cv(gaps) - target_cv) <= batch_tolerance(gaps, cv)


MMPPS = [
    # on/off: bursts of 5/s for 2 min, silence for 8 min
    [{"rate": 5, "mean_duration": 120}, {"rate": 0, "mean_duration": 480}],
    # busy and quiet
    [{"rate": 20, "mean_duration": 30}, {"rate": 2, "mean_duration": 300}],
    # three states
    [
        {"rate": 1, "mean_duration": 600},
        {"rate": 8, "mean_duration": 60},
        {"rate": 30, "mean_duration": 10},
    ],
]


@pytest.mark.parametrize("states", MMPPS, ids=["on-off", "busy-quiet", "three-state"])
def test_mmpp_long_run_rate_cv_and_dispersion(states: list) -> None:
    process = MMPP(process="mmpp", states=states)
    horizon = 4e7 / process.mean_rate() / 10
    times = process.generate(np.random.default_rng(11), horizon).times
    # rate: the count over many independent switching cycles; its variance is IDC(T) x mean
    window = horizon / 200
    counts = np.histogram(times, bins=np.linspace(0, horizon, 201))[0]
    rate_tolerance = Z * counts.std(ddof=1) / math.sqrt(len(counts)) / window
    assert abs(len(times) / horizon - process.mean_rate()) <= rate_tolerance
    gaps = np.diff(times)
    expected_cv = process.cv()
    assert expected_cv is not None
    assert abs(cv(gaps) - expected_cv) <= batch_tolerance(gaps, cv)
    if len(states) == 2:
        for w in (10.0, 60.0, 600.0):
            c = np.histogram(times, bins=np.arange(0, horizon, w))[0]
            dispersions = np.array([p.var(ddof=1) / p.mean() for p in np.array_split(c, 40)])
            observed = c.var(ddof=1) / c.mean()
            tolerance = Z * dispersions.std(ddof=1) / math.sqrt(40)
            assert abs(observed - process.index_of_dispersion(w)) <= tolerance, w


def test_an_mmpp_of_equal_rates_is_poisson() -> None:
    process = MMPP(
        process="mmpp", states=[{"rate": 3, "mean_duration": 10}, {"rate": 3, "mean_duration": 100}]
    )
    assert process.cv() == pytest.approx(1.0)
    assert process.index_of_dispersion(60) == pytest.approx(1.0)


DIURNALS = [
    {"process": "diurnal", "rate": 2.0, "peak_to_mean": 3, "peak_at": "14:00"},
    {
        "process": "diurnal",
        "rate": 2.0,
        "hourly": [1] * 8 + [4] * 10 + [2] * 6,
        "weekly": [1, 1, 1, 1, 1.2, 0.4, 0.3],
    },
]


@pytest.mark.parametrize("spec", DIURNALS, ids=["peak", "hourly-weekly"])
def test_diurnal_hourly_counts_follow_the_profile(spec: dict) -> None:
    process = PROCESS.validate_python(spec)
    assert isinstance(process, Diurnal)
    clock = 2 * 86400 + 9 * 3600  # Wednesday 09:00 at t = 0
    horizon = 28 * 86400.0
    times = process.generate(np.random.default_rng(4), horizon, clock).times
    counts = np.histogram(times, bins=np.arange(0, horizon + 1, 3600))[0]
    # expected count per hour: the intensity integrated over that hour (midpoint rule, 60 pts)
    grid = np.arange(0, horizon, 60.0) + 30.0
    expected = process.intensity(grid, clock).reshape(-1, 60).sum(axis=1) * 60.0
    # Poisson counts: standardized residuals are ~N(0, 1) hour by hour
    residuals = (counts - expected) / np.sqrt(expected)
    assert np.all(np.abs(residuals) <= 6)
    assert abs(residuals.mean()) <= Z / math.sqrt(len(residuals))
    assert abs(residuals.var() - 1) <= Z * math.sqrt(2 / len(residuals))
    assert abs(len(times) / horizon - process.mean_rate()) / process.mean_rate() < 0.01
    peak = process.intensity(grid, clock).max() / process.mean_rate()
    if "peak_to_mean" in spec:
        assert peak == pytest.approx(3, rel=1e-3)  # the peak-to-mean asked for


def test_the_scenario_start_shifts_the_diurnal_peak() -> None:
    spec = {"process": "diurnal", "rate": "10/s", "peak_to_mean": 4, "peak_at": "14:00"}
    workload = {**BASE["workloads"][0], "arrivals": spec}
    result = run_checked(make_scenario(horizon="1d", start="tue 08:00", workloads=[workload]))
    arrivals = result.runs[0].records.arrival
    busiest_hour = int(np.argmax(np.histogram(arrivals, bins=np.arange(0, 86401, 3600))[0]))
    assert busiest_hour in (5, 6)  # 14:00 is six hours after the 08:00 start


def test_batch_jobs_submit_their_requests_at_once() -> None:
    process = BatchJobs(process="batch_jobs", every=6 * 3600, requests=500, start=3600)
    times = process.generate(np.random.default_rng(0), 86400).times
    values, counts = np.unique(times, return_counts=True)
    assert values.tolist() == [3600, 25200, 46800, 68400] and set(counts) == {500}
    assert process.mean_rate() == pytest.approx(500 / 21600)


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_closed_loop_keeps_exactly_its_concurrency_in_flight(concurrency: int) -> None:
    workload = {
        **BASE["workloads"][0],
        "arrivals": {"process": "closed", "concurrency": concurrency},
        "output_tokens": {"dist": "exponential", "mean": 200},
    }
    result = run_checked(make_scenario(horizon="30m", workloads=[workload]))
    r = result.runs[0].records
    assert np.all(r.outcome == Outcome.COMPLETED)
    events = np.concatenate(
        [np.stack([r.arrival, np.ones(len(r))], 1), np.stack([r.finish, -np.ones(len(r))], 1)]
    )
    # at equal times a finish comes before the next send
    events = events[np.lexsort((events[:, 1], events[:, 0]))]
    in_flight = np.cumsum(events[:, 1])
    assert in_flight.max() == concurrency
    # throughput = concurrency / mean latency (Little's law, no think time)
    e2e = (r.finish - r.arrival).mean()
    assert len(r) == pytest.approx(concurrency * 1800 / e2e, rel=0.05)


def test_closed_loop_think_time_slows_each_client() -> None:
    workload = {
        **BASE["workloads"][0],
        "arrivals": {"process": "closed", "concurrency": 2, "think_time": "10s"},
    }
    r = run_checked(make_scenario(horizon="1h", workloads=[workload])).runs[0].records
    latency = 0.4 + 999 / 80  # the default serverless endpoint, 1,000 output tokens
    assert len(r) == pytest.approx(2 * 3600 / (latency + 10), abs=2)


@pytest.mark.parametrize(
    "spec",
    [
        {"process": "gamma", "rate": "1/s"},
        {"process": "mmpp", "states": [{"rate": 1, "mean_duration": 10}]},
        {"process": "diurnal", "rate": 1},
        {"process": "diurnal", "rate": 1, "peak_to_mean": 2, "peak_at": "25:00"},
        {"process": "diurnal", "rate": 1, "hourly": [1] * 23},
        {"process": "batch_jobs", "every": "1h"},
        {"process": "closed", "concurrency": 0},
    ],
)
def test_bad_processes_are_refused(spec: dict) -> None:
    with pytest.raises(ValidationError):
        PROCESS.validate_python(spec)
