"""The command line as a user meets it: examples run, bad input gives exit 2 and the field."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simulator import load_scenario
from tests.helpers import assert_invariants, scenario_dict

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "scenarios").glob("*.yaml"))


def capsim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_runs_and_its_report_is_sane(path: Path) -> None:
    from simulator import run

    scenario = load_scenario(path)
    result = run(scenario)
    assert_invariants(result)
    totals = result.report["totals"]
    assert totals["requests"] > 0 and totals["completed"] > 0
    assert totals["cost_usd"] > 0 and totals["monthly_cost_usd"] > 0
    assert 0 < totals["usd_per_1m_tokens"] < 100
    for workload in result.report["workloads"]:
        assert workload["requests"] > 0
        for entry in workload["slo"]:
            assert 0 <= entry["attainment"] <= 1
    # only the example built to be overloaded is; every pool's figures are at most 100%
    for d in result.report["deployments"]:
        assert d.get("overloaded", False) == (path.stem == "dedicated_overloaded"), d["name"]
        for key in ("utilization", "throughput_utilization"):
            assert d.get(key) is None or 0 <= d[key] <= 1


def test_pricing_guide_examples_give_the_guides_figures() -> None:
    out = capsim("run", "scenarios/serverless_pricing_guide.yaml", "--format", "json")
    assert out.returncode == 0, out.stderr
    serverless = json.loads(out.stdout)["totals"]
    batch = json.loads(
        capsim("run", "scenarios/batch_pricing_guide.yaml", "--format", "json").stdout
    )["totals"]
    assert serverless["monthly_cost_usd"] == pytest.approx(12_000, rel=0.02)
    assert serverless["cost_usd"] / serverless["requests"] == pytest.approx(0.0060)
    assert batch["monthly_cost_usd"] / serverless["monthly_cost_usd"] == pytest.approx(
        0.5, rel=0.02
    )


def test_table_csv_and_json_formats() -> None:
    table = capsim("run", "scenarios/tenants_and_features.yaml")
    assert table.returncode == 0, table.stderr
    for text in (
        "Totals",
        "Workloads",
        "SLOs",
        "Deployments",
        "By tenant",
        "By feature",
        "globex-support",
        "monthly cost",
    ):
        assert text in table.stdout
    csv_out = capsim("run", "scenarios/serverless_pricing_guide.yaml", "--format", "csv")
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("scope,name,kind,requests")
    assert any(line.startswith("total,") for line in lines)
    assert any(line.startswith("tag:tenant,acme") for line in lines)
    # a dedicated row says what priced it, in the last three columns
    pool = capsim("run", "scenarios/dedicated_h100_spillover.yaml", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(pool)))
    dedicated = [r for r in rows if r["scope"] == "deployment" and r["kind"] == "dedicated"]
    assert dedicated and all(r["performance_model"] == "roofline" for r in dedicated)
    assert all(r["engine"] == "" for r in dedicated)


def test_json_report_has_the_stable_keys() -> None:
    report = json.loads(
        capsim("run", "scenarios/tenants_and_features.yaml", "--format", "json").stdout
    )
    for key in (
        "scenario",
        "seed",
        "horizon_s",
        "month_s",
        "replications",
        "totals",
        "deployments",
        "workloads",
    ):
        assert key in report
    for key in (
        "requests",
        "completed",
        "rejected",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "monthly_cost_usd",
        "usd_per_1m_tokens",
    ):
        assert key in report["totals"]
    for d in report["deployments"]:
        assert {
            "name",
            "kind",
            "requests",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "monthly_cost_usd",
            "usd_per_1m_tokens",
            "utilization",
            "gpu_hours",
            "spilled",
        } <= set(d)
    for w in report["workloads"]:
        assert {
            "name",
            "model",
            "requests",
            "completed",
            "rejected",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "monthly_cost_usd",
            "usd_per_1m_tokens",
            "latency",
            "slo",
        } <= set(w)
        assert set(w["latency"]) == {"ttft_s", "tpot_s", "e2e_s", "queue_s"}
        for stats in w["latency"].values():
            assert set(stats) == {"mean", "p50", "p90", "p95", "p99"}
        for entry in w["slo"]:
            assert {"metric", "quantile", "target_s", "observed_s", "attainment", "met"} <= set(
                entry
            )


def test_seed_and_replications_flags(tmp_path: Path) -> None:
    small = str(_write(tmp_path, scenario_dict()))
    a = capsim("run", small, "--format", "json", "--seed", "5")
    b = capsim("run", small, "--format", "json", "--seed", "5")
    assert a.stdout == b.stdout and json.loads(a.stdout)["seed"] == 5
    rep = json.loads(capsim("run", small, "--format", "json", "--replications", "3").stdout)
    assert rep["replications"] == 3
    low, high = rep["totals"]["monthly_cost_usd_ci95"]
    assert low < rep["totals"]["monthly_cost_usd"] < high


def test_out_writes_report_and_records(tmp_path: Path) -> None:
    out = capsim(
        "run",
        str(_write(tmp_path, scenario_dict())),
        "--format",
        "json",
        "--out",
        str(tmp_path / "o"),
    )
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report == json.loads(out.stdout)
    records = [p.name for p in (tmp_path / "o").glob("records.*")]
    # Parquet holds its metadata; a CSV file has it beside it
    assert records == ["records.parquet"] or sorted(records) == [
        "records.csv",
        "records.metadata.json",
    ]


def test_validate_schema_and_prices() -> None:
    ok = capsim("validate", "scenarios/tenants_and_features.yaml")
    assert ok.returncode == 0 and "valid" in ok.stdout
    schema = json.loads(capsim("schema").stdout)
    assert {"models", "workloads", "deployments", "horizon"} <= set(schema["properties"])
    prices = capsim("prices", "Llama-3.1-70B", "--format", "json")
    models = json.loads(prices.stdout)["models"]
    assert any(m["id"] == "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo" for m in models)
    missing = capsim("prices", "no-such-model-anywhere")
    assert missing.returncode == 2 and "no-such-model-anywhere" in missing.stderr


def _write(tmp_path: Path, data: object, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


BAD = {
    "unknown key": ({"horizont": "1h"}, "horizont"),
    "bad duration": ({"horizon": "one hour"}, "horizon"),
    "bad rate": (
        {
            "workloads": [
                {
                    **scenario_dict()["workloads"][0],
                    "arrivals": {"process": "poisson", "rate": "fast"},
                }
            ]
        },
        "workloads.chat.arrivals.rate",
    ),
    "unknown process": (
        {"workloads": [{**scenario_dict()["workloads"][0], "arrivals": {"process": "lightning"}}]},
        "workloads.chat.arrivals",
    ),
    "negative price": (
        {"models": {"m": {"price": {"input": -1, "output": 1}}}},
        "models.m.price.input",
    ),
    "unknown model id": ({"models": {"m": {"id": "nobody/no-model"}}}, "no-model"),
    "route to nowhere": (
        {"workloads": [{**scenario_dict()["workloads"][0], "route": ["gpu-pool"]}]},
        "gpu-pool",
    ),
    "bad slo": (
        {"workloads": [{**scenario_dict()["workloads"][0], "slo": {"ttft_p42": "1s"}}]},
        "workloads.chat.slo",
    ),
    "bad deployment kind": ({"deployments": [{"name": "x", "kind": "quantum"}]}, "deployments.x"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenarios_exit_2_naming_the_field(tmp_path: Path, case: str) -> None:
    top, expected = BAD[case]
    path = _write(tmp_path, scenario_dict(**top))
    for command in ("run", "validate"):
        out = capsim(command, str(path))
        assert out.returncode == 2, out.stdout
        assert "Traceback" not in out.stderr
        assert str(path) in out.stderr and expected in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed", "line"),
        ("", "empty"),
        ("- just\n- a list\n", "mapping"),
        ("a: &a [*a]\n", "itself"),
    ],
)
def test_broken_files_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    out = capsim("run", str(_write(tmp_path, text)))
    assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    out = capsim("run", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    out = capsim("run", str(_write(tmp_path, "\n".join(lines) + "\n")))
    assert out.returncode == 2 and "expands to more than" in out.stderr


def test_absurd_runs_are_refused_up_front_with_the_estimate(tmp_path: Path) -> None:
    data = scenario_dict(horizon="30d")
    data["workloads"][0]["arrivals"] = {"process": "poisson", "rate": "1000/s"}
    out = capsim("run", str(_write(tmp_path, data)))
    assert out.returncode == 2
    assert "2,592,000,000" in out.stderr and "--force" in out.stderr


def test_validate_takes_several_files_and_standard_input(tmp_path: Path) -> None:
    text = Path("scenarios/serverless_pricing_guide.yaml").read_text()
    good = subprocess.run(
        [sys.executable, "-m", "simulator", "validate", "-", "scenarios/traffic_steady.yaml"],
        input=text,
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.count(": valid:") == 2 and good.stdout.startswith("-: valid")
    bad = capsim("validate", "scenarios/traffic_steady.yaml", str(tmp_path / "nope.yaml"))
    assert bad.returncode == 2 and "nope.yaml" in bad.stderr and ": valid:" in bad.stdout


def test_fail_on_slo_gates_ci_on_the_slos() -> None:
    missed = capsim(
        "run", "scenarios/tenants_and_features.yaml", "--fail-on-slo", "--format", "json"
    )
    assert missed.returncode == 1 and "SLO missed: globex-support" in missed.stderr
    assert json.loads(missed.stdout)["totals"]["requests"] > 0  # the report still comes
    met = capsim("run", "scenarios/traffic_steady.yaml", "--fail-on-slo", "--format", "json")
    assert met.returncode == 0, met.stderr


def test_no_color_leaves_messages_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.cli.app import _style

    assert _style("x", fg="red") != "x"
    monkeypatch.setenv("NO_COLOR", "1")
    assert _style("x", fg="red") == "x"


def test_a_sweep_whose_every_run_failed_exits_1(tmp_path: Path) -> None:
    """Values the scenario accepts but whose runs are refused (too large to simulate): every
    row failed, exit 1. Values the scenario refuses never start the sweep: exit 2."""
    grid = tmp_path / "grid.yaml"
    grid.write_text("vary: {horizon: ['20000d', '30000d']}\n")
    out = capsim("sweep", "scenarios/traffic_steady.yaml", "--grid", str(grid), "--workers", "1")
    assert out.returncode == 1 and "every one of the 2 runs failed" in out.stderr
    grid.write_text("vary: {horizon: ['-1s', 'soon']}\n")
    out = capsim("sweep", "scenarios/traffic_steady.yaml", "--grid", str(grid), "--workers", "1")
    assert out.returncode == 2 and "vary.horizon[0]" in out.stderr


def test_the_schema_describes_every_property_and_says_what_the_loader_checks() -> None:
    """`capsim schema`: an $id, a description on every property, and the SLO-key, start and
    peak_at patterns agreeing with the loader on good and bad values."""
    import re

    from simulator.errors import ScenarioError
    from tests.helpers import BASE, make_scenario

    schema = json.loads(capsim("schema").stdout)
    assert schema["$id"].endswith("scenario-v1.json")
    undescribed = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for key, prop in (node.get("properties") or {}).items():
                if isinstance(prop, dict) and "description" not in prop:
                    undescribed.append(f"{path}.{key}")
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for value in node:
                walk(value, path)

    walk(schema, "")
    assert undescribed == []
    slo = schema["$defs"]["Workload"]["properties"]["slo"]["propertyNames"]["pattern"]
    start = schema["properties"]["start"]["pattern"]
    peak = schema["$defs"]["Diurnal"]["properties"]["peak_at"]["pattern"]

    def loads(**changes: object) -> bool:
        try:
            make_scenario(**changes)
        except ScenarioError:
            return False
        return True

    for key in ("ttft_p95", "tpot_p99.9", "queue_p50", "e2e_p90", "ttft_p97", "latency_p95"):
        workload = {**BASE["workloads"][0], "slo": {key: "2s"}}
        assert bool(re.match(slo, key)) == loads(workloads=[workload]), key
    for value in ("09:30", "fri 09:30", "sunday 23:59", "25:00", "fri", "9.30"):
        assert bool(re.match(start, value)) == loads(start=value), value
    for value in ("14:00", "7:05", "24:00", "2pm"):
        arrivals = {"process": "diurnal", "rate": 1, "peak_to_mean": 2, "peak_at": value}
        workload = {**BASE["workloads"][0], "arrivals": arrivals}
        assert bool(re.match(peak, value)) == loads(workloads=[workload]), value
