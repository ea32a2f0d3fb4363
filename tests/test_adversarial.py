"""Hostile input, every command: exit 2 with the file and the field named, never a
traceback, a hang or a wrong bill (README's promise; STYLE.md 14). Hand-written cases for
each class a campaign found, and a hypothesis mutator of valid scenarios and files."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversary import (
    assert_kept,
    assert_refused,
    capsim_here,
    nested,
    paths,
    set_at,
)

BASE: dict[str, Any] = {
    "name": "hostile",
    "seed": 1,
    "horizon": "60s",
    "models": {
        "m": {
            "price": {"input": 0.9, "output": 3.3},
            "context_length": 100_000,
            "architecture": {"like": "llama-3.1-8b"},
        }
    },
    "workloads": [
        {
            "name": "chat",
            "model": "m",
            "tags": {"tenant": "acme"},
            "arrivals": {"process": "poisson", "rate": "2/s"},
            "input_tokens": {"dist": "lognormal", "mean": 800, "cv": 0.5},
            "output_tokens": {"dist": "fixed", "value": 100},
            "slo": {"ttft_p95": "2s"},
            "prefix": {"shared_tokens": 200, "groups": 2},
            "route": ["pool", "serverless"],
        }
    ],
    "deployments": [
        {
            "name": "pool",
            "kind": "dedicated",
            "model": "m",
            "gpu": "H100-SXM",
            "replicas": 1,
            "price_per_gpu_hour": 2.0,
            "max_batch": 16,
            "max_queue": 4,
            "prefix_caching": True,
        },
        {"name": "serverless", "kind": "serverless"},
    ],
}

W = ("workloads", 0)
POOL = ("deployments", 0)
BIG = 10**20

# (what, where, value, a word the message must name)
FIELD_CASES: list[tuple[str, tuple[Any, ...], Any, str]] = [
    # overflow and non-finite numbers
    ("fixed tokens past int64", (*W, "input_tokens"), {"dist": "fixed", "value": BIG}, "value"),
    ("fixed tokens 1e20", (*W, "input_tokens"), {"dist": "fixed", "value": 1e20}, "value"),
    ("fixed tokens 2^63", (*W, "output_tokens"), {"dist": "fixed", "value": 2**63}, "value"),
    (
        "lognormal mean inf",
        (*W, "input_tokens"),
        {"dist": "lognormal", "mean": math.inf, "cv": 1},
        "mean",
    ),
    (
        "lognormal mean nan",
        (*W, "input_tokens"),
        {"dist": "lognormal", "mean": math.nan, "cv": 1},
        "mean",
    ),
    (
        "lognormal cv inf",
        (*W, "input_tokens"),
        {"dist": "lognormal", "mean": 10, "cv": math.inf},
        "cv",
    ),
    (
        "exponential mean 1e300",
        (*W, "input_tokens"),
        {"dist": "exponential", "mean": 1e300},
        "mean",
    ),
    (
        "uniform high 1e30",
        (*W, "input_tokens"),
        {"dist": "uniform", "low": 1, "high": 10**30},
        "high",
    ),
    (
        "uniform high < low",
        (*W, "input_tokens"),
        {"dist": "uniform", "low": 9, "high": 3},
        "input_tokens",
    ),
    (
        "empirical value 1e20",
        (*W, "input_tokens"),
        {"dist": "empirical", "values": [BIG]},
        "values",
    ),
    (
        "empirical weight nan",
        (*W, "input_tokens"),
        {"dist": "empirical", "values": [1, 2], "weights": [math.nan, 1]},
        "input_tokens",
    ),
    (
        "empirical weights zero",
        (*W, "input_tokens"),
        {"dist": "empirical", "values": [1], "weights": [0]},
        "input_tokens",
    ),
    ("max past int64", (*W, "input_tokens"), {"dist": "fixed", "value": 5, "max": BIG}, "max"),
    ("token pairs 1e20", (*W, "token_pairs"), {"pairs": [[BIG, 5]]}, "token_pairs"),
    ("price inf", ("models", "m", "price"), {"input": math.inf, "output": 1}, "price"),
    ("price nan", ("models", "m", "price"), {"input": math.nan, "output": 1}, "price"),
    ("price negative", ("models", "m", "price"), {"input": -1, "output": 1}, "price"),
    ("price 1e30", ("models", "m", "price"), {"input": 1e30, "output": 1}, "price"),
    ("context length 1e20", ("models", "m", "context_length"), BIG, "context_length"),
    ("context length 0", ("models", "m", "context_length"), 0, "context_length"),
    ("rate inf", (*W, "arrivals"), {"process": "poisson", "rate": math.inf}, "rate"),
    ("rate nan", (*W, "arrivals"), {"process": "poisson", "rate": math.nan}, "rate"),
    ("rate negative", (*W, "arrivals"), {"process": "poisson", "rate": "-3/s"}, "rate"),
    ("rate unit unknown", (*W, "arrivals"), {"process": "poisson", "rate": "3/fortnight"}, "rate"),
    ("gamma cv 0", (*W, "arrivals"), {"process": "gamma", "rate": "1/s", "cv": 0}, "cv"),
    ("gamma cv inf", (*W, "arrivals"), {"process": "gamma", "rate": "1/s", "cv": math.inf}, "cv"),
    (
        "diurnal peak inf",
        (*W, "arrivals"),
        {"process": "diurnal", "rate": "1/s", "peak_to_mean": math.inf},
        "peak_to_mean",
    ),
    ("GPU price inf", (*POOL, "price_per_gpu_hour"), math.inf, "price_per_gpu_hour"),
    ("GPU price 1e12", (*POOL, "price_per_gpu_hour"), 1e12, "price_per_gpu_hour"),
    ("GPU price nan", (*POOL, "price_per_gpu_hour"), math.nan, "price_per_gpu_hour"),
    (
        "fixed prefill inf",
        (*POOL, "performance"),
        {"model": "fixed", "prefill_tokens_per_s": math.inf, "tpot": "1ms"},
        "prefill_tokens_per_s",
    ),
    (
        "fixed tpot 1e-15",
        (*POOL, "performance"),
        {"model": "fixed", "prefill_tokens_per_s": 1e3, "tpot": 1e-15},
        "tpot",
    ),
    ("roofline mfu nan", (*POOL, "performance"), {"model": "roofline", "mfu": math.nan}, "mfu"),
    (
        "kv capacity inf",
        (*POOL, "performance"),
        {
            "model": "fixed",
            "prefill_tokens_per_s": 1e3,
            "tpot": "1ms",
            "kv_capacity_tokens": math.inf,
        },
        "kv_capacity_tokens",
    ),
    (
        "serverless speed inf",
        ("deployments", 1, "output_tokens_per_s"),
        math.inf,
        "output_tokens_per_s",
    ),
    (
        "serverless speed 1e-300",
        ("deployments", 1, "output_tokens_per_s"),
        1e-300,
        "output_tokens_per_s",
    ),
    ("serverless ttft 1e300 s", ("deployments", 1, "ttft"), "1e300s", "ttft"),
    (
        "rate limit nan",
        ("deployments", 1, "rate_limit"),
        {"requests_per_min": math.nan},
        "requests_per_min",
    ),
    (
        "batch rate inf",
        ("deployments", 1),
        {"name": "serverless", "kind": "batch", "tokens_per_s": math.inf},
        "tokens_per_s",
    ),
    ("horizon nan", ("horizon",), math.nan, "horizon"),
    ("horizon negative", ("horizon",), -1, "horizon"),
    ("horizon zero", ("horizon",), "0s", "horizon"),
    ("horizon words", ("horizon",), "a fortnight", "horizon"),
    ("month zero", ("month",), "0s", "month"),
    ("month inf", ("month",), math.inf, "month"),
    ("warmup past horizon", ("warmup",), "2h", "warmup"),
    ("seed negative", ("seed",), -1, "seed"),
    ("replications 1e6", ("replications",), 10**6, "replications"),
    (
        "extras inf",
        POOL,
        {
            "name": "pool",
            "kind": "gpu_cluster",
            "model": "m",
            "gpu": "H100-SXM",
            "gpus": 8,
            "extras_per_month": math.inf,
        },
        "extras_per_month",
    ),
    ("prefix shared tokens 1e20", (*W, "prefix"), {"shared_tokens": BIG}, "shared_tokens"),
    ("prefix groups 0", (*W, "prefix"), {"shared_tokens": 100, "groups": 0}, "groups"),
    (
        "prefix blocks of 0 tokens",
        (*W, "prefix"),
        {"shared_tokens": 100, "block_tokens": 0},
        "block_tokens",
    ),
    (
        "prefix routing without caching",
        POOL,
        {**BASE["deployments"][0], "prefix_caching": False, "prefix_routing": True},
        "prefix_routing",
    ),
    (
        "commitment price inf",
        (*POOL, "billing"),
        {"price_per_gpu_hour": math.inf},
        "price_per_gpu_hour",
    ),
    (
        "commitment minimum negative",
        (*POOL, "billing"),
        {"minimum_monthly_usd": -1},
        "minimum_monthly_usd",
    ),
    ("commitment term 0", (*POOL, "billing"), {"term_months": 0}, "term_months"),
    (
        "serverless price nan",
        ("deployments", 1, "price"),
        {"input": math.nan, "output": 1},
        "price",
    ),
    (
        "serverless cached price inf",
        ("deployments", 1, "price"),
        {"input": 1, "output": 1, "cached_input": math.inf},
        "cached_input",
    ),
    ("prompt cache ttl a year", ("deployments", 1, "prompt_cache_ttl"), "400d", "prompt_cache_ttl"),
    (
        "speculative draft tokens 100",
        (*POOL, "speculative"),
        {"draft_tokens": 100, "acceptance_rate": 0.5},
        "draft_tokens",
    ),
    (
        "speculative acceptance 1",
        (*POOL, "speculative"),
        {"draft_tokens": 3, "acceptance_rate": 1.0},
        "acceptance_rate",
    ),
    (
        "speculative acceptance nan",
        (*POOL, "speculative"),
        {"draft_tokens": 3, "acceptance_rate": math.nan},
        "acceptance_rate",
    ),
    (
        "speculative unknown draft",
        (*POOL, "speculative"),
        {"draft_tokens": 3, "acceptance_rate": 0.5, "draft": "gpt-9"},
        "gpt-9",
    ),
    # structure
    (
        "a route listing a deployment three times",
        (*W, "route"),
        ["pool", "pool", "pool"],
        "more than once",
    ),
    ("an empty route", (*W, "route"), [], "route"),
    ("a route to nowhere", (*W, "route"), ["nowhere"], "nowhere"),
    ("tags nested", (*W, "tags"), {"a": {"b": 1}}, "tags"),
    ("name a mapping", ("name",), {"x": 1}, "name"),
    ("workloads a string", ("workloads",), "chat", "workloads"),
    ("deployments null", ("deployments",), None, "deployments"),
    ("unknown key", (*W, "arrivalz"), 1, "arrivalz"),
    ("unknown process", (*W, "arrivals"), {"process": "hawkes", "rate": 1}, "arrivals"),
    ("unknown GPU", (*POOL, "gpu"), "H900", "H900"),
    (
        "model too big for the GPUs",
        ("models", "m", "architecture"),
        {"like": "llama-3.1-405b"},
        "pool",
    ),
    ("unknown architecture", ("models", "m", "architecture"), {"like": "gpt-9"}, "gpt-9"),
    ("SLO key unknown", (*W, "slo"), {"ttft_p100": "1s"}, "ttft_p100"),
    ("SLO target inf", (*W, "slo"), {"ttft_p95": math.inf}, "ttft_p95"),
    ("availability over 100%", (*W, "slo"), {"availability": "100.5%"}, "availability"),
    ("availability a boolean", (*W, "slo"), {"availability": True}, "availability"),
    ("availability NaN", (*W, "slo"), {"availability": math.nan}, "availability"),
    ("availability a mapping", (*W, "slo"), {"availability": {"p": 1}}, "availability"),
    # booleans are not numbers (pydantic would take true for 1)
    ("replicas true", (*POOL, "replicas"), True, "replicas"),
    ("max_batch false", (*POOL, "max_batch"), False, "max_batch"),
    ("price true", ("models", "m", "price"), {"input": True, "output": 1}, "input"),
    ("token value true", (*W, "input_tokens"), {"dist": "fixed", "value": True}, "value"),
    ("horizon true", ("horizon",), True, "horizon"),
    # measured kernels (third wave)
    ("kernels engine unknown", (*POOL, "performance"), {"model": "kernels", "engine": "tgi"}, "engine"),
    ("kernels engine a number", (*POOL, "performance"), {"model": "kernels", "engine": 3}, "engine"),
    ("kernels version unlisted", (*POOL, "performance"), {"model": "kernels", "engine_version": "9.9"}, "engine_version"),
    ("kernels version a path", (*POOL, "performance"), {"model": "kernels", "engine_version": "../../x"}, "engine_version"),
    ("kernels version empty", (*POOL, "performance"), {"model": "kernels", "engine_version": ""}, "engine_version"),
    ("kernels version non-ASCII", (*POOL, "performance"), {"model": "kernels", "engine_version": "１.０"}, "engine_version"),
    ("kernels with roofline knobs", (*POOL, "performance"), {"model": "kernels", "mfu": 0.5}, "mfu"),
    ("kernels precision a boolean", (*POOL, "performance"), {"model": "kernels", "precision": True}, "precision"),
    ("kernels on an AMD GPU", POOL, {"name": "pool", "kind": "dedicated", "model": "m", "gpu": "MI300X", "replicas": 1, "price_per_gpu_hour": 2.0, "performance": {"model": "kernels"}}, "MI300X"),
    ("deeply nested tags", (*W, "tags"), {"deep": nested(120)}, "nested"),
    ("deeply nested arrivals", (*W, "arrivals"), nested(150), "nested"),
    # runaway work, refused up front (or as soon as it shows)
    ("replicas 1e8", (*POOL, "replicas"), 100_000_000, "replicas"),
    ("autoscale max 1e9", (*POOL, "replicas"), {"min": 1, "max": 10**9}, "max"),
    (
        "cluster of 1e9 GPUs",
        POOL,
        {"name": "pool", "kind": "gpu_cluster", "model": "m", "gpu": "H100-SXM", "gpus": 10**9},
        "gpus",
    ),
    ("max_batch 1e12", (*POOL, "max_batch"), 10**12, "max_batch"),
    ("gpus_per_replica 1e9", (*POOL, "gpus_per_replica"), 10**9, "gpus_per_replica"),
    ("rate 1e30/s", (*W, "arrivals"), {"process": "poisson", "rate": "1e30/s"}, "arrivals"),
    (
        "batch jobs every 1 us",
        (*W, "arrivals"),
        {"process": "batch_jobs", "every": 1e-6, "requests": 1000},
        "arrivals",
    ),
    ("horizon 1e300 s", ("horizon",), "1e300s", "horizon"),
    # keys of the third wave: length routing, KV admission, roofline efficiencies
    ("max_input_tokens 0", (*POOL, "max_input_tokens"), 0, "max_input_tokens"),
    ("max_input_tokens 1e20", (*POOL, "max_input_tokens"), BIG, "max_input_tokens"),
    ("kv_admission greedy", (*POOL, "kv_admission"), "greedy", "kv_admission"),
    ("prefill eager", (*POOL, "prefill"), "eager", "prefill"),
    ("prefill [fused]", (*POOL, "prefill"), ["fused"], "prefill"),
    (
        "moe_efficiency nan",
        (*POOL, "performance"),
        {"model": "roofline", "moe_efficiency": math.nan},
        "moe_efficiency",
    ),
    (
        "activation reserve -1 GB",
        (*POOL, "performance"),
        {"model": "roofline", "activation_reserve_gb": -1},
        "activation_reserve_gb",
    ),
    (
        "activation reserve past the GPU",
        (*POOL, "performance"),
        {"model": "roofline", "activation_reserve_gb": 500},
        "H100",
    ),
    # fourth wave: disaggregation, long-context price tiers
    ("no prefill replicas", (*POOL, "disaggregation"), {"prefill_replicas": 0}, "prefill_replicas"),
    (
        "KV transfer at NaN GB/s",
        (*POOL, "disaggregation"),
        {"prefill_replicas": 1, "kv_transfer_gb_per_s": math.nan},
        "kv_transfer_gb_per_s",
    ),
    (
        "prefill on an unknown GPU",
        (*POOL, "disaggregation"),
        {"prefill_replicas": 1, "prefill_gpu": "H900"},
        "prefill_gpu",
    ),
    (
        "disaggregation with replica failures",
        POOL,
        {**BASE["deployments"][0], "disaggregation": {"prefill_replicas": 1}, "failures": {"mtbf": "1h"}},
        "disaggregation",
    ),
    (
        "a price tier above 0 tokens",
        ("models", "m", "price"),
        {"input": 1, "output": 1, "tiers": [{"above_input_tokens": 0, "input": 2, "output": 2}]},
        "above_input_tokens",
    ),
    (
        "price tiers not a list",
        ("models", "m", "price"),
        {"input": 1, "output": 1, "tiers": 5},
        "tiers",
    ),
]


def _write(tmp_path: Path, data: Any, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_the_base_scenario_is_valid(tmp_path: Path) -> None:
    result = capsim_here("run", str(_write(tmp_path, BASE)), "--format", "json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["requests"] > 0


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [(w, v, f) for _, w, v, f in FIELD_CASES],
    ids=[c[0] for c in FIELD_CASES],
)
def test_a_bad_field_is_refused_with_the_file_and_field(
    tmp_path: Path, where: tuple[Any, ...], value: Any, field: str
) -> None:
    path = _write(tmp_path, set_at(BASE, where, value))
    result = capsim_here("run", str(path), "--format", "json")
    assert_refused(result, str(path), field)


# runaway work that validates but would not finish: refused up front with the cause
WORK_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "autoscaler every millisecond for a month",
        {
            **BASE,
            "horizon": "30d",
            "workloads": [
                {**BASE["workloads"][0], "arrivals": {"process": "poisson", "rate": "1/h"}}
            ],
            "deployments": [
                {**BASE["deployments"][0], "replicas": {"min": 1, "max": 4, "interval": "1ms"}},
                BASE["deployments"][1],
            ],
        },
        "deployments.pool.replicas.interval",
    ),
    (
        "MMPP switching every nanosecond",
        set_at(
            BASE,
            (*W, "arrivals"),
            {
                "process": "mmpp",
                "states": [
                    {"rate": "1/s", "mean_duration": 1e-9},
                    {"rate": 0, "mean_duration": 1e-9},
                ],
            },
        ),
        "workloads.chat.arrivals",
    ),
    (
        "diurnal thinning at a huge peak",
        {
            **set_at(
                BASE, (*W, "arrivals"), {"process": "diurnal", "rate": "20/s", "peak_to_mean": 1000}
            ),
            "horizon": "7d",
        },
        "workloads.chat.arrivals",
    ),
    (
        "a closed loop whose answers take no time",
        {
            **BASE,
            "horizon": "1d",
            "workloads": [
                {
                    **BASE["workloads"][0],
                    "arrivals": {"process": "closed", "concurrency": 50},
                    "route": ["instant"],
                }
            ],
            "deployments": [
                {"name": "instant", "kind": "serverless", "ttft": 0, "output_tokens_per_s": 1e9}
            ],
        },
        "closed loop",
    ),
    (
        "replications that together are too many requests",
        {
            **set_at(BASE, (*W, "arrivals"), {"process": "poisson", "rate": "100/s"}),
            "horizon": "1d",
            "replications": 10,
        },
        "replication",
    ),
]


@pytest.mark.parametrize(
    ("data", "cause"), [(d, c) for _, d, c in WORK_CASES], ids=[c[0] for c in WORK_CASES]
)
def test_runaway_work_is_refused_naming_its_cause(
    tmp_path: Path, data: dict[str, Any], cause: str
) -> None:
    path = _write(tmp_path, data)
    result = capsim_here("run", str(path), "--format", "json", limit=30)
    assert_refused(result, str(path), cause)


TEXT_CASES: list[tuple[str, str]] = [
    (
        "a key given twice",
        "name: a\nname: b\nhorizon: 1m\nmodels: {}\nworkloads: []\ndeployments: []\n",
    ),
    ("a nested key given twice", "name: a\nmodels: {m: {price: {input: 1, input: 2}}}\n"),
    ("binary", "\x00\x01\x02\x03"),
    ("deep flow list", "name: " + "[" * 5000 + "]" * 5000),
    ("deep flow mapping", "name: " + "{a: " * 3000 + "1" + "}" * 3000),
    (
        "alias bomb",
        "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
    ),
    ("recursive alias", "a: &a [*a]\n"),
    ("a list at the top", "- 1\n- 2\n"),
    ("a scalar at the top", "42\n"),
    ("empty", ""),
    ("only a comment", "# nothing\n"),
    ("tabs", "name:\t\tx\n\thorizon: 1\n"),
    ("JSON with NaN", '{"name": "x", "seed": NaN}'),
    ("unclosed quote", 'name: "x\n'),
    ("a python tag", "name: !!python/object:os.system {}\n"),
    ("a huge number", "name: x\nseed: " + "9" * 5000 + "\n"),
]


@pytest.mark.parametrize("text", [t for _, t in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_a_bad_scenario_text_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    for command in (["validate"], ["run"]):
        assert_refused(capsim_here(*command, str(path)), str(path))


def test_non_utf8_and_oversized_and_special_files_are_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: café\n".encode("latin-1"))
    assert_refused(capsim_here("validate", str(latin)), str(latin), "UTF-8")
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # sparse: 17 MiB claimed, nothing written
        handle.truncate(17 * 1024 * 1024)
    assert_refused(capsim_here("validate", str(big)), str(big), "limit")
    assert_refused(capsim_here("validate", str(tmp_path)), str(tmp_path), "directory")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert_refused(capsim_here("validate", str(fifo), limit=10), str(fifo), "regular file")
    assert_refused(capsim_here("validate", "/dev/zero", limit=10), "/dev/zero", "regular file")


def _scenario_with(tmp_path: Path, **changes: Any) -> Path:
    return _write(tmp_path, {**BASE, **changes})


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "directory", "latin-1", "missing"])
@pytest.mark.parametrize("role", ["catalog", "trace", "table", "grid", "values"])
def test_every_file_a_scenario_or_command_names_is_read_with_care(
    tmp_path: Path, role: str, special: str
) -> None:
    """Catalogs, traces, performance tables, sweep grids and --vary value files: a FIFO or
    a device is not read forever, a folder or bad bytes are refused, each naming the file."""
    if special == "fifo":
        target = tmp_path / "thing"
        os.mkfifo(target)
    elif special == "/dev/zero":
        target = Path("/dev/zero")
    elif special == "directory":
        target = tmp_path / "folder"
        target.mkdir()
    elif special == "latin-1":
        target = tmp_path / "latin.txt"
        target.write_bytes("é,ü\n1,2\n".encode("latin-1") + b"\xff\xfe")
    else:
        target = tmp_path / "missing.json"
    if role == "catalog":
        argv = ["validate", str(_scenario_with(tmp_path, catalog=str(target)))]
    elif role == "trace":
        workload = {
            **BASE["workloads"][0],
            "arrivals": {"process": "trace", "path": str(target), "format": "azure"},
        }
        argv = ["validate", str(_scenario_with(tmp_path, workloads=[workload]))]
    elif role == "table":
        pool = {**BASE["deployments"][0], "performance": {"model": "table", "path": str(target)}}
        argv = [
            "validate",
            str(_scenario_with(tmp_path, deployments=[pool, BASE["deployments"][1]])),
        ]
    elif role == "grid":
        argv = ["sweep", str(_write(tmp_path, BASE)), "--grid", str(target), "--workers", "1"]
    else:
        argv = ["compare", str(_write(tmp_path, BASE)), "--vary", f"seed=@{target}"]
    result = capsim_here(*argv, limit=20)
    assert_refused(result, str(target) if special != "/dev/zero" else "/dev/zero")


@pytest.mark.parametrize(
    "text",
    [
        '{"completed": NaN, "total_input_tokens": 1, "total_output_tokens": 1, "mean_tpot_ms": 1, "mean_ttft_ms": 1, "output_throughput": 1}',
        '{"completed": 10, "total_input_tokens": 1e400, "total_output_tokens": 1, "mean_tpot_ms": 1, "mean_ttft_ms": 1, "output_throughput": 1}',
        '{"completed": 10, "total_input_tokens": 100, "total_output_tokens": 100, "mean_tpot_ms": Infinity, "mean_ttft_ms": 1, "output_throughput": 1}',
        "[" * 3000 + "]" * 3000,
    ],
    ids=["nan", "overflow", "infinity", "deep"],
)
def test_non_finite_or_deep_performance_tables_are_refused(tmp_path: Path, text: str) -> None:
    table = tmp_path / "vllm.json"
    table.write_text(text)
    pool = {**BASE["deployments"][0], "performance": {"model": "table", "path": str(table)}}
    path = _scenario_with(tmp_path, deployments=[pool, BASE["deployments"][1]])
    assert_refused(capsim_here("run", str(path)), str(table))


@pytest.mark.parametrize(
    ("header", "row", "word"),
    [
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens",
            "2023-11-16 18:15:46.6805900,10000000000000000000,5",
            "tokens",
        ),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens",
            "2023-11-16 18:15:46.6805900,inf,5",
            "ContextTokens",
        ),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens",
            "2023-11-16 18:15:46.6805900,-4,5",
            "ContextTokens",
        ),
        ("TIMESTAMP,ContextTokens,GeneratedTokens", "yesterday,4,5", "TIMESTAMP"),
    ],
    ids=["tokens past int64", "infinite tokens", "negative tokens", "bad time"],
)
def test_bad_trace_rows_are_refused_with_the_line(
    tmp_path: Path, header: str, row: str, word: str
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(f"{header}\n{row}\n")
    workload = {
        **BASE["workloads"][0],
        "arrivals": {"process": "trace", "path": str(trace), "format": "azure"},
    }
    path = _scenario_with(tmp_path, workloads=[workload])
    assert_refused(capsim_here("run", str(path)), str(trace), word)


@pytest.mark.parametrize(
    ("entry", "word"),
    [
        ({"input_cost_per_token": 1e308, "output_cost_per_token": 1e-6}, "input_cost_per_token"),
        ({"input_cost_per_token": "abc", "output_cost_per_token": 1e-6}, "input_cost_per_token"),
        ({"input_cost_per_token": 1e-6, "output_cost_per_token": -1}, "output_cost_per_token"),
        ({"input_cost_per_token": True, "output_cost_per_token": 1e-6}, "input_cost_per_token"),
    ],
    ids=["huge", "text", "negative", "boolean"],
)
def test_bad_catalog_prices_are_refused_with_the_entry(
    tmp_path: Path, entry: dict[str, Any], word: str
) -> None:
    catalog = tmp_path / "prices.json"
    catalog.write_text(json.dumps({"my-model": {**entry, "litellm_provider": "together_ai"}}))
    assert_refused(capsim_here("prices", "--catalog", str(catalog)), str(catalog), "my-model", word)


@pytest.mark.parametrize("hash_ids", ["[1, -2]", '"abc"', "[1.5]", "[true]", "[" + "9" * 30 + "]"])
def test_bad_hash_ids_are_refused_with_the_line(tmp_path: Path, hash_ids: str) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        '{"timestamp": 0, "input_length": 5, "output_length": 5, "hash_ids": [0]}\n'
        f'{{"timestamp": 1, "input_length": 5, "output_length": 5, "hash_ids": {hash_ids}}}\n'
    )
    workload = {
        **BASE["workloads"][0],
        "arrivals": {"process": "trace", "path": str(trace), "format": "mooncake"},
    }
    path = _scenario_with(tmp_path, workloads=[workload])
    assert_refused(capsim_here("run", str(path)), str(trace), "line 2")


def test_a_deep_jsonl_trace_line_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        '{"timestamp": 1, "input_length": 5, "output_length": 5}\n' + "[" * 5000 + "]" * 5000 + "\n"
    )
    workload = {
        **BASE["workloads"][0],
        "arrivals": {"process": "trace", "path": str(trace), "format": "mooncake"},
    }
    path = _scenario_with(tmp_path, workloads=[workload])
    assert_refused(capsim_here("run", str(path)), str(trace), "line 2")


@pytest.mark.parametrize(
    "argv",
    [
        ["--vary", "seed=" + "[" * 3000 + "]" * 3000],
        ["--vary", "workloads.chat.arrivals={a: 1, a: 2}"],
        ["--vary", "nowhere.at.all=1,2"],
        ["--vary", "seed"],
        ["--vary", "horizon=-5s,1m"],
    ],
    ids=["deep", "duplicate key", "bad path", "no values", "bad value"],
)
def test_bad_vary_options_are_refused(tmp_path: Path, argv: list[str]) -> None:
    result = capsim_here("compare", str(_write(tmp_path, BASE)), *argv)
    assert_refused(result)


@pytest.mark.parametrize(
    "grid",
    [
        "vary: " + "[" * 3000 + "]" * 3000,
        "vary: {seed: [1, 2]}\nvary: {seed: [3]}\n",
        "vary: {seed: []}\n",
        "[1, 2]\n",
        "seeds: [-1]\n",
    ],
    ids=["deep", "duplicate key", "empty values", "a list", "negative seed"],
)
def test_bad_grids_are_refused(tmp_path: Path, grid: str) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(grid)
    result = capsim_here(
        "sweep", str(_write(tmp_path, BASE)), "--grid", str(path), "--workers", "1"
    )
    assert_refused(result, str(path))


def test_fit_refuses_a_log_spanning_ages_and_fits_a_regular_one(tmp_path: Path) -> None:
    """One far outlier made fit allocate per-minute counts over millennia; perfectly
    regular gaps (CV 0) made it propose a gamma law no scenario accepts."""
    rows = "".join(f"{t},5,5\n" for t in (0, 1, 2, 3, 10**12))
    outlier = tmp_path / "outlier.csv"
    outlier.write_text("timestamp,input_tokens,output_tokens\n" + rows)
    assert_refused(
        capsim_here("fit", str(outlier), "--format", "csv", limit=20), str(outlier), "days"
    )
    regular = tmp_path / "regular.csv"
    regular.write_text(
        "timestamp,input_tokens,output_tokens\n" + "".join(f"{2 * i},100,50\n" for i in range(200))
    )
    result = capsim_here("fit", str(regular), "--format", "csv", "--output", "json")
    assert result.code == 0, result.stderr
    workload = json.loads(result.stdout)["workload"]
    assert workload["arrivals"]["cv"] == 0.01
    from simulator.scenario.format import Workload

    Workload.model_validate(workload)  # the fitted workload is a valid one


@pytest.mark.parametrize(
    "argv",
    [
        [
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "H100-SXM",
            "--input-tokens",
            "100",
            "--output-tokens",
            "10",
            "--concurrency",
            "10001",
        ],
        [
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "H100-SXM",
            "--input-tokens",
            "0",
            "--output-tokens",
            "10",
        ],
        [
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "H100-SXM",
            "--input-tokens",
            "99999999999",
            "--output-tokens",
            "10",
        ],
        [
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "H100-SXM",
            "--input-tokens",
            "10",
            "--output-tokens",
            "10",
            "--rate",
            "inf",
        ],
        [
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "H100-SXM",
            "--input-tokens",
            "10",
            "--output-tokens",
            "10",
            "--concurrency",
            "-3",
        ],
        [
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "A100-80GB",
            "--precision",
            "fp8",
            "--input-tokens",
            "10",
            "--output-tokens",
            "10",
        ],
        [
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "L4",
            "--input-tokens",
            "100",
            "--output-tokens",
            "20",
            "--batch",
            "5",
            "--concurrency",
            "3",
        ],
        [
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "L4",
            "--input-tokens",
            "100",
            "--output-tokens",
            "20",
            "--batch",
            "-1",
        ],
        [  # waves of a KV cache that holds a few at a time: more than the day it may take
            "probe",
            "--model",
            "llama-3.1-8b",
            "--gpu",
            "L4",
            "--input-tokens",
            "100",
            "--output-tokens",
            "50000",
            "--batch",
            "10000",
        ],
        ["plan", "/no/such/file.yaml"],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--deployment", "nope"],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--gpus", "H900"],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--max-replicas", "0"],
        ["probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "10",
         "--output-tokens", "10", "--concurrency", "²"],
        ["probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "10",
         "--output-tokens", "10", "--concurrency", "٣"],
        ["run", "scenarios/serverless_pricing_guide.yaml", "--seed", "²"],
        ["sweep", "scenarios/traffic_steady.yaml", "--grid", "scenarios/values/traffic_profiles.yaml", "--dask", "not an address"],
        ["sweep", "scenarios/traffic_steady.yaml", "--grid", "scenarios/values/traffic_profiles.yaml", "--dask", "tcp://[::1"],
        ["sweep", "scenarios/traffic_steady.yaml", "--grid", "scenarios/values/traffic_profiles.yaml", "--dask", "tcp://host:²"],
        ["sweep", "scenarios/traffic_steady.yaml", "--grid", "scenarios/values/traffic_profiles.yaml", "--dask", "tcp://host"],
        ["fit", "scenarios/traces/AzureLLMInferenceTrace_conv.csv", "--format", "azure", "--name", "", "--model", "m"],
        ["fit", "scenarios/traces/AzureLLMInferenceTrace_conv.csv", "--format", "azure", "--name", "a b", "--model", "m"],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--tp", "0"],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--tp", "²"],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--tp", "1,,2"],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--engines", "trtllm,tgi"],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--engines", ""],
        ["plan", "scenarios/plan_chat_assistant.yaml", "--months", "3", "--tp", "2"],
        ["probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "10",
         "--output-tokens", "10", "--engine", "tgi"],
        ["probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "10",
         "--output-tokens", "10", "--engine", "vllm", "--engine-version", "../x"],
        ["probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "10",
         "--output-tokens", "10", "--engine-version", "0.24.0"],
        ["probe", "--model", "llama-3.1-8b", "--gpu", "MI300X", "--input-tokens", "10",
         "--output-tokens", "10", "--engine", "trtllm"],
        ["probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "10",
         "--output-tokens", "10", "--engine", "trtllm", "--roofline"],
        ["fit", "/dev/zero", "--format", "azure"],
        ["fit", "scenarios/serverless_pricing_guide.yaml", "--format", "azure"],
        ["prices", "--catalog", "/dev/zero"],
        ["run", "scenarios/serverless_pricing_guide.yaml", "--seed", "-1"],
        ["run", "scenarios/serverless_pricing_guide.yaml", "--replications", "0"],
    ],
    ids=lambda argv: " ".join(argv)[:60],
)
def test_bad_command_lines_are_refused(argv: list[str]) -> None:
    result = capsim_here(*argv, limit=30)
    assert_kept(result)
    assert result.code == 2


def test_a_bad_out_folder_fails_before_the_run(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile / "below", Path("/proc/capsim-no")):
        result = capsim_here(
            "run", "scenarios/dedicated_h100_spillover.yaml", "--out", str(out), limit=20
        )
        assert_refused(result, "--out")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        assert_refused(
            capsim_here("run", str(_write(tmp_path, BASE)), "--out", str(locked / "o")), "--out"
        )


def test_outputs_are_written_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted write leaves the old file, never a truncated one beside a new report."""
    from simulator import files

    out = tmp_path / "out"
    ok = capsim_here("run", str(_write(tmp_path, BASE)), "--out", str(out), "--quiet")
    assert ok.code == 0, ok.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real = files.StagedWrites.text

    def interrupted(self: files.StagedWrites, path: Path, text: str) -> None:
        if path.name == "report.html":  # the records and report.json already staged
            raise KeyboardInterrupt
        real(self, path, text)

    monkeypatch.setattr(files.StagedWrites, "text", interrupted)
    changed = set_at(BASE, ("seed",), 2)
    result = capsim_here("run", str(_write(tmp_path, changed)), "--out", str(out), "--quiet")
    assert result.code == 130 and "interrupted" in result.stderr
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before)  # no temporary file left behind
    assert after == before  # records, report and page all the earlier run's


