"""Studies: replications with intervals, compare, plan, and the HTML report."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator import load_scenario, run
from simulator.studies.plan import plan, slo_met
from tests.helpers import BASE, make_scenario, scenario_dict
from tests.test_cli import capsim
from tests.test_dedicated import MODELS, _erlang_c_wait, _fixed, _pool


def _mm2(seed: int, customers: float = 3000) -> object:
    service, servers, rho = 1.0, 2, 0.6
    rate = rho * servers / service
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "fixed", "value": 1},
        "output_tokens": {"dist": "exponential", "mean": 100},
        "slo": {"queue_p50": "1s"},
    }
    horizon = customers / rate
    return make_scenario(
        seed=seed,
        horizon=horizon,
        warmup=horizon / 10,
        models=MODELS,
        workloads=[workload],
        deployments=[_pool(replicas=servers, max_batch=1, performance=_fixed(0.01))],
    )


def _mean_service() -> float:
    """Exact mean of (max(1, rint(X)) - 1) x 10 ms for X exponential with mean 100."""
    k = np.arange(1, 5000)
    p = np.exp(-(k - 0.5) / 100) - np.exp(-(k + 0.5) / 100)
    p[0] += 1 - np.exp(-0.5 / 100)  # values under 0.5 round up to 1 token
    return float(((k - 1) * p).sum() * 0.01)


def test_intervals_shrink_as_replications_grow() -> None:
    widths: dict[int, list[float]] = {4: [], 16: []}
    for seed in range(5):
        for n in widths:
            low, high = run(_mm2(seed, 1500), replications=n).report["workloads"][0]["latency"][
                "queue_s"
            ]["mean_ci95"]
            widths[n].append(high - low)
    # the half-width goes as t(n-1) s / sqrt(n): about 3 times narrower from 4 to 16
    assert np.mean(widths[16]) < np.mean(widths[4]) / 2


def test_intervals_cover_the_erlang_c_wait_at_about_their_rate() -> None:
    expected = _erlang_c_wait(1.2, _mean_service(), 2)
    studies, covered = 30, 0
    for seed in range(studies):
        interval = run(_mm2(100 + seed, 2000), replications=5).report["workloads"][0]["latency"][
            "queue_s"
        ]["mean_ci95"]
        covered += interval[0] <= expected <= interval[1]
    # a 95% interval: 30 studies cover 28.5 times on average (binomial sd 1.2); short runs
    # start empty, so allow a few more misses than the nominal rate
    assert covered >= 24


def _plan_scenario(**extra: object) -> object:
    workload = {
        **BASE["workloads"][0],
        "route": ["pool", "serverless"],
        "arrivals": {"process": "poisson", "rate": 3},
        "input_tokens": {"dist": "fixed", "value": 1},
        "output_tokens": {"dist": "exponential", "mean": 100},
        "slo": {"queue_p95": "2s"},
    }
    pool = _pool(
        replicas=1, max_batch=1, max_queue=16, performance=_fixed(0.01), price_per_gpu_hour=2.0
    )
    return make_scenario(
        seed=3,
        horizon="1h",
        models=MODELS,
        workloads=[workload],
        deployments=[pool, {"name": "serverless", "kind": "serverless"}],
        **extra,
    )


def test_plan_meets_the_slos_and_one_replica_fewer_does_not() -> None:
    scenario = _plan_scenario()
    answer = plan(scenario, max_replicas=6, replications=3)
    n = answer["replicas"]
    assert answer["slo_met"] and n is not None and n >= 2
    from simulator.studies.plan import _variant

    def met(replicas: int) -> bool:
        report = run(_variant(scenario, "pool", replicas, False), replications=3).report
        return slo_met(report, ["chat"])

    assert met(n) and not met(n - 1)
    # the monthly cost is the fleet's: n replicas of one GPU at $2 an hour for a month (and
    # the drain of the requests in flight at the horizon's end: seconds of an hour)
    assert answer["monthly_cost_usd"] == pytest.approx(n * 2.0 * 720, rel=2e-3)
    assert answer["monthly_cost_usd"] >= n * 2.0 * 720
    mix = answer["cheapest_mix"]
    assert mix is not None and mix["monthly_cost_usd"] <= answer["monthly_cost_usd"] + 1e-6
    assert "Reserving" in answer["verdict"]


def test_break_even_volume_makes_the_two_monthly_costs_equal() -> None:
    answer = plan(_plan_scenario(), max_replicas=6, replications=2)
    be = answer["break_even"]
    serverless_at_break_even = be["monthly_tokens"] * be["serverless_usd_per_1m_tokens"] / 1e6
    assert serverless_at_break_even == pytest.approx(be["reserved_monthly_cost_usd"], rel=1e-9)
    # and the blended serverless price is this traffic's own
    assert be["serverless_usd_per_1m_tokens"] == pytest.approx(
        answer["serverless_monthly_cost_usd"] / answer["monthly_tokens"] * 1e6
    )


def _small(tmp_path: Path) -> Path:
    data = scenario_dict(horizon="1h")
    data["workloads"][0]["slo"] = {"ttft_p95": "2s"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_compare_varies_a_path_and_compares_files(tmp_path: Path) -> None:
    path = _small(tmp_path)
    (tmp_path / "profiles.yaml").write_text(
        yaml.safe_dump(
            {
                "steady": {"process": "poisson", "rate": "1/s"},
                "bursty": {"process": "gamma", "rate": "1/s", "cv": 4},
            },
            sort_keys=False,
        )
    )
    out = capsim(
        "compare", str(path), "--vary", "workloads.chat.arrivals=@profiles.yaml", "--format", "json"
    )
    assert out.returncode == 0, out.stderr
    variants = json.loads(out.stdout)["variants"]
    assert [v["label"] for v in variants] == ["steady", "bursty"]
    gaps = [v["report"]["totals"]["requests"] for v in variants]
    assert all(g > 1000 for g in gaps)
    table = capsim(
        "compare", str(path), "--vary", "deployments.serverless.output_tokens_per_s=40,80,160"
    )
    assert table.returncode == 0, table.stderr
    assert "chat E2E p99" in table.stdout and "160" in table.stdout
    other = tmp_path / "t.yaml"
    other.write_text(path.read_text().replace("rate: 1/s", "rate: 2/s"))
    two = capsim("compare", str(path), str(other), "--format", "csv")
    header = two.stdout.splitlines()[0]
    assert header == "metric,s,t"
    bad = capsim("compare", str(path), "--vary", "workloads.nobody.arrivals=1,2")
    assert bad.returncode == 2 and "no item named 'nobody'" in bad.stderr


def test_compare_aligns_scenarios_with_different_deployments_by_name() -> None:
    """Files whose deployments differ: each row is the deployment it names, "-" in a file
    that has none (rows were taken by position from the first file: the second file's
    first pool showed under the first file's pool name, and a file with fewer deployments
    raised IndexError)."""
    from simulator.studies.compare import comparison_rows

    one = make_scenario(
        horizon="5m",
        deployments=[
            {"name": "a", "kind": "serverless"},
            {"name": "b", "kind": "serverless", "price": {"input": 5, "output": 5}},
        ],
        workloads=[{**BASE["workloads"][0], "route": ["b", "a"]}],
    )
    two = make_scenario(
        horizon="5m",
        deployments=[{"name": "c", "kind": "serverless"}],
        workloads=[{**BASE["workloads"][0], "route": ["c"], "name": "other"}],
    )
    results = [{"label": "1", "report": run(one).report}, {"label": "2", "report": run(two).report}]
    rows = {label: values for label, values, _ in comparison_rows(results)}
    b_cost = results[0]["report"]["deployments"][1]["monthly_cost_usd"]
    assert rows["b monthly cost"] == [b_cost, None] and b_cost > 0
    assert rows["c monthly cost"][0] is None and rows["c monthly cost"][1] > 0
    assert rows["chat TTFT p95"][1] is None and rows["other TTFT p95"][0] is None


def _images(page: str) -> list[str]:
    """The plots, inline SVG (vector, the same bytes for the same run)."""
    return re.findall(r"<svg.*?</svg>", page, re.S)


def test_run_out_writes_an_html_report_with_its_plots(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    data = scenario_dict(horizon="30m", models=MODELS)
    data["workloads"][0]["route"] = ["pool", "serverless"]
    data["workloads"][0]["slo"] = {"ttft_p95": "2s", "e2e_p99": "60s"}
    data["workloads"][0]["tags"] = {"tenant": "acme"}
    data["deployments"].append(_pool(max_batch=8, max_queue=2, price_per_gpu_hour=2.0))
    path.write_text(yaml.safe_dump(data))
    out = capsim("run", str(path), "--out", str(tmp_path / "o"), "--format", "json")
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "o" / "report.html").read_text()
    images = _images(page)
    assert len(images) == 4  # cost, crossover, latency CDFs, fleet over time
    assert all(svg.startswith("<svg") and len(svg) > 5000 for svg in images)
    for caption in (
        "Monthly cost by deployment",
        "Cost against monthly volume",
        "Latency CDFs",
        "Replicas, queue",
    ):
        assert caption in page
    assert json.loads((tmp_path / "o" / "report.json").read_text()) == json.loads(out.stdout)
    # the terminal report's tables and the assumptions, readable without capsim
    report = json.loads(out.stdout)
    for title in ("Totals", "Workloads", "SLOs", "Deployments", "By tenant", "Assumptions"):
        assert f"<h2>{title}</h2>" in page, title
    import simulator

    assert f"<td>{simulator.__version__}</td>" in page
    assert "1 x H100-SXM a replica at $2.00 per GPU-hour" in page
    assert "<td>ttft_p95</td>" in page and "<td>e2e_p99</td>" in page
    for d in report["deployments"]:
        assert f"<td>{d['name']}</td>" in page
    assert f"{report['totals']['requests']:,}" in page


def test_plan_out_writes_the_plan_and_its_search_curve(tmp_path: Path) -> None:
    data = scenario_dict(horizon="1h", models=MODELS)
    data["workloads"][0].update(
        {
            "route": ["pool", "serverless"],
            "slo": {"queue_p95": "2s"},
            "arrivals": {"process": "poisson", "rate": 3},
            "input_tokens": {"dist": "fixed", "value": 1},
            "output_tokens": {"dist": "exponential", "mean": 100},
        }
    )
    data["deployments"].append(_pool(max_batch=1, max_queue=16, performance=_fixed(0.01)))
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    out = capsim(
        "plan",
        str(path),
        "--max-replicas",
        "6",
        "--replications",
        "2",
        "--format",
        "json",
        "--out",
        str(tmp_path / "o"),
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    for key in (
        "replicas",
        "monthly_cost_usd",
        "slo_met",
        "serverless_monthly_cost_usd",
        "batch_monthly_cost_usd",
        "break_even",
        "cheapest_mix",
        "verdict",
    ):
        assert key in answer
    assert json.loads((tmp_path / "o" / "plan.json").read_text())["replicas"] == answer["replicas"]
    page = (tmp_path / "o" / "report.html").read_text()
    assert "Plan search" in page and len(_images(page)) == 5
    assert answer["verdict"] in page.replace("&#x27;", "'")
    assert math.isfinite(answer["serverless_monthly_cost_usd"])


def test_plan_without_a_dedicated_deployment_is_an_error(tmp_path: Path) -> None:
    out = capsim("plan", str(_small(tmp_path)))
    assert out.returncode == 2 and "no dedicated deployment" in out.stderr


def test_the_python_api_returns_report_and_records() -> None:
    result = run(load_scenario(scenario_dict(horizon="10m")), replications=2)
    assert result.report["replications"] == 2
    frame = result.records
    assert len(frame) == len(result.runs[0].records)
    expected = {"arrival_s", "ttft_s", "e2e_s", "cost_usd", "deployment", "outcome"}
    assert expected <= set(frame.columns)


def test_plan_over_gpu_types_picks_the_cheapest_that_meets_the_slos() -> None:
    from simulator.studies.plan import plan_gpu_types

    # fixed performance: the same speed on any GPU, so the price decides ($2 vs H200's $6.65)
    answer = plan_gpu_types(_plan_scenario(), ["H200", "H100-SXM"], max_replicas=6, replications=2)
    options = {o["gpu"]: o for o in answer["gpu_options"]}
    assert set(options) == {"H200", "H100-SXM"}
    assert options["H100-SXM"]["replicas"] == options["H200"]["replicas"]
    assert answer["gpu"] == "H100-SXM"
    assert options["H200"]["monthly_cost_usd"] == pytest.approx(
        options["H200"]["replicas"] * 6.65 * 720, rel=2e-3
    )
    assert "Replica shapes that meet the SLOs" in answer["verdict"]


def _steady_scenario(rate: float, horizon: float, slo: dict[str, str], **pool: object) -> object:
    """Poisson arrivals on 4-slot replicas of 1 s a request (100 tokens at 10 ms): 4/s each."""
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "fixed", "value": 1},
        "output_tokens": {"dist": "fixed", "value": 101},
        "slo": slo,
    }
    settings = {"replicas": 1, "max_batch": 4, "price_per_gpu_hour": 2.0, **pool}
    return make_scenario(
        seed=5,
        horizon=horizon,
        models=MODELS,
        workloads=[workload],
        deployments=[_pool(performance=_fixed(0.01), **settings)],
    )


def test_plan_never_picks_an_overloaded_fleet_and_its_fleet_holds_ten_times_longer() -> None:
    """10.2 requests/s: 2 replicas (8/s) keep a loose TTFT target over a 30 s horizon while
    their queue grows without bound; the plan must not take them."""
    from simulator.studies.plan import _variant

    slo = {"ttft_p95": "10s"}
    short = _steady_scenario(10.2, 30, slo)
    two = run(_variant(short, "pool", 2, False)).report
    assert slo_met(two, ["chat"]) and two["deployments"][0]["overloaded"]
    answer = plan(short, max_replicas=8, replications=2)
    assert answer["replicas"] == 3 and answer["capacity_bound"]["replicas"] == 3
    assert all(not row["overloaded"] for row in answer["curve"] if row["replicas"] == 3)
    assert "fewer would be overloaded" in answer["verdict"]
    # the answer, 10 times longer, still holds
    long = run(_variant(_steady_scenario(10.2, 300, slo), "pool", 3, False), replications=2)
    assert slo_met(long.report, ["chat"]) and not long.report["deployments"][0]["overloaded"]


def test_plan_costs_few_runs_whatever_the_fleet_size() -> None:
    """A 20-odd replica answer above the capacity bound: screens bracket and bisect on one
    replication each, and only the answer runs the others."""
    slo = {"ttft_p99": "1.2s"}
    scenario = _steady_scenario(72.0, 60, slo)
    answer = plan(scenario, max_replicas=40, replications=3)
    n = answer["replicas"]
    bound = answer["capacity_bound"]["replicas"]
    assert bound == 18 and n is not None and n > bound
    search = answer["search"]
    # a linear search from 1 would have run n x 3 times; this one a few screens and the rest
    # of the answer's replications
    assert search["runs"] <= 2 + math.ceil(math.log2(n - bound + 1)) * 2 + 2
    from simulator.studies.plan import _variant

    def holds(k: int) -> bool:
        report = run(_variant(scenario, "pool", k, False), replications=3).report
        return slo_met(report, ["chat"]) and not report["deployments"][0]["overloaded"]

    assert holds(n) and not holds(n - 1)


def test_plan_warns_when_too_few_requests_lie_beyond_a_quantile() -> None:
    scenario = _steady_scenario(2.0, 60, {"ttft_p99.9": "5s"})
    answer = plan(scenario, max_replicas=4, replications=1)
    assert answer["warnings"] and "too few" in answer["warnings"][0]
    assert "Caution" in answer["verdict"]
    roomy = plan(_steady_scenario(2.0, 60, {"ttft_p90": "5s"}), max_replicas=4, replications=1)
    assert roomy["warnings"] == []


def test_the_cheapest_mix_is_the_cheapest_size_that_holds() -> None:
    """The ternary search over sizes with overflow finds what trying every size finds."""
    from simulator.studies.plan import _variant, holds

    scenario = _plan_scenario()
    answer = plan(scenario, max_replicas=8, replications=1)
    mix = answer["cheapest_mix"]
    costs = {}
    for n in range(0, answer["replicas"] + 1):
        report = run(_variant(scenario, "pool", n, True), replications=1).report
        if holds(report, "pool", ["chat"]):
            costs[n] = report["totals"]["monthly_cost_usd"]
    best = min(costs, key=lambda n: costs[n])
    assert mix["replicas"] == best
    assert mix["monthly_cost_usd"] == pytest.approx(costs[best])


def test_a_commitment_bills_its_rate_and_its_monthly_minimum() -> None:
    """billing: the commitment's rate replaces the list price; when the hours cost less than
    the monthly minimum (pro rata over the horizon), the shortfall is billed too."""
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": "10/h"},
    }

    def pool(**billing: object) -> dict:
        return _pool(replicas=1, price_per_gpu_hour=2.0, performance=_fixed(0.01), billing=billing)

    def report(**billing: object) -> dict:
        scenario = make_scenario(
            horizon="1d", models=MODELS, workloads=[workload], deployments=[pool(**billing)]
        )
        return run(scenario).report["deployments"][0]

    rate = report(price_per_gpu_hour=1.5)
    assert rate["price_per_gpu_hour"] == 1.5
    assert rate["cost_usd"] == pytest.approx(1.5 * rate["gpu_hours"])
    assert rate["commitment_shortfall_usd"] == 0 and rate["term_months"] == 12
    minimum = report(minimum_monthly_usd=3000, term_months=6)
    owed = 3000 / 30  # one day of a 30-day month
    assert minimum["commitment_minimum_usd"] == pytest.approx(owed)
    assert minimum["commitment_shortfall_usd"] == pytest.approx(owed - 2.0 * minimum["gpu_hours"])
    assert minimum["cost_usd"] == pytest.approx(owed)
    covered = report(minimum_monthly_usd=100)  # the hours cost more than the minimum
    assert covered["commitment_shortfall_usd"] == 0
    assert covered["cost_usd"] == pytest.approx(2.0 * covered["gpu_hours"])
    from simulator.errors import ScenarioError

    with pytest.raises(ScenarioError, match="billing"):
        make_scenario(
            models=MODELS,
            workloads=[workload],
            deployments=[{**pool(minimum_monthly_usd=1), "replicas": {"min": 1, "max": 2}}],
        )


def test_plan_over_gpu_types_takes_prices_from_a_file(tmp_path: Path) -> None:
    """--gpu-prices: GPU types without a bundled price (L40S) can be planned; bad files are
    refused naming the file and the GPU."""
    from tests.adversary import assert_refused, capsim_here

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_plan_scenario().model_dump(mode="json", by_alias=True)))
    prices = tmp_path / "prices.yaml"
    prices.write_text("L40S: 0.75\n")
    out = capsim_here(
        "plan", str(path), "--gpus", "H100-SXM,L40S", "--gpu-prices", str(prices),
        "--max-replicas", "6", "--replications", "1", "--format", "json",
    )  # fmt: skip
    assert out.code == 0, out.stderr
    options = {o["gpu"]: o for o in json.loads(out.stdout)["gpu_options"]}
    assert options["L40S"]["error"] is None and options["L40S"]["slo_met"]
    assert options["L40S"]["monthly_cost_usd"] == pytest.approx(
        options["L40S"]["replicas"] * 0.75 * 720, rel=2e-3
    )
    without = capsim_here(
        "plan", str(path), "--gpus", "H100-SXM,L40S", "--max-replicas", "6",
        "--replications", "1", "--format", "json",
    )  # fmt: skip
    assert "no bundled price" in json.loads(without.stdout)["gpu_options"][1]["error"]
    for text, word in [("H900: 1\n", "H900"), ("L40S: .inf\n", "L40S"), ("[1]\n", "mapping")]:
        prices.write_text(text)
        result = capsim_here("plan", str(path), "--gpus", "L40S", "--gpu-prices", str(prices))
        assert_refused(result, str(prices), word)
    # the same prices as a CSV with the bundled catalog's columns (rows without a price skipped)
    table = tmp_path / "prices.csv"
    table.write_text("gpu,memory_gb,usd_per_gpu_hour\nL40S,48,0.75\nH100-SXM,80,\n")
    from_csv = capsim_here(
        "plan", str(path), "--gpus", "H100-SXM,L40S", "--gpu-prices", str(table),
        "--max-replicas", "6", "--replications", "1", "--format", "json",
    )  # fmt: skip
    assert from_csv.code == 0, from_csv.stderr
    assert json.loads(from_csv.stdout)["gpu_options"] == json.loads(out.stdout)["gpu_options"]
    for text, word in [
        ("gpu,price\nL40S,1\n", "usd_per_gpu_hour"),
        ("gpu,usd_per_gpu_hour\nL40S,cheap\n", "line 2"),
        ("gpu,usd_per_gpu_hour\nH900,1\n", "H900"),
        ("gpu,usd_per_gpu_hour\nL40S,-1\n", "L40S"),
    ]:
        table.write_text(text)
        result = capsim_here("plan", str(path), "--gpus", "L40S", "--gpu-prices", str(table))
        assert_refused(result, str(table), word)


def test_records_carry_units_model_tags_tpot_and_every_replication(tmp_path: Path) -> None:
    import pandas as pd

    data = scenario_dict(horizon="10m")
    data["workloads"][0]["tags"] = {"tenant": "acme"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    out = capsim("run", str(path), "--replications", "2", "--out", str(tmp_path / "o"), "-q")
    assert out.returncode == 0, out.stderr
    # Parquet where pyarrow is installed (it comes with the kernel database), else CSV
    parquet = tmp_path / "o" / "records.parquet"
    csv = parquet.with_suffix(".csv")
    frame = pd.read_parquet(parquet) if parquet.exists() else pd.read_csv(csv)
    for column in (
        "replication",
        "model",
        "tag_tenant",
        "arrival_s",
        "finish_s",
        "cost_usd",
        "tpot_s",
    ):
        assert column in frame.columns, column
    assert set(frame["replication"]) == {0, 1}
    assert set(frame["model"]) == {"m"} and set(frame["tag_tenant"]) == {"acme"}
    streamed = frame[frame["output_tokens"] > 1]
    expected = (streamed["finish_s"] - streamed["first_token_s"]) / (streamed["output_tokens"] - 1)
    assert np.allclose(streamed["tpot_s"], expected)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    per_run = frame.groupby("replication")["cost_usd"].sum()
    assert per_run.mean() == pytest.approx(report["totals"]["cost_usd"], rel=1e-9)
    if parquet.exists():  # the metadata in the file's schema
        import pyarrow.parquet as pq

        meta = json.loads(pq.read_schema(parquet).metadata[b"capsim"])
    else:  # CSV has no metadata: the run's provenance goes beside it, as in report.json
        meta = json.loads((tmp_path / "o" / "records.metadata.json").read_text())
    assert meta["provenance"] == report["provenance"]
    assert (meta["seed"], meta["replications"]) == (report["seed"], 2)
    # with replications, the plots carry 95% whiskers: monthly costs and SLO quantiles
    page = (tmp_path / "o" / "report.html").read_text()
    assert 'id="deployments-ci95"' in page and 'id="workloads-ci95"' in page
    one = capsim("run", str(path), "--out", str(tmp_path / "one"), "-q")
    assert one.returncode == 0, one.stderr
    assert "ci95" not in (tmp_path / "one" / "report.html").read_text()


def test_without_pyarrow_records_are_csv_with_their_metadata_beside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where pyarrow is missing (no wheel of the kernel database), records are CSV and the
    provenance goes beside them."""
    import sys

    import pandas as pd

    import simulator
    from simulator.report.html import write_run_outputs

    result = simulator.run(simulator.load_scenario(scenario_dict(horizon="10m")))
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
        write_run_outputs(result, tmp_path)
    assert not (tmp_path / "records.parquet").exists()
    frame = pd.read_csv(tmp_path / "records.csv")
    assert len(frame) == len(result.all_records)
    meta = json.loads((tmp_path / "records.metadata.json").read_text())
    assert meta["provenance"] == result.report["provenance"]


