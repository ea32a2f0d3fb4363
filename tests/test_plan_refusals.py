"""A plan that turns requests away says so: a refused request is a failed one unless the
workload's `availability` SLO allows it, and the plan's verdict, JSON and report name them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator import ScenarioError, load_scenario, run
from simulator.report.html import write_plan_outputs
from simulator.studies.plan import plan, slo_met
from tests.helpers import BASE, assert_invariants, make_scenario

POOL = {
    "name": "pool",
    "kind": "dedicated",
    "model": "m",
    "gpu": "H100-SXM",
    "replicas": 1,
    "max_batch": 4,
    "max_queue": 2,
    "performance": {"model": "fixed", "prefill_tokens_per_s": 50_000, "tpot": 0.05},
}


def _scenario(
    slo: dict[str, Any], route: list[str] | None = None, price: float = 0.9
) -> Any:
    """One replica of four sequences at ~70% load with a queue of two: it refuses ~2% of the
    requests it is offered; two or three replicas refuse none."""
    workload = {
        "name": "chat",
        "model": "m",
        "arrivals": {"process": "poisson", "rate": "0.4/s"},
        "input_tokens": {"dist": "fixed", "value": 1000},
        "output_tokens": {"dist": "exponential", "mean": 100},
        "slo": slo,
        "route": route or ["pool"],
    }
    return make_scenario(
        horizon="1h",
        models={"m": {"price": {"input": price, "output": price}, "context_length": 100_000}},
        workloads=[workload],
        deployments=[POOL, {"name": "serverless", "kind": "serverless"}],
    )


def test_a_fleet_refusing_requests_fails_without_an_availability_target() -> None:
    scenario = _scenario({"e2e_p95": "60s"})
    alone = run(scenario, replications=1)
    assert_invariants(alone)
    refused = alone.report["workloads"][0]["rejected"]
    assert refused > 0  # the premise: one replica alone turns requests away
    # every latency SLO is met (the refusals are a small share), yet the fleet does not pass
    assert all(e["met"] for e in alone.report["workloads"][0]["slo"])
    assert not slo_met(alone.report, ["chat"])

    answer = plan(scenario, "pool", max_replicas=4)
    assert answer["replicas"] is not None and answer["replicas"] >= 2
    assert answer["refused_monthly"] == 0
    one = next(r for r in answer["curve"] if r["replicas"] == 1 and not r["spillover"])
    assert one["refused"] > 0 and one["slo_met"] is False
    requests = alone.report["totals"]["requests"]
    assert one["refused_share"] == pytest.approx(one["refused"] / requests, rel=0.5)
    # every row called a success refused nothing
    assert all(r["refused"] == 0 for r in answer["curve"] if r["slo_met"])
    assert "one fewer refuses" in answer["verdict"]


def test_an_availability_slo_below_the_refused_share_lets_the_fleet_pass() -> None:
    row = run(_scenario({"e2e_p95": "60s"})).report["workloads"][0]
    refused_share = row["rejected"] / row["requests"]
    lenient = 1 - 3 * refused_share  # well below the served share: met
    answer = plan(_scenario({"e2e_p95": "60s", "availability": lenient}), "pool", max_replicas=4)
    assert answer["replicas"] == 1
    assert answer["refused_monthly"] > 0
    monthly = f"{answer['refused_monthly']:,.0f}"
    assert f"refuses {monthly} requests a month" in answer["verdict"]
    json.dumps(answer, default=str)  # the answer is JSON as printed

    strict = 1 - refused_share / 3  # above the served share: missed
    answer = plan(_scenario({"e2e_p95": "60s", "availability": strict}), "pool", max_replicas=4)
    assert answer["replicas"] is not None and answer["replicas"] >= 2


def test_the_mix_with_overflow_is_compared_like_with_like() -> None:
    """With an availability SLO the fleet alone may pass while refusing requests; the mix
    with overflow serves them, and the verdict says what that costs."""
    scenario = _scenario(  # serverless dear enough that a reservation pays
        {"e2e_p95": "60s", "availability": 0.9}, route=["pool", "serverless"], price=30.0
    )
    answer = plan(scenario, "pool", max_replicas=4)
    assert answer["replicas"] == 1 and answer["refused_monthly"] > 0
    mix = answer["cheapest_mix"]
    assert mix is not None and mix["refused_monthly"] == 0 and mix["overflowed_monthly"] > 0
    assert "serves the requests the fleet alone refuses" in answer["verdict"]


def test_the_plan_report_says_which_route_it_simulated(tmp_path: Path) -> None:
    scenario = _scenario({"e2e_p95": "60s"}, route=["pool", "serverless"])
    answer = plan(scenario, "pool", max_replicas=4)
    assert answer["simulated_route"].startswith("the fleet alone")
    write_plan_outputs(answer, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "route simulated in the report below" in page
    assert "chat: route simulated" in page
    # the Plan table is labelled as the terminal's, never raw JSON keys or reprs
    assert "monthly cost usd" not in page and "slo met" not in page and "True" not in page


def test_availability_is_completed_over_arrived_in_the_report() -> None:
    result = run(_scenario({"availability": "99.9%"}), replications=1)
    row = result.report["workloads"][0]
    entry = next(e for e in row["slo"] if e["key"] == "availability")
    assert entry["target"] == 0.999
    assert entry["observed"] == pytest.approx(row["completed"] / row["requests"])
    assert entry["met"] is (entry["observed"] >= 0.999)
    assert entry["met"] is False  # ~2% refused


@pytest.mark.parametrize("value", ["120%", "0%", "abc", True, -0.5, "nan", [1]])
def test_a_bad_availability_target_is_refused_with_its_field(value: Any) -> None:
    data = json.loads(json.dumps(BASE))
    data["workloads"][0]["slo"] = {"availability": value}
    expected = r"workloads\.chat\.slo: availability: expected a share"
    with pytest.raises(ScenarioError, match=expected):
        load_scenario(data)
