"""The batch queue is an M/G/1 queue over tokens: check it against Pollaczek-Khinchine
(M/D/1 as the special case) and Little's law, with tolerances computed from each run."""

import math

import numpy as np
import pytest
from scipy import stats

from simulator.records import Outcome
from simulator.report.metrics import time_average_in_system
from tests.helpers import BASE, make_scenario, run_checked

RATE = 2.0  # arrivals per second
BATCHES = 20


def _batch_means_tolerance(values: np.ndarray) -> float:
    """Half-width of a 1e-5 two-sided interval from batch means of autocorrelated waits."""
    means = np.array([b.mean() for b in np.array_split(values, BATCHES)])
    sem = means.std(ddof=1) / math.sqrt(BATCHES)
    return float(stats.t.ppf(1 - 0.5e-5, BATCHES - 1) * sem)


def _batch_scenario(input_tokens: dict, tokens_per_s: float, seed: int) -> object:
    workload = {
        **BASE["workloads"][0],
        "route": ["batch"],
        "arrivals": {"process": "poisson", "rate": RATE},
        "input_tokens": input_tokens,
        "output_tokens": {"dist": "fixed", "value": 1},
    }
    return make_scenario(
        seed=seed,
        horizon=100_000,
        warmup=10_000,
        workloads=[workload],
        deployments=[
            {
                "name": "batch",
                "kind": "batch",
                "tokens_per_s": tokens_per_s,
                "max_enqueued_tokens": 1e15,
            }
        ],
    )


CASES = {
    # M/D/1: every request 1,000 + 1 tokens
    "M/D/1": ({"dist": "fixed", "value": 1000}, np.array([1001.0]), np.array([1.0])),
    # M/G/1 with a three-point service law
    "M/G/1": (
        {"dist": "empirical", "values": [199, 999, 4999], "weights": [0.5, 0.3, 0.2]},
        np.array([200.0, 1000.0, 5000.0]),
        np.array([0.5, 0.3, 0.2]),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mean_wait_matches_pollaczek_khinchine(case: str, seed: int) -> None:
    spec, tokens, probs = CASES[case]
    mean_tokens = float(tokens @ probs)
    tokens_per_s = RATE * mean_tokens / 0.7  # utilization 0.7
    result = run_checked(_batch_scenario(spec, tokens_per_s, seed))
    r = result.runs[0].records
    service = tokens / tokens_per_s
    rho = RATE * float(service @ probs)
    expected_wait = RATE * float(service**2 @ probs) / (2 * (1 - rho))
    measured = r.arrival >= 10_000
    waits = (r.start - r.arrival)[measured]
    assert abs(waits.mean() - expected_wait) <= _batch_means_tolerance(waits)
    # the report's queue figure is the same quantity
    report_wait = result.report["workloads"][0]["latency"]["queue_s"]["mean"]
    assert report_wait == pytest.approx(waits.mean())


def test_littles_law_for_queue_and_system() -> None:
    spec, tokens, probs = CASES["M/G/1"]
    tokens_per_s = RATE * float(tokens @ probs) / 0.8
    r = run_checked(_batch_scenario(spec, tokens_per_s, 9)).runs[0].records
    assert np.all(r.outcome == Outcome.COMPLETED)
    t0, t1 = 10_000.0, 100_000.0
    inside = (r.arrival >= t0) & (r.arrival < t1)
    arrival_rate = inside.sum() / (t1 - t0)
    for label, begin, end in (("system", r.arrival, r.finish), ("queue", r.arrival, r.start)):
        occupancy = time_average_in_system(begin, end, t0, t1)
        sojourn = (end - begin)[inside].mean()
        # edge effects: intervals straddling t0 or t1 are counted by one side only
        straddling = ((begin < t0) & (end > t0)) | ((begin < t1) & (end > t1))
        edge = float((end - begin)[straddling].sum()) / (t1 - t0)
        assert abs(occupancy - arrival_rate * sojourn) <= edge + 1e-9, label
        assert occupancy > 0.5, label  # the test is not vacuous


def test_batch_refuses_what_exceeds_the_enqueued_token_cap() -> None:
    workload = {
        **BASE["workloads"][0],
        "route": ["batch", "serverless"],
        "arrivals": {"process": "poisson", "rate": 5},
    }
    scenario = make_scenario(
        horizon=3600,
        workloads=[workload],
        deployments=[
            {
                "name": "batch",
                "kind": "batch",
                "tokens_per_s": 4000,
                "max_enqueued_tokens": 200_000,
            },
            {"name": "serverless", "kind": "serverless"},
        ],
    )
    result = run_checked(scenario)
    r = result.runs[0].records
    batch_rows = r.deployment == 0
    # every admitted request found room: backlog at admission + its tokens <= cap
    backlog = np.zeros(len(r))
    busy_until = 0.0
    for i in np.flatnonzero(batch_rows):
        backlog[i] = max(0.0, busy_until - r.arrival[i]) * 4000
        busy_until = r.finish[i]
    assert np.all(backlog[batch_rows] + 4000 <= 200_000 + 1e-6)
    spilled = result.report["deployments"][0]["spilled"]
    assert spilled > 0 and spilled == int((r.deployment == 1).sum())
    # the SLA holds by construction: the longest wait is cap / rate = 50 s
    assert (r.finish - r.arrival)[batch_rows].max() <= 200_000 / 4000 + 1e-9


def test_completion_slo_reports_late_batches() -> None:
    workload = {
        **BASE["workloads"][0],
        "route": ["batch"],
        "slo": {"completion": "10m"},
        "arrivals": {"process": "poisson", "rate": 1},
    }
    scenario = make_scenario(
        horizon=3600,
        workloads=[workload],
        deployments=[{"name": "batch", "kind": "batch", "tokens_per_s": 3000}],
    )
    result = run_checked(scenario)
    entry = result.report["workloads"][0]["slo"][0]
    r = result.runs[0].records
    e2e = r.finish - r.arrival
    # over capacity (4,001 tokens/s offered, 3,000 served): the backlog grows and SLAs are missed
    assert entry["metric"] == "completion" and entry["quantile"] == 1.0
    assert entry["observed_s"] == pytest.approx(e2e.max())
    assert entry["attainment"] == pytest.approx(np.mean(e2e <= 600))
    assert 0 < entry["attainment"] < 1 and entry["met"] is False
