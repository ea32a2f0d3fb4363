"""Sweeps: the same table whatever runs it, rows equal to plain runs, failures kept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from simulator import load_scenario, run
from simulator.report.build import TOTAL_KEYS as TOTALS
from simulator.studies.sweep import grid_points, sweep
from tests.helpers import scenario_dict
from tests.test_cli import capsim

GRID = {
    "vary": {
        "deployments.serverless.output_tokens_per_s": [40, 80],
        "workloads.chat.arrivals": [
            {"process": "poisson", "rate": "1/s"},
            {"process": "gamma", "rate": "1/s", "cv": 3},
        ],
        "workloads.chat.output_tokens.value": [200, 500],
    },
    "seeds": [1, 2, 3, 4, 5],
}


def _data() -> dict:
    return scenario_dict(horizon="20m")


def test_grid_points_are_the_product_of_paths_and_seeds() -> None:
    points = grid_points(GRID)
    assert len(points) == 2 * 2 * 2 * 5 == 40
    assert points[0] == {
        "deployments.serverless.output_tokens_per_s": 40,
        "workloads.chat.arrivals": GRID["vary"]["workloads.chat.arrivals"][0],
        "workloads.chat.output_tokens.value": 200,
        "seed": 1,
    }


def test_forty_runs_on_a_dask_local_cluster_and_a_process_pool_give_identical_tables(
    tmp_path: Path,
) -> None:
    from distributed import LocalCluster

    points = grid_points(GRID)
    local = sweep(_data(), tmp_path, "<sweep>", points, workers=2)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        on_dask = sweep(
            _data(), tmp_path, "<sweep>", points, dask_address=cluster.scheduler_address
        )
    assert json.dumps(local) == json.dumps(on_dask)
    assert all(row["status"] == "ok" for row in local)
    # a row is `capsim run` of that point with that seed
    row = local[13]
    data = _data()
    data["deployments"][0]["output_tokens_per_s"] = row[
        "deployments.serverless.output_tokens_per_s"
    ]
    data["workloads"][0]["arrivals"] = row["workloads.chat.arrivals"]
    data["workloads"][0]["output_tokens"]["value"] = row["workloads.chat.output_tokens.value"]
    report = run(load_scenario(data), seed=row["seed"]).report
    assert {k: row[k] for k in TOTALS} == {k: report["totals"][k] for k in TOTALS}


def test_a_failed_run_is_reported_and_the_others_kept(tmp_path: Path) -> None:
    grid = {"vary": {"workloads.chat.output_tokens.value": [100, -5, 300]}, "seeds": [7]}
    rows = sweep(_data(), tmp_path, "<sweep>", grid_points(grid), workers=1)
    assert rows[0]["status"] == "ok" and rows[2]["status"] == "ok"
    assert rows[1]["status"].startswith("error:") and "output_tokens.value" in rows[1]["status"]
    assert rows[1]["workloads.chat.output_tokens.value"] == -5 and rows[1]["requests"] is None


def test_sweep_command(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_data()))
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump({"vary": {"deployments.serverless.ttft": ["0.2s", "1s"]}, "seeds": [1, 2]})
    )
    out = capsim("sweep", str(scenario), "--grid", str(grid), "--workers", "2", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 4 and {r["seed"] for r in rows} == {1, 2}
    assert set(TOTALS) <= set(rows[0])
    csv_out = capsim("sweep", str(scenario), "--grid", str(grid), "--format", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("deployments.serverless.ttft,seed,status")
    grid.write_text("vary: {x: 1}\n")
    bad = capsim("sweep", str(scenario), "--grid", str(grid))
    assert bad.returncode == 2 and "vary must map" in bad.stderr


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1"])
def test_an_unreachable_dask_scheduler_is_a_clear_error(tmp_path: Path, address: str) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_data()))
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"vary": {"deployments.serverless.ttft": ["1s"]}}))
    out = capsim("sweep", str(scenario), "--grid", str(grid), "--dask", address)
    assert out.returncode == 2 and "cannot reach the scheduler" in out.stderr


def test_sweep_rows_say_latency_slos_and_spill_and_csv_cells_are_json() -> None:
    """A sweep of rate limits said only totals: its rows now carry each workload's latency
    quantiles and SLO outcome and each deployment's spill; structured values in CSV are JSON."""
    import csv
    import io
    import json

    from tests.test_cli import capsim

    out = capsim(
        "sweep", "scenarios/traffic_steady.yaml", "--grid", "scenarios/values/sweep_grid.yaml",
        "--workers", "2", "--format", "csv",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 12
    for column in (
        "support.ttft_p95_s",
        "support.slo_met",
        "support.min_attainment",
        "primary.spilled",
    ):
        assert all(row[column] != "" for row in rows), column
    arrivals = json.loads(rows[0]["workloads.support.arrivals"])
    assert arrivals["process"] in ("poisson", "gamma")
    # tighter limits spill more, whatever the profile and seed
    spilled = {}
    for row in rows:
        key = (row["workloads.support.arrivals"], row["seed"])
        spilled.setdefault(key, []).append(
            (
                float(row["deployments.primary.rate_limit.requests_per_min"]),
                int(row["primary.spilled"]),
            )
        )
    for series in spilled.values():
        counts = [n for _, n in sorted(series)]
        assert counts == sorted(counts, reverse=True)


def test_a_relative_scenario_with_a_trace_runs_on_a_worker_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Dask worker has its own working directory: the scenario's folder travels as an
    absolute path, so the trace it names relative to itself is found there too."""
    from simulator.scenario.loader import read_scenario_data
    from simulator.studies.sweep import run_point, shipped

    folder = tmp_path / "project"
    (folder / "traces").mkdir(parents=True)
    (folder / "traces" / "log.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        + "".join(f"2024-05-10 00:00:{s:02d}.000,100,10\n" for s in range(0, 40, 2))
    )
    data = scenario_dict(horizon="1m")
    data["workloads"][0]["arrivals"] = {
        "process": "trace", "path": "traces/log.csv", "format": "azure",
    }  # fmt: skip
    (folder / "s.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    loaded, source, base_dir = read_scenario_data(Path("project") / "s.yaml")
    args = shipped(loaded, base_dir, source, [{"seed": 1}])
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the worker's own directory
    row = run_point(*args[0])
    assert row["status"] == "ok", row["status"]
    assert row["requests"] == 20


def test_plan_forecast_and_compare_on_a_dask_local_cluster_give_the_local_answers(
    tmp_path: Path,
) -> None:
    """DESIGN "Studies on the cluster engine": `--dask ADDRESS` changes where the runs go,
    never the answer."""
    from distributed import LocalCluster

    from simulator.report.build import to_json
    from simulator.studies.compare import Variant, compare
    from simulator.studies.forecast import forecast
    from simulator.studies.plan import plan
    from tests.test_studies import _plan_scenario

    scenario = _plan_scenario()
    # local processes against the cluster: both run a confirmation's replications at once
    local_plan = plan(scenario, max_replicas=6, replications=3, workers=2)
    local_forecast = forecast(scenario, 3, 0.2, max_replicas=6, replications=2, workers=2)
    variants = [Variant(str(n), load_scenario({**_data(), "seed": n})) for n in (1, 2, 3)]
    local_compare = compare(variants, replications=2)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        on_dask_plan = plan(scenario, max_replicas=6, replications=3, dask=address)
        on_dask_forecast = forecast(
            scenario, 3, 0.2, max_replicas=6, replications=2, dask=address
        )
        on_dask_compare = compare(variants, replications=2, dask=address)
    for answer in (local_plan, on_dask_plan, local_forecast, on_dask_forecast):
        answer.pop("_results", None)  # (the runs kept for --out, as `capsim plan` drops them)
    assert to_json(on_dask_plan) == to_json(local_plan)  # what `capsim plan --format json` prints
    assert to_json(on_dask_forecast) == to_json(local_forecast)
    assert to_json(on_dask_compare) == to_json(local_compare)
    assert local_plan["replicas"] is not None and local_plan["search"]["runs"] >= 3


def test_plan_and_compare_refuse_a_bad_dask_address_before_any_run(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_data()))
    for args in (
        ["plan", str(scenario), "--dask", "not an address"],
        ["compare", str(scenario), "--vary", "seed=1,2", "--dask", "tcp://host:99999"],
        ["plan", str(scenario), "--dask", "tcp://h:8786", "--workers", "2"],
    ):
        done = subprocess.run(["capsim", *args], capture_output=True, text=True)
        assert done.returncode == 2, (args, done.stderr)
        assert "--dask" in done.stderr and "Traceback" not in done.stderr