# -- the mutator ------------------------------------------------------------------------------

HOSTILE = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            -1,
            0,
            2**63,
            10**20,
            -(10**20),
            math.inf,
            -math.inf,
            math.nan,
            1e308,
            1e-300,
            "",
            "x" * 10_000,
            "\x00",
            "NaN",
            "-5m",
            "1e999/s",
            "9" * 400,
            [],
            {},
            [None],
            {"": 1},
            "1/0s",
            "∞",
        ]
    ),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.builds(nested, st.integers(60, 150)),
)

# the serving techniques, on a second base (they do not all go together on one pool):
# length routing, speculative decoding, disaggregation, tiered and cached-input prices,
# a batch queue
SERVING: dict[str, Any] = {
    "name": "hostile-serving",
    "seed": 1,
    "horizon": "60s",
    "models": {
        "m": {
            "price": {
                "input": 0.9,
                "output": 3.3,
                "cached_input": 0.45,
                "tiers": [{"above_input_tokens": 2000, "input": 1.8, "output": 6.6}],
            },
            "context_length": 100_000,
            "architecture": {"like": "llama-3.1-8b"},
        }
    },
    "workloads": [
        {
            "name": "chat",
            "model": "m",
            "arrivals": {"process": "poisson", "rate": "2/s"},
            "input_tokens": {"dist": "lognormal", "mean": 800, "cv": 0.5},
            "output_tokens": {"dist": "fixed", "value": 100},
            "slo": {"ttft_p95": "2s", "tpot_p95": "50ms"},
            "route": ["short", "pool", "serverless"],
        },
        {
            "name": "offline",
            "model": "m",
            "arrivals": {"process": "batch_jobs", "every": "30s", "requests": 20},
            "input_tokens": {"dist": "fixed", "value": 500},
            "output_tokens": {"dist": "fixed", "value": 50},
            "slo": {"completion": "24h"},
            "route": ["batch"],
        },
    ],
    "deployments": [
        {
            "name": "short",
            "kind": "dedicated",
            "model": "m",
            "gpu": "H100-SXM",
            "replicas": 1,
            "price_per_gpu_hour": 2.0,
            "max_input_tokens": 1000,
            "speculative": {"draft_tokens": 2, "acceptance_rate": 0.6},
        },
        {
            "name": "pool",
            "kind": "dedicated",
            "model": "m",
            "gpu": "H100-SXM",
            "replicas": 1,
            "price_per_gpu_hour": 2.0,
            "max_queue": 4,
            "disaggregation": {"prefill_replicas": 1, "kv_transfer_gb_per_s": 50},
        },
        {"name": "serverless", "kind": "serverless"},
        {"name": "batch", "kind": "batch", "discount": 0.5},
    ],
}