def test_parquet_records_carry_the_provenance_in_their_schema(tmp_path: Path) -> None:
    """With the `parquet` extra the records file holds the metadata itself."""
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario_dict(horizon="10m")))
    out = capsim("run", str(path), "--out", str(tmp_path / "o"), "-q")
    assert out.returncode == 0, out.stderr
    meta = json.loads(pq.read_schema(tmp_path / "o" / "records.parquet").metadata[b"capsim"])
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert meta["provenance"] == report["provenance"] and meta["seed"] == report["seed"]


def test_the_dedicated_line_of_the_volume_chart_stops_at_the_fleets_capacity() -> None:
    """The fleet's capacity a month: mean replicas x one replica's modeled output tokens/s x
    (input + output) / output x month; a deployment that served nothing adds nothing."""
    from simulator.report.html import fleet_capacity_tokens

    report = {
        "deployments": [
            {"modeled_max_output_tokens_per_s_per_replica": 1000.0, "replicas_mean": 2.0,
             "input_tokens": 3e6, "output_tokens": 1e6},
            {"modeled_max_output_tokens_per_s_per_replica": 500.0, "replicas_mean": 1.0,
             "input_tokens": 0, "output_tokens": 0},
            {"name": "serverless", "input_tokens": 5e6, "output_tokens": 1e6},
        ]
    }  # fmt: skip
    month = 30 * 86400.0
    assert fleet_capacity_tokens(report, month) == pytest.approx(2 * 1000 * 4 * month)
    assert fleet_capacity_tokens({"deployments": report["deployments"][2:]}, month) is None


