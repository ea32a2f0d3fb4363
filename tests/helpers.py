"""Shared test helpers: building scenarios in code, and the invariants every run must keep."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from simulator import Result, load_scenario, run
from simulator.records import Outcome
from simulator.scenario.format import Scenario

BASE: dict[str, Any] = {
    "name": "test",
    "seed": 1,
    "horizon": "1h",
    "models": {"m": {"price": {"input": 0.9, "output": 3.3}, "context_length": 100_000}},
    "workloads": [
        {
            "name": "chat",
            "model": "m",
            "arrivals": {"process": "poisson", "rate": "1/s"},
            "input_tokens": {"dist": "fixed", "value": 3000},
            "output_tokens": {"dist": "fixed", "value": 1000},
            "route": ["serverless"],
        }
    ],
    "deployments": [{"name": "serverless", "kind": "serverless"}],
}


def scenario_dict(**top: Any) -> dict[str, Any]:
    """A copy of the base scenario with top-level keys replaced."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(top))
    return data


def make_scenario(**top: Any) -> Scenario:
    return load_scenario(scenario_dict(**top))


def assert_invariants(result: Result) -> None:
    """What must hold after every run (checked by the tests on every run they make)."""
    for run_result in result.runs:
        r = run_result.records
        scenario = run_result.scenario
        # every arrival ended completed or rejected (drain); nothing pending
        assert np.all((r.outcome == Outcome.COMPLETED) | (r.outcome == Outcome.REJECTED))
        assert np.all(r.arrival >= 0) and np.all(r.arrival < scenario.horizon)
        assert np.all(np.diff(r.arrival) >= 0)
        done = r.outcome == Outcome.COMPLETED
        # served requests have a deployment, timestamps in causal order, a cost >= 0
        assert np.all(r.deployment[done] >= 0)
        assert np.all(r.deployment[~done] == -1)
        assert np.all(r.start[done] >= r.arrival[done])
        first = r.first_token[done]
        streamed = np.isfinite(first)
        assert np.all(first[streamed] >= r.start[done][streamed])
        assert np.all(r.finish[done] >= r.start[done])
        assert np.all(r.cost >= 0) and np.all(r.cost[~done] == 0)
        assert np.all(r.input_tokens >= 0) and np.all(r.output_tokens >= 0)
    report = result.report
    if report["replications"] != 1:
        return
    totals = report["totals"]
    assert totals["requests"] == totals["completed"] + totals["rejected"]
    # tokens billed = tokens served, and cost = sum of its parts, at every level
    for part in ("deployments", "workloads", "models", "modes"):
        rows = report[part]
        assert sum(x["input_tokens"] for x in rows) == totals["input_tokens"], part
        assert sum(x["output_tokens"] for x in rows) == totals["output_tokens"], part
        assert math.isclose(
            sum(x["cost_usd"] for x in rows), totals["cost_usd"], rel_tol=1e-9, abs_tol=1e-9
        ), part
    assert sum(w["requests"] for w in report["workloads"]) == totals["requests"]
    served = sum(d["requests"] for d in report["deployments"])
    assert served == totals["completed"]
    for rows in report["breakdowns"].values():
        assert sum(x["requests"] for x in rows) == totals["requests"]
        assert math.isclose(
            sum(x["cost_usd"] for x in rows), totals["cost_usd"], rel_tol=1e-9, abs_tol=1e-9
        )
    run0 = result.runs[0]
    fixed = sum(s.fixed_cost_usd for s in run0.summaries)
    assert math.isclose(
        float(run0.records.cost.sum()) + fixed, totals["cost_usd"], rel_tol=1e-9, abs_tol=1e-9
    )


def run_checked(scenario: Scenario, **kwargs: Any) -> Result:
    """Run and assert the invariants."""
    result = run(scenario, **kwargs)
    assert_invariants(result)
    return result