# what the guide names (#26): replica failures, images, cache-aware disaggregation
GUIDE: dict[str, Any] = {
    "name": "hostile-guide",
    "seed": 1,
    "horizon": "10m",
    "models": {
        "g": {
            "price": {"input": 0.2, "output": 0.6},
            "context_length": 100_000,
            "architecture": {"like": "gemma-3-27b"},
        }
    },
    "workloads": [
        {
            "name": "docs",
            "model": "g",
            "arrivals": {"process": "poisson", "rate": "1/s"},
            "input_tokens": {"dist": "lognormal", "mean": 400, "cv": 0.5},
            "output_tokens": {"dist": "fixed", "value": 80},
            "images": {"per_request": {"dist": "empirical", "values": [1, 3]}, "tokens_per_image": 256},
            "slo": {"availability": "99%", "ttft_p95": "3s"},
            "route": ["pool", "serverless"],
        },
        {
            "name": "chat",
            "model": "g",
            "arrivals": {"process": "poisson", "rate": "1/s"},
            "input_tokens": {"dist": "fixed", "value": 1500},
            "output_tokens": {"dist": "fixed", "value": 50},
            "prefix": {"shared_tokens": 1024, "groups": 3, "block_tokens": 256},
            "route": ["cpd", "serverless"],
        },
    ],
    "deployments": [
        {
            "name": "pool",
            "kind": "dedicated",
            "model": "g",
            "gpu": "H100-SXM",
            "gpus_per_replica": 2,
            "replicas": 2,
            "max_queue": 2,
            "failures": {"mtbf": "2m", "repair": "30s", "retries": 1},
        },
        {
            "name": "cpd",
            "kind": "dedicated",
            "model": "g",
            "gpu": "H100-SXM",
            "gpus_per_replica": 2,
            "replicas": 1,
            "prefix_caching": True,
            "prefix_routing": True,
            "disaggregation": {"prefill_replicas": 2},
        },
        {"name": "serverless", "kind": "serverless"},
    ],
}

