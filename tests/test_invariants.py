"""Random scenarios: conservation of requests, tokens and cost after every run."""

from hypothesis import HealthCheck, given, settings

from simulator import load_scenario
from tests.helpers import run_checked
from tests.strategies import scenarios


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
