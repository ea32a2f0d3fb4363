"""The year-ahead forecast (`capsim plan --months N --growth G`): growth arithmetic, month 1
as the plain plan, strategies priced from runs, the recommendation, uncertain growth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator.errors import CapsimError
from simulator.studies.forecast import forecast, growth_factors, scaled_scenario
from simulator.studies.plan import plan
from tests.adversary import assert_refused, capsim_here
from tests.helpers import BASE, make_scenario
from tests.test_dedicated import MODELS, _fixed, _pool
from tests.test_studies import _plan_scenario


def test_growth_compounds_month_by_month() -> None:
    assert growth_factors(4, 0.1) == pytest.approx([1.0, 1.1, 1.21, 1.331])
    assert growth_factors(3, -0.5) == pytest.approx([1.0, 0.5, 0.25])
    assert growth_factors(1, 0.3) == [1.0]


def test_every_open_arrival_process_scales_and_a_closed_loop_is_refused() -> None:
    arrivals = [
        {"process": "poisson", "rate": 2},
        {"process": "gamma", "rate": 2, "cv": 3},
        {"process": "diurnal", "rate": 2, "peak_to_mean": 2},
        {"process": "mmpp", "states": [{"rate": 1, "mean_duration": 10},
                                       {"rate": 5, "mean_duration": 5}]},
        {"process": "batch_jobs", "every": "1h", "requests": 7200},
    ]  # fmt: skip
    for shape in arrivals:
        workload = {**BASE["workloads"][0], "arrivals": shape}
        scenario = make_scenario(workloads=[workload])
        before = scenario.workloads[0].arrivals.mean_rate()
        after = scaled_scenario(scenario, 1.5).workloads[0].arrivals.mean_rate()
        assert after == pytest.approx(1.5 * before), shape["process"]
    closed = {**BASE["workloads"][0], "arrivals": {"process": "closed", "concurrency": 4}}
    with pytest.raises(CapsimError, match="closed-loop"):
        scaled_scenario(make_scenario(workloads=[closed]), 2.0)


def test_a_replayed_trace_is_sped_up_and_looped(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        + "".join(f"2024-05-10 00:00:{s:02d}.000,100,10\n" for s in range(0, 60, 2))
    )
    workload = {
        **BASE["workloads"][0],
        "arrivals": {"process": "trace", "path": str(trace), "format": "azure"},
    }
    scenario = make_scenario(workloads=[workload], horizon="1m")
    faster = scaled_scenario(scenario, 2.0).workloads[0].arrivals
    assert faster.loop and faster.time_scale == pytest.approx(0.5)
    assert faster.mean_rate() == pytest.approx(2 * scenario.workloads[0].arrivals.mean_rate())


@pytest.fixture(scope="module")
def growing() -> dict:
    return forecast(_plan_scenario(), months=4, growth=0.25, max_replicas=8, replications=2)


def test_month_one_is_the_plain_plan(growing: dict) -> None:
    plain = plan(_plan_scenario(), max_replicas=8, replications=2)
    for key in ("replicas", "monthly_cost_usd", "serverless_monthly_cost_usd", "curve"):
        assert growing[key] == plain[key], key
    f = growing["forecast"]
    assert f["rows"][0]["replicas_needed"] == plain["replicas"]
    assert f["rows"][0]["traffic_factor"] == 1.0


def test_traffic_and_its_serverless_cost_grow_by_the_factors(growing: dict) -> None:
    rows = growing["forecast"]["rows"]
    assert [r["traffic_factor"] for r in rows] == pytest.approx(growth_factors(4, 0.25))
    # serverless bills tokens: month m's bill / month 1's = its factor, up to the noise of
    # the tokens drawn (exponential answers, cv 1: relative sd sqrt(2 / requests) a month)
    requests = 3 * 3600
    for row in rows[1:]:
        sd = math.sqrt(2 / requests + 2 / (requests * row["traffic_factor"]))
        ratio = row["serverless_usd"] / rows[0]["serverless_usd"]
        assert ratio == pytest.approx(row["traffic_factor"], rel=5 * sd)
    needed = [r["replicas_needed"] for r in rows]
    assert needed == sorted(needed) and needed[-1] > needed[0]


def test_the_needed_fleet_holds_and_one_fewer_does_not(growing: dict) -> None:
    from simulator.studies.plan import _variant, holds

    last = growing["forecast"]["rows"][-1]
    scenario = scaled_scenario(_plan_scenario(), last["traffic_factor"])
    n = last["replicas_needed"]

    def ok(replicas: int) -> bool:
        from simulator import run

        report = run(_variant(scenario, "pool", replicas, False), replications=1).report
        return holds(report, "pool", ["chat"])

    assert ok(n) and not ok(n - 1)


def test_the_recommendation_is_the_cheapest_strategy_that_meets_the_slos(growing: dict) -> None:
    f = growing["forecast"]
    names = [s["name"] for s in f["strategies"]]
    assert names[0] == "serverless" and "on-demand" in names
    assert any(n.startswith("reserve-") for n in names)
    for s in f["strategies"]:
        assert s["total_usd"] == pytest.approx(sum(s["monthly_usd"]))
        assert len(s["monthly_usd"]) == 4
    feasible = [s for s in f["strategies"] if s["slo_met_all_months"] is not False]
    cheapest = min(feasible, key=lambda s: s["total_usd"])
    rec = f["recommendation"]
    assert rec["name"] == cheapest["name"] and rec["total_usd"] == cheapest["total_usd"]
    serverless = f["strategies"][0]["total_usd"]
    assert rec["saving_vs_serverless_usd"] == pytest.approx(serverless - rec["total_usd"])
    # the fleet the last month needs, reserved for the term, holds in every month
    top = f["rows"][-1]["replicas_needed"]
    assert next(s for s in f["strategies"] if s["name"] == f"reserve-{top}")["slo_met_all_months"]
    # on-demand pays each month for that month's fleet: $2 a GPU-hour, 720 hours
    on_demand = next(s for s in f["strategies"] if s["name"] == "on-demand")
    for cost, n in zip(on_demand["monthly_usd"], on_demand["replicas_by_month"], strict=True):
        assert cost == pytest.approx(n * 2.0 * 720, rel=3e-3)
    for row in f["rows"]:
        assert row["on-demand_usd"] == on_demand["monthly_usd"][row["month"] - 1]


def test_a_commitment_minimum_is_charged_every_month_of_the_forecast() -> None:
    scenario = _plan_scenario()
    data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["deployments"][0]["billing"] = {"price_per_gpu_hour": 1.0, "minimum_monthly_usd": 5000}
    committed = make_scenario(**{k: v for k, v in data.items() if k != "version"})
    f = forecast(committed, months=2, growth=0.1, max_replicas=6, replications=1)["forecast"]
    # the month-by-month runs made at once on two processes: the same forecast, to the byte
    parallel = forecast(committed, months=2, growth=0.1, max_replicas=6, replications=1, workers=2)
    assert json.dumps(parallel["forecast"], sort_keys=True) == json.dumps(f, sort_keys=True)
    strategies = {s["name"]: s for s in f["strategies"]}
    # the commitment rate ($1) makes 1-4 replicas cost less than the minimum: it is billed
    for r in (1, 2):
        pool_cost = [c - s for c, s in zip(strategies[f"reserve-{r}"]["monthly_usd"],
                                           _overflow(committed, f, r), strict=True)]  # fmt: skip
        assert all(c == pytest.approx(5000, rel=1e-3) for c in pool_cost)
    # on demand pays the list price ($2), no minimum
    for cost, n in zip(strategies["on-demand"]["monthly_usd"],
                       strategies["on-demand"]["replicas_by_month"], strict=True):  # fmt: skip
        assert cost == pytest.approx(n * 2.0 * 720, rel=3e-3)


def _overflow(scenario: object, f: dict, replicas: int) -> list[float]:
    """What reserve-R's overflow costs each month (its runs' serverless deployment)."""
    from simulator import run
    from simulator.studies.plan import _variant

    costs = []
    for row in f["rows"]:
        scaled = scaled_scenario(scenario, row["traffic_factor"])  # type: ignore[arg-type]
        report = run(_variant(scaled, "pool", replicas, True), replications=1).report
        costs.append(
            sum(d["monthly_cost_usd"] for d in report["deployments"] if d["name"] != "pool")
        )
    return costs


def test_uncertain_growth_gives_a_probability_reproducibly() -> None:
    def once(workers: int) -> dict:
        return forecast(
            _plan_scenario(), months=3, growth=0.1, growth_sd=0.3, max_replicas=6, replications=1,
            workers=workers,
        )["forecast"]  # fmt: skip

    first, second = once(1), once(2)  # the same paths and runs, on one process or two
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    p = first["p_reservation_costs_more"]
    assert p is not None and 0.0 <= p <= 1.0
    u = first["uncertainty"]
    assert u["saving_vs_serverless_usd"]["p5"] <= u["saving_vs_serverless_usd"]["p95"]
    # the paths' traffic in the last month: log-growth of sd ~0.3 a month over 2 months
    assert u["final_traffic_factor"]["p5"] < 1.21 < u["final_traffic_factor"]["p95"]
    levels = u["traffic_levels"]
    assert levels == sorted(levels) and len(levels) >= 3
    assert not np.isnan(p)


def test_the_command_line_forecast(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_plan_scenario().model_dump(mode="json", by_alias=True)))
    out = capsim_here(
        "plan", str(path), "--months", "3", "--growth", "20%", "--max-replicas", "6",
        "--replications", "1", "--format", "json",
    )  # fmt: skip
    assert out.code == 0, out.stderr
    f = json.loads(out.stdout)["forecast"]
    assert f["growth"] == pytest.approx(0.2) and f["months"] == 3
    assert set(f) >= {"months", "growth", "growth_sd", "rows", "strategies", "recommendation",
                      "p_reservation_costs_more"}  # fmt: skip
    assert set(f["rows"][0]) >= {"month", "traffic_factor", "replicas_needed", "serverless_usd"}
    assert set(f["recommendation"]) >= {"name", "replicas", "total_usd",
                                        "saving_vs_serverless_usd"}  # fmt: skip
    table = capsim_here(
        "plan", str(path), "--months", "2", "--growth", "0.2", "--max-replicas", "6",
        "--replications", "1", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert table.code == 0, table.stderr
    assert "Forecast for pool" in table.stdout and "serverless" in table.stdout
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Strategies over the term" in page and "Forecast: cost by strategy" in page


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--growth", "8%"], "--months"),
        (["--growth-sd", "5%"], "--months"),
        (["--months", "3", "--growth", "eight"], "8%"),
        (["--months", "0"], "--months"),
        (["--months", "3", "--growth", "500%"], "--growth"),
        (["--months", "3", "--growth", "5%", "--growth-sd", "-1%"], "--growth-sd"),
    ],
)
def test_bad_forecast_options_are_refused(tmp_path: Path, args: list[str], expected: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_plan_scenario().model_dump(mode="json", by_alias=True)))
    assert_refused(capsim_here("plan", str(path), *args), expected)


def test_a_closed_loop_workload_cannot_be_forecast(tmp_path: Path) -> None:
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "closed", "concurrency": 2},
    }
    scenario = make_scenario(
        models=MODELS, workloads=[workload], deployments=[_pool(performance=_fixed(0.01))]
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json", by_alias=True)))
    assert_refused(capsim_here("plan", str(path), "--months", "3", "--growth", "5%"), "closed")


def test_plan_set_changes_the_scenario_before_planning(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_plan_scenario().model_dump(mode="json", by_alias=True)))
    common = ["--max-replicas", "6", "--replications", "1", "--format", "json"]
    out = capsim_here("plan", str(path), "--set", "deployments.pool.price_per_gpu_hour=3", *common)
    assert out.code == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["price_per_gpu_hour"] == 3
    assert answer["monthly_cost_usd"] == pytest.approx(answer["replicas"] * 3 * 720, rel=3e-3)
    assert_refused(
        capsim_here("plan", str(path), "--set", "deployments.nope.gpu=H200", *common),
        "--set", "nope",
    )  # fmt: skip
    assert_refused(capsim_here("plan", str(path), "--set", "novalue", *common), "--set")
    assert_refused(
        capsim_here("plan", str(path), "--set", "deployments.pool.replicas=-1", *common),
        "replicas",
    )