MUTABLE = (
    [("base", p) for p in paths(BASE) if p[0] not in ("name",)]
    + [("serving", p) for p in paths(SERVING) if p[0] not in ("name",)]
    + [("guide", p) for p in paths(GUIDE) if p[0] not in ("name",)]
)
BASES = {"base": BASE, "serving": SERVING, "guide": GUIDE}


def test_the_guide_base_is_valid_and_uses_every_feature(tmp_path: Path) -> None:
    result = capsim_here("run", str(_write(tmp_path, GUIDE)), "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    pools = {d["name"]: d for d in report["deployments"]}
    assert pools["pool"]["failures"] > 0 and pools["pool"]["requests_retried"] > 0
    assert pools["cpd"]["requests"] > 0 and pools["cpd"]["prefix_cache_hit_rate"] > 0
    assert report["workloads"][0]["image_tokens"] > 0


def test_the_serving_base_is_valid_and_uses_every_technique(tmp_path: Path) -> None:
    result = capsim_here("run", str(_write(tmp_path, SERVING)), "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    pools = {d["name"]: d for d in report["deployments"]}
    assert pools["short"]["requests"] > 0 and pools["short"]["passed_by_length"] > 0
    assert pools["pool"]["requests"] > 0 and pools["pool"]["prefill_replicas"] == 1
    assert pools["batch"]["requests"] > 0


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(where=st.sampled_from(MUTABLE), value=HOSTILE, command=st.sampled_from(["validate", "run"]))
def test_any_mutation_of_a_valid_scenario_keeps_the_promise(
    tmp_path: Path, where: tuple[str, tuple[Any, ...]], value: Any, command: str
) -> None:
    """Whatever value lands wherever, in either base: exit 0 or 2, no traceback, in time;
    a refusal names the file; an accepted run's money adds up."""
    base, at = where
    data = set_at(BASES[base], at, value)
    path = tmp_path / "mutant.yaml"
    try:
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    except RecursionError:
        return
    argv = [command, str(path)] + (["--format", "json", "--quiet"] if command == "run" else [])
    result = capsim_here(*argv, limit=60)
    assert_kept(result)
    if result.code == 2:
        assert str(path) in result.stderr
    elif command == "run":
        report = json.loads(result.stdout)
        totals = report["totals"]
        for part in ("deployments", "workloads", "models"):
            assert math.isclose(
                sum(x["cost_usd"] for x in report[part]),
                totals["cost_usd"],
                rel_tol=1e-9,
                abs_tol=1e-9,
            ), part
        assert totals["requests"] == totals["completed"] + totals["rejected"]
        assert all(x["cost_usd"] >= 0 for x in report["deployments"])


def test_the_python_api_varies_a_scenario_with_validation() -> None:
    """model_copy(update=...) skips validation (a string horizon crashed the run, a negative
    one reported -0.0): `simulator.vary` validates as a file would."""
    import simulator
    from simulator.errors import ScenarioError

    scenario = simulator.load_scenario(BASE)
    same = simulator.vary(scenario, {})
    assert simulator.run(same).report == simulator.run(scenario).report
    busier = simulator.vary(scenario, {"workloads.chat.arrivals.rate": "4/s", "horizon": "2m"})
    assert busier.horizon == 120 and busier.workloads[0].arrivals.mean_rate() == 4
    for bad, field in [
        ({"horizon": "-5s"}, "horizon"),
        ({"horizon": "soon"}, "horizon"),
        ({"deployments.pool.replicas": 0}, "deployments.pool.replicas"),
        ({"models.m.price.input": math.inf}, "models.m.price.input"),
        ({"nowhere.x": 1}, "nowhere"),
    ]:
        with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
            simulator.vary(scenario, bad)


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_stops_a_run_cleanly(tmp_path: Path, sig: str, code: int) -> None:
    """Ctrl-C exits 130 and SIGTERM 143, with one line and no traceback, and leaves no
    output file behind (they are written only once the run is done, each atomically)."""
    import signal
    import subprocess
    import sys
    import time

    # a run of tens of seconds in a few hundred MB: two days of a dedicated pool (the 12M
    # requests of a week on serverless took ~1 GB, and once a loaded CI machine had not
    # answered the signal after 60 s)
    long_run = {
        **BASE,
        "horizon": "2d",
        "models": {
            "m": {"price": {"input": 1, "output": 1}, "architecture": {"like": "llama-3.1-8b"}}
        },
        "deployments": [
            {"name": "pool", "kind": "dedicated", "model": "m", "gpu": "H100-SXM", "replicas": 4}
        ],
    }
    long_run["workloads"] = [
        {
            **BASE["workloads"][0],
            "arrivals": {"process": "poisson", "rate": "12/s"},
            "route": ["pool"],
        }
    ]
    path = _write(tmp_path, long_run)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "run", str(path), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    assert process.poll() is None, "the run ended before the signal"
    process.send_signal(getattr(signal, sig))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "capsim:" in stderr
    assert not out.exists() or not any(out.iterdir())


@given(
    header=st.sampled_from(
        ["gpu,usd_per_gpu_hour\n", "usd_per_gpu_hour,gpu\r\n", "\ufeffgpu,x,usd_per_gpu_hour\n", ""]
    ),
    body=st.text(
        alphabet=st.sampled_from(list('L40SH1.0e-9,"\r\n\t \x00é\ufeffnaif')), max_size=80
    ),
)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_gpu_price_csv_is_read_or_refused(tmp_path: Path, header: str, body: str) -> None:
    """`plan --gpu-prices FILE.csv` on hostile text: prices of known GPUs within bounds, or a
    CapsimError naming the file; never another exception."""
    from simulator.cli.plan import _gpu_prices
    from simulator.errors import CapsimError
    from simulator.serving.hardware import find_gpu

    path = tmp_path / "prices.csv"
    path.write_bytes((header + body).encode("utf-8", "surrogatepass"))
    try:
        prices = _gpu_prices(path)
    except CapsimError as exc:
        assert str(path) in str(exc)
        return
    for gpu, price in prices.items():
        assert find_gpu(gpu) is not None and 0 <= price <= 10_000


# --- hardening, third round: what files the user points at never leak, degenerate inputs ---

SECRET = "sk-live-4f9a8b7c6d5e"


@pytest.mark.parametrize(
    ("name", "text", "argv"),
    [
        ("csv trace header", f"{SECRET}\n1,2,3\n", ["fit", "{f}", "--format", "csv", "--name", "w", "--model", "m"]),
        ("csv trace ragged", f"timestamp,input_tokens,output_tokens\n1,2,3\n{SECRET},1,2,3,4,5\n", ["fit", "{f}", "--format", "csv", "--name", "w", "--model", "m"]),
        ("azure trace header", f"AWS_SECRET={SECRET}\nx\n", ["fit", "{f}", "--format", "azure", "--name", "w", "--model", "m"]),
        ("gpu price csv", f"gpu,usd_per_gpu_hour\nH100-SXM,{SECRET}\n", ["plan", "scenarios/plan_chat_assistant.yaml", "--gpus", "H100-SXM", "--gpu-prices", "{f}"]),
        ("gpu price yaml", f"H100-SXM: {SECRET}\n", ["plan", "scenarios/plan_chat_assistant.yaml", "--gpus", "H100-SXM", "--gpu-prices", "{f}"]),
        ("price catalog", json.dumps({"m": {"input_cost_per_token": SECRET, "output_cost_per_token": 1e-6, "litellm_provider": "together_ai"}}), ["prices", "--catalog", "{f}"]),
        ("model config", json.dumps({"num_hidden_layers": SECRET, "hidden_size": 4096}), ["probe", "--architecture", "{f}", "--gpu", "H100-SXM", "--input-tokens", "10", "--output-tokens", "10"]),
        ("value file yaml", f"api_key: {SECRET}\n", ["compare", "scenarios/dedicated_h100_spillover.yaml", "--vary", "deployments.h100-pool.replicas=@{f}"]),
        ("value list yaml", f"- 2\n- {SECRET}\n", ["compare", "scenarios/dedicated_h100_spillover.yaml", "--vary", "deployments.h100-pool.max_batch=@{f}"]),
        ("grid yaml", f"vary:\n  deployments.h100-pool.max_batch: [8, {SECRET}]\n", ["sweep", "scenarios/dedicated_h100_spillover.yaml", "--grid", "{f}"]),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "",
)
def test_a_file_the_user_points_at_never_leaks_its_text(
    tmp_path: Path, name: str, text: str, argv: list[str]
) -> None:
    """A secrets file pointed at by mistake (its first line a key): refused (exit 2) naming
    the file and what was expected, never printing text capsim did not recognise."""
    suffix = ".json" if text.startswith("{") else (".yaml" if "yaml" in name else ".csv")
    path = tmp_path / f"side{suffix}"
    if name == "model config":
        path = tmp_path / "config.json"
    path.write_text(text, encoding="utf-8")
    result = capsim_here(*[a.replace("{f}", str(path)) for a in argv])
    assert_kept(result)
    assert result.code == 2, result.stdout[-300:]
    assert SECRET not in result.stderr + result.stdout, result.stderr


@pytest.mark.parametrize(
    "rows",
    ["5,100,20\n", "5,100,0\n5,0,0\n5,3,1\n", "0,1,1\n"],
    ids=["one request", "all at one instant, zero tokens", "one at time zero"],
)
@pytest.mark.parametrize("loop", [False, True])
def test_a_trace_of_one_instant_is_a_few_requests_not_infinite_work(
    tmp_path: Path, rows: str, loop: bool
) -> None:
    """A span of zero seconds must not be divided by: the size guard counts the requests the
    replay sends (once, or once a pass when looped), and the run serves them."""
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,input_tokens,output_tokens\n" + rows, encoding="utf-8")
    data = {
        "name": "one-instant",
        "horizon": "1h",
        "models": {"m": {"price": {"input": 1, "output": 1}}},
        "workloads": [
            {
                "name": "w",
                "model": "m",
                "arrivals": {"process": "trace", "path": str(trace), "format": "csv", "loop": loop},
                "route": ["s"],
            }
        ],
        "deployments": [{"name": "s", "kind": "serverless"}],
    }
    path = _write(tmp_path, data)
    checked = capsim_here("validate", str(path))
    assert checked.code == 0, checked.stderr
    assert "inf" not in checked.stdout
    result = capsim_here("run", str(path), "--format", "json")
    assert_kept(result)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["requests"] == rows.count("\n")
    fitted = capsim_here("fit", str(trace), "--format", "csv", "--name", "w", "--model", "m")
    assert_kept(fitted)
    assert fitted.code == 2 and "too little to fit" in fitted.stderr


def test_a_route_of_many_rate_limited_deployments_fits_the_records(tmp_path: Path) -> None:
    """A request refused by 129 rate-limited deployments before the 130th takes it: the
    spill count outgrew an 8-bit counter (OverflowError). Counters now hold any route the
    format accepts, and the format refuses more deployments than a record can index."""
    n = 130
    base = {
        "name": "many",
        "horizon": "10m",
        "models": {"m": {"price": {"input": 1, "output": 1}}},
        "workloads": [
            {
                "name": "w",
                "model": "m",
                "arrivals": {"process": "poisson", "rate": "20/s"},
                "input_tokens": {"dist": "fixed", "value": 100},
                "output_tokens": {"dist": "fixed", "value": 10},
                "route": [f"s{i}" for i in range(n)],
            }
        ],
        "deployments": [
            {"name": f"s{i}", "kind": "serverless", "rate_limit": {"requests_per_min": 1}}
            for i in range(n)
        ],
    }
    result = capsim_here("run", str(_write(tmp_path, base)), "--format", "json")
    assert_kept(result)
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["totals"]["rejected"] > 0
    assert report["deployments"][-1]["requests"] > 0  # the last entry of the route served
    too_many = dict(
        base, deployments=[{"name": f"s{i}", "kind": "serverless"} for i in range(10_001)]
    )
    too_many["workloads"] = [dict(base["workloads"][0], route=["s0"])]
    refused = capsim_here("validate", str(_write(tmp_path, too_many, "big.yaml")))
    assert_kept(refused)
    assert refused.code == 2 and "deployments" in refused.stderr


@pytest.mark.parametrize(
    ("grid", "says"),
    [
        ({"vary": {"workloads.support.arrivals.rate": ["1/s", SECRET, "2/s"]}}, "vary.workloads.support.arrivals.rate[1]"),
        ({"vary": {"workloads.support.arrivals.rate": ["1/s"]}, "seeds": [True]}, "seeds"),
        ({"vary": {"workloads.support.arrivals.rate": ["1/s"]}, "seeds": [1, False]}, "seeds"),
        ({"vary": {"deployments.primary.rate_limit.requests_per_min": [60, -3]}}, "vary.deployments.primary.rate_limit.requests_per_min[1]"),
    ],
    ids=["a value the scenario refuses", "seed true", "seed false", "a negative rate limit"],
)
def test_a_grid_is_checked_whole_before_the_first_run(
    tmp_path: Path, grid: dict[str, Any], says: str
) -> None:
    """Every grid value is validated up front: a bad one refuses the grid (exit 2, the grid
    entry and the field named, the value's text not shown) instead of failed rows (exit 1);
    booleans are not seeds."""
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid), encoding="utf-8")
    result = capsim_here("sweep", "scenarios/traffic_steady.yaml", "--grid", str(path))
    assert_kept(result)
    assert result.code == 2, result.stdout[-300:]
    assert says in result.stderr and SECRET not in result.stderr, result.stderr


# --- faults around a run ---------------------------------------------------------------


def _limited(max_bytes: int) -> Any:
    def apply() -> None:  # in the child: writes past max_bytes fail with EFBIG
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_full_disk_ends_in_one_line_and_leaves_the_earlier_output_whole(
    tmp_path: Path,
) -> None:
    """Writes failing with EFBIG (RLIMIT_FSIZE, as a full disk fails them with ENOSPC): one
    line, a non-zero exit, no half-written or temporary file, the earlier run's outputs
    byte for byte as they were (not a mix of two runs)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    command = [sys.executable, "-m", "simulator", "run", "scenarios/traffic_steady.yaml"]
    first = subprocess.run(
        [*command, "--out", str(out), "-q"], capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 0, first.stderr
    before = _files(out)
    second = subprocess.run(
        [*command, "--seed", "7", "--out", str(out), "-q"],
        capture_output=True, text=True, timeout=600, preexec_fn=_limited(40_000),
    )  # fmt: skip
    assert second.returncode in (1, 2), second.stderr
    assert "Traceback" not in second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("capsim: error: --out"), second.stderr
    assert _files(out) == before  # nothing half-written, nothing left behind


def test_staged_outputs_fail_together(tmp_path: Path) -> None:
    """ENOSPC on the third file: the first two are not renamed over the earlier ones."""
    import errno

    from simulator.files import StagedWrites

    for name in ("a", "b", "c"):
        (tmp_path / name).write_text("old")

    def full(_: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError), StagedWrites() as staging:
        staging.text(tmp_path / "a", "new")
        staging.text(tmp_path / "b", "new")
        staging.write(tmp_path / "c", full)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "a": "old", "b": "old", "c": "old",
    }  # fmt: skip


def test_a_read_only_output_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    import os

    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):  # root writes anyway: nothing to check here
            pytest.skip("the folder stays writable for this user (root)")
        result = capsim_here("run", "scenarios/traffic_steady.yaml", "--out", str(out), "-q")
        assert_kept(result)
        assert result.code == 2 and "--out" in result.stderr
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o700)


def _one_run(out: Path) -> int:
    """The seed of the run whose outputs `out` holds, after checking that its report and
    its records are that same run's (the records carry the seed in their metadata)."""
    report = json.loads((out / "report.json").read_text())
    if (out / "records.parquet").exists():
        import pyarrow.parquet as pq

        meta = json.loads(pq.read_schema(out / "records.parquet").metadata[b"capsim"])
    else:
        meta = json.loads((out / "records.metadata.json").read_text())
    assert meta["seed"] == report["seed"] and meta["provenance"] == report["provenance"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries
    return int(report["seed"])


@pytest.mark.parametrize("after_s", [0.3, 1.0, 2.0, 3.5])
def test_a_kill_in_the_middle_leaves_one_whole_run(tmp_path: Path, after_s: float) -> None:
    """SIGKILL at some moment of a run writing over an earlier --out: the folder holds one
    run's report and records, the earlier one's or the new one's, never a mix."""
    import signal as sig
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    command = [sys.executable, "-m", "simulator", "run", "scenarios/traffic_steady.yaml"]
    subprocess.run([*command, "--seed", "1", "--out", str(out), "-q"], check=True, timeout=600)
    child = subprocess.Popen([*command, "--seed", "2", "--out", str(out), "-q"])
    time.sleep(after_s)
    child.send_signal(sig.SIGKILL)
    child.wait(timeout=60)
    leftovers = [p for p in out.iterdir() if p.name.endswith((".tmp", ".staged"))]
    for p in leftovers:  # a killed process cannot clean up: its temporaries are inert
        p.unlink()
    assert _one_run(out) in (1, 2)


def test_two_writers_to_one_folder_leave_one_whole_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "out"
    command = [sys.executable, "-m", "simulator", "run", "scenarios/traffic_steady.yaml"]
    writers = [
        subprocess.Popen([*command, "--seed", str(seed), "--out", str(out), "-q"])
        for seed in (3, 4)
    ]
    assert [w.wait(timeout=600) for w in writers] == [0, 0]
    assert _one_run(out) in (3, 4)


def test_a_dask_worker_killed_in_the_middle_of_a_sweep(tmp_path: Path) -> None:
    """The sweep finishes: the lost runs are retried on the other worker (or reported as
    failed rows), every point has its row, and it never hangs."""
    import os
    import signal as sig
    import threading
    import time

    distributed = pytest.importorskip("distributed")
    from simulator.studies.sweep import grid_points, sweep

    data = set_at(BASE, ("horizon",), "4h")  # the runs outlast the kill
    points = grid_points({"vary": {}, "seeds": list(range(16))})
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
        killed: list[float] = []

        def kill() -> None:
            os.kill(pids[0], sig.SIGKILL)
            killed.append(time.monotonic())

        killer = threading.Timer(1.5, kill)
        killer.start()
        try:
            rows = sweep(data, tmp_path, "<sweep>", points, dask_address=cluster.scheduler_address)
        finally:
            killer.cancel()
        ended = time.monotonic()
    assert killed and killed[0] < ended  # the worker died while the sweep ran
    assert [row["seed"] for row in rows] == list(range(16))
    assert all(row["status"] == "ok" or row["status"].startswith("error:") for row in rows)
    assert sum(row["status"] == "ok" for row in rows) >= 8