def test_the_report_says_what_its_figures_rest_on() -> None:
    """report.json's `provenance`: capsim's version, the price catalog, and where each
    deployment's GPU price came from (the scenario's own, or the bundled dated one); kept
    as is over replications."""
    from simulator import __version__
    from simulator.serving.catalog import BUNDLED_SOURCE

    workload = {**BASE["workloads"][0], "route": ["own", "bundled"]}
    deployments = [
        _pool(name="own", price_per_gpu_hour=2.0, performance=_fixed(0.01), max_queue=0),
        _pool(name="bundled", performance=_fixed(0.01)),
    ]
    scenario = make_scenario(horizon="2m", models=MODELS, workloads=[workload],
                             deployments=deployments)  # fmt: skip
    for replications in (1, 2):
        p = run(scenario, replications=replications).report["provenance"]
        assert p["capsim_version"] == __version__ and p["price_catalog"] == BUNDLED_SOURCE
        assert p["gpu_prices"]["own"].endswith("the scenario")
        assert "2026-07-16" in p["gpu_prices"]["bundled"]


def test_serial_confirmations_stop_early_and_give_the_parallel_answer() -> None:
    """Run one at a time, a confirmation stops at the first replication that fails (a size
    fails if any does); on processes all run at once. The answer is the same."""
    scenario = _plan_scenario()
    serial = plan(scenario, max_replicas=6, replications=4)
    parallel = plan(scenario, max_replicas=6, replications=4, workers=2)
    assert serial["replicas"] == parallel["replicas"] is not None
    assert serial["monthly_cost_usd"] == parallel["monthly_cost_usd"]
    assert serial["search"]["runs"] <= parallel["search"]["runs"]
