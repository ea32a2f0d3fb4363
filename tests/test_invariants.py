"""Random scenarios: conservation of requests, tokens and cost after every run."""

from hypothesis import HealthCheck, given, settings

from simulator import load_scenario
from tests.helpers import run_checked
from tests.strategies import fleet_scenarios, scenarios


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_hold_for_random_scenarios(data: dict) -> None:
    run_checked(load_scenario(data))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_replications_keep_the_mean_of_each_figure(data: dict) -> None:
    scenario = load_scenario({**data, "horizon": 120})
    result = run_checked(scenario, replications=3)
    costs = [float(r.records.cost.sum()) for r in result.runs]
    totals = result.report["totals"]
    assert abs(totals["cost_usd"] - sum(costs) / 3) <= 1e-9 * max(1.0, abs(totals["cost_usd"]))
    low, high = totals["cost_usd_ci95"]
    assert low <= totals["cost_usd"] <= high


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet_scenarios())
def test_money_adds_up_with_fleets_unused_pools_and_replications(data: dict) -> None:
    """Reserved, autoscaled and cluster pools, some no route uses, over 1-3 replications:
    every breakdown (deployments, workloads, models, modes, tags) adds up to the total,
    idle reserved capacity included, and no utilization is over 100%."""
    import math

    scenario = load_scenario(data)
    result = run_checked(scenario)
    report = result.report
    total = report["totals"]["cost_usd"]
    parts = [report[p] for p in ("deployments", "workloads", "models", "modes")]
    parts += list(report["breakdowns"].values())
    for rows in parts:
        assert math.isclose(sum(x["cost_usd"] for x in rows), total, rel_tol=1e-9, abs_tol=1e-9)
    for d in report["deployments"]:
        for key in ("utilization", "throughput_utilization"):
            assert d.get(key) is None or 0 <= d[key] <= 1 + 1e-12, (key, d[key])
