"""Replica failures (`failures: {mtbf, repair, retries}`): availability against the
alternating-renewal value, what a failure does to the requests a replica held and to those
that arrive while it is down, and that nothing changes when failures cost nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator import ScenarioError
from simulator.records import Outcome, Reason
from simulator.scenario.deployments import GPU_SECONDS_BETWEEN_FAILURES, FailuresSpec
from tests.helpers import BASE, make_scenario, run_checked

MODELS = {"m": {"price": {"input": 0.2, "output": 0.2}, "architecture": {"like": "llama-3.1-8b"}}}
FAST = {"model": "fixed", "prefill_tokens_per_s": 50_000, "tpot": 0.01}


def _scenario(failures: dict | None, *, replicas: int = 3, rate: str = "1/s", horizon: str = "1d",
              route: tuple[str, ...] = ("pool", "serverless"), max_queue: int | None = None,
              seed: int = 1) -> object:  # fmt: skip
    pool: dict = {
        "name": "pool", "kind": "dedicated", "model": "m", "gpu": "H100-SXM",
        "replicas": replicas, "performance": FAST,
    }  # fmt: skip
    if failures is not None:
        pool["failures"] = failures
    if max_queue is not None:
        pool["max_queue"] = max_queue
    workload = {
        **BASE["workloads"][0],
        "model": "m",
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "fixed", "value": 500},
        "output_tokens": {"dist": "fixed", "value": 100},
        "slo": {"availability": "99.9%"},
        "route": list(route),
    }
    return make_scenario(
        seed=seed, horizon=horizon, models=MODELS, workloads=[workload],
        deployments=[pool, {"name": "serverless", "kind": "serverless"}],
    )  # fmt: skip


def test_replica_availability_converges_to_mtbf_over_mtbf_plus_repair() -> None:
    """Up and down times exponential: each replica's state is a two-state Markov chain
    (rates a = 1/mtbf, b = 1/repair), up with probability p = b / (a + b) = mtbf / (mtbf +
    repair); its time-average over T has variance ~ 2 p (1 - p) / ((a + b) T), divided by
    the replicas (independent). The observed share lies within 4 of those deviations."""
    mtbf, repair, replicas, days = 3600.0, 900.0, 4, 20
    scenario = _scenario(
        {"mtbf": mtbf, "repair": repair}, replicas=replicas, rate="1/min", horizon=f"{days}d"
    )
    pool = run_checked(scenario).report["deployments"][0]
    a, b = 1 / mtbf, 1 / repair
    p = b / (a + b)
    horizon = days * 86400.0
    sd = math.sqrt(2 * p * (1 - p) / ((a + b) * horizon) / replicas)
    assert pool["replica_availability"] == pytest.approx(p, abs=4 * sd)
    assert pool["failures"] == pytest.approx(replicas * horizon / (mtbf + repair), rel=0.15)
    # reserved GPUs are billed while down: the whole horizon, every replica
    assert pool["gpu_hours"] == pytest.approx(replicas * horizon / 3600, rel=1e-3)


def test_repair_zero_changes_nothing() -> None:
    plain = run_checked(_scenario(None, rate="3/s", horizon="2h")).runs[0].records
    free = run_checked(_scenario({"mtbf": "5m", "repair": 0}, rate="3/s", horizon="2h"))
    r = free.runs[0].records
    for column in ("deployment", "outcome", "start", "first_token", "finish"):
        assert np.array_equal(getattr(plain, column), getattr(r, column), equal_nan=True)
    pool = free.report["deployments"][0]
    assert pool["failures"] == 0 and pool["requests_lost"] == 0


def _down_intervals(timeline: list[list[float]], horizon: float) -> list[tuple[float, float]]:
    """When a one-replica pool had no replica up, from its replicas-over-time."""
    down, since = [], None
    for t, up in timeline:
        if up == 0 and since is None:
            since = t
        elif up > 0 and since is not None:
            down.append((since, t))
            since = None
    if since is not None:
        down.append((since, math.inf))
    return down


def test_a_lone_replica_loses_exactly_what_arrives_while_it_is_down_or_it_held() -> None:
    """One replica, no queue, nothing else on the route: a request arriving while the
    replica is down is refused (no capacity); one it held when it failed is retried, finds
    no room (the replica is down, the queue holds none) and is lost (replica_failure);
    every other request completes."""
    scenario = _scenario(
        {"mtbf": "30m", "repair": "5m"}, replicas=1, rate="1/s", horizon="6h",
        route=("pool",), max_queue=0,
    )  # fmt: skip
    result = run_checked(scenario)
    pool = result.report["deployments"][0]
    r = result.runs[0].records
    down = _down_intervals(pool["replicas_timeline"], scenario.horizon)
    assert pool["failures"] == len(down) >= 3
    in_down = np.zeros(len(r), dtype=bool)
    for lo, hi in down:
        in_down |= (r.arrival >= lo) & (r.arrival < hi)
    failed_at = np.array([lo for lo, _ in down])
    lost = r.reason == Reason.REPLICA_FAILURE
    refused = r.reason == Reason.NO_CAPACITY
    # refused: exactly the arrivals while down (the queue holds none while up: max_queue 0,
    # and this fast replica has room for every request, one at a time or more)
    assert np.array_equal(refused, in_down)
    # lost: requests in service at a failure (arrived before it, would have finished after)
    assert pool["requests_lost"] == int(lost.sum()) > 0
    assert pool["requests_retried"] == pool["requests_lost"]  # retried once, nowhere to go
    for i in np.flatnonzero(lost):
        assert np.any((failed_at >= r.arrival[i]) & (failed_at - r.arrival[i] < 60))
    assert np.all(r.outcome[~lost & ~refused] == Outcome.COMPLETED)
    workload = result.report["workloads"][0]
    entry = workload["slo"][0]
    assert entry["metric"] == "availability"
    assert entry["observed"] == pytest.approx(1 - (lost.sum() + refused.sum()) / len(r))


def test_a_retried_request_is_served_elsewhere_and_its_latency_counts_the_lost_work() -> None:
    result = run_checked(_scenario({"mtbf": "20m", "repair": "10m"}, rate="2/s", horizon="4h"))
    pool = result.report["deployments"][0]
    assert pool["requests_retried"] > 0 and pool["requests_lost"] == 0
    r = result.runs[0].records
    assert np.all(r.outcome == Outcome.COMPLETED)
    # a request's end-to-end time is at least its own service; retried ones took longer
    e2e = r.finish - r.arrival
    assert e2e.max() > 2 * np.median(e2e)


def test_the_default_mtbf_is_the_published_rate_over_the_replicas_gpus() -> None:
    spec = FailuresSpec.model_validate({})
    assert spec.mean_up_seconds(8) == pytest.approx(16_384 * 54 * 86_400 / 419 / 8)
    assert pytest.approx(2111.6, rel=1e-3) == GPU_SECONDS_BETWEEN_FAILURES / 86_400
    assert spec.repair == 1800.0 and spec.retries == 1


@pytest.mark.parametrize(
    ("failures", "field"),
    [
        ({"mtbf": "0s"}, "failures.mtbf"),
        ({"mtbf": "-1h"}, "failures.mtbf"),
        ({"repair": "soon"}, "failures.repair"),
        ({"retries": -1}, "failures.retries"),
        ({"retries": True}, "failures.retries"),
        ({"mtbf": "1h", "uptime": 3}, "failures.uptime"),
    ],
)
def test_bad_failures_are_refused_naming_the_field(failures: dict, field: str) -> None:
    with pytest.raises(ScenarioError, match=field.replace(".", r"\W+")):
        _scenario(failures)


def test_plan_with_k_spares_is_the_fleet_that_holds_plus_k() -> None:
    """`plan --spare K`: the fleet that meets the SLOs with K replicas down is the smallest
    that meets them, plus K; it costs K replicas more."""
    from simulator.studies.plan import plan
    from tests.test_studies import _plan_scenario

    scenario = _plan_scenario()
    plain = plan(scenario, max_replicas=8, replications=3)
    spared = plan(scenario, max_replicas=8, replications=3, spare=2)
    n = plain["replicas"]
    assert n is not None and spared["replicas"] == n + 2
    assert plain["spare"] == 0 and spared["spare"] == 2
    per_replica = plain["monthly_cost_usd"] / n
    assert spared["monthly_cost_usd"] == pytest.approx((n + 2) * per_replica, rel=0.01)
    assert f"{n + 2} still do with 2 down" in spared["verdict"]


def test_a_preempted_request_retried_after_a_failure_starts_again_from_scratch() -> None:
    """Optimistic admission on a small KV cache preempts requests (recomputed later, keeping
    their start); one held by a replica that fails is retried from scratch: it gets a new
    start and first token, it does not keep the ones the failure erased (found by the
    property tests: a completed request with no start)."""
    scenario = _scenario(
        {"mtbf": "40s", "repair": "10s", "retries": 3}, replicas=2, rate="4/s", horizon="10m"
    )
    data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
    pool = data["deployments"][0]
    pool["kv_admission"] = "optimistic"
    pool["performance"] = {"model": "roofline", "precision": "fp8", "memory_fraction": 0.01}
    data["workloads"][0]["input_tokens"] = {"dist": "lognormal", "mean": 1500, "cv": 0.8}
    data["workloads"][0]["output_tokens"] = {"dist": "lognormal", "mean": 400, "cv": 0.8}
    from simulator import load_scenario

    result = run_checked(load_scenario(data))  # every completed request: start >= arrival
    report = result.report["deployments"][0]
    assert report["preemptions"] > 0 and report["requests_retried"] > 0
