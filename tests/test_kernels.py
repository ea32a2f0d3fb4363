"""The `kernels` performance model: measured GPU kernels (aiconfigurator-core) tabulated once
per replica shape, composed into steps, and the default where they cover the shape."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from simulator.serving import kernels
from simulator.serving.hardware import find_architecture
from simulator.serving.performance import build_step_model, default_performance
from simulator.serving.step import decode_time, envelope
from tests.helpers import make_scenario, run_checked, scenario_dict
from tests.test_cli import capsim

needs_kernels = pytest.mark.skipif(
    not kernels.available(), reason="aiconfigurator-core has no wheel on this platform"
)
SHAPE = kernels.Shape("llama-3.1-8b", "H100-SXM", 1, "fp8", "fp8", "trtllm", "latest")


def _dedicated(**extra: Any) -> dict[str, Any]:
    return {
        "name": "pool",
        "kind": "dedicated",
        "model": "m",
        "gpu": "H100-SXM",
        "gpus_per_replica": 1,
        "replicas": 1,
        "price_per_gpu_hour": 2.0,
        "max_batch": 64,
        **extra,
    }


def _scenario_data(**deployment: Any) -> dict[str, Any]:
    data = scenario_dict(horizon="10m")
    data["models"]["m"]["architecture"] = {"like": "llama-3.1-8b"}
    data["workloads"][0]["route"] = ["pool"]
    data["workloads"][0]["arrivals"] = {"process": "poisson", "rate": "2/s"}
    data["workloads"][0]["input_tokens"] = {"dist": "lognormal", "mean": 1500, "cv": 0.5}
    data["workloads"][0]["output_tokens"] = {"dist": "lognormal", "mean": 300, "cv": 0.5}
    data["deployments"] = [_dedicated(**deployment)]
    return data


@needs_kernels
def test_the_table_composes_steps_as_the_estimator_does() -> None:
    """A step from the table — non-attention over its tokens, the prompts' attention, the
    batch's attention over its context — against the estimator queried directly at shapes
    off the grids: within 4% for decode steps (the convex hull of the tabulated attention
    sits at most a few percent under it at small contexts), 2% for prefill."""
    import aiconfigurator_core

    spec, _ = kernels.compile_spec(SHAPE)
    estimator = aiconfigurator_core.AicEngine.from_spec(spec, None)
    model = kernels.KernelModel(kernels.kernel_table(SHAPE), 1e9, "trtllm", 1.0)
    rng = random.Random(7)
    decode_errors = []
    for _ in range(60):
        batch, context = rng.randint(1, 1500), rng.randint(32, 60_000)
        ours = max(a + b * batch * context for a, b in model.decode_lines(batch))
        # the estimator's decode context is isl + osl / 2 + 1 for every sequence
        theirs = estimator.mixed_step_latency(0, batch, context - 2, 2) / 1e3
        decode_errors.append(ours / theirs - 1)
    assert max(abs(e) for e in decode_errors) < 0.04, decode_errors
    for length in (37, 700, 3000, 9000, 40_000):
        ours = model.prefill_time(length, float(length) ** 2)
        theirs = estimator.mixed_step_latency(length, 0, length, 2) / 1e3
        assert ours == pytest.approx(theirs, rel=0.02), length
    # a fused step: prompts and decode tokens in one pass of GEMMs
    ours = model.fused_step_time(2000, 2000.0**2, 64, 64 * 1101)
    theirs = estimator.mixed_step_latency(2000, 64, 2000, 200) / 1e3
    assert ours == pytest.approx(theirs, rel=0.04)


@needs_kernels
def test_step_times_never_fall_as_the_batch_or_context_grows() -> None:
    model = kernels.KernelModel(kernels.kernel_table(SHAPE), 1e9, "trtllm", 1.0)
    for batch in (1, 3, 17, 64, 100, 700, 3000):
        lines = model.decode_lines(batch)
        assert all(b >= 0 for _, b in lines)
        cuts, _ = envelope(lines)
        assert list(cuts) == sorted(cuts)
        times = [max(a + b * c for a, b in lines) for c in np.linspace(0, 2e6, 50)]
        assert np.all(np.diff(times) >= -1e-12)
    steps = [decode_time(model, b, 1000.0 * b, 1) for b in range(1, 600, 7)]
    assert np.all(np.diff(steps) >= -1e-12)
    prefills = [model.prefill_time(t, float(t) ** 2) for t in range(1, 200_000, 997)]
    assert np.all(np.diff(prefills) >= 0)


@needs_kernels
def test_tables_are_cached_on_disk_exactly_and_a_broken_file_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPSIM_CACHE_DIR", str(tmp_path))
    kernels.kernel_table.cache_clear()
    built = kernels.kernel_table(SHAPE)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    kernels.kernel_table.cache_clear()
    again = kernels.kernel_table(SHAPE)
    for field in ("non_attention", "prefill_attention", "decode_attention"):
        assert np.array_equal(getattr(built, field), getattr(again, field))
    assert again.engine_version == built.engine_version
    files[0].write_bytes(b"not a table")
    kernels.kernel_table.cache_clear()
    rebuilt = kernels.kernel_table(SHAPE)
    assert np.array_equal(rebuilt.decode_attention, built.decode_attention)
    kernels.kernel_table.cache_clear()


@needs_kernels
def test_a_kernel_model_travels_to_worker_processes() -> None:
    """The estimator does not pickle; the tabulated model does (plan's workers, Dask)."""
    arch = find_architecture("llama-3.1-8b")
    scenario = make_scenario(**{k: v for k, v in _scenario_data().items() if k != "name"})
    model = build_step_model(scenario.deployments[0], arch)  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(model))
    assert copy.decode_lines(50) == model.decode_lines(50)
    assert copy.fused_step_time(900, 900.0**2, 10, 10_000) == model.fused_step_time(
        900, 900.0**2, 10, 10_000
    )


@needs_kernels
def test_the_default_is_measured_kernels_where_they_cover_the_shape() -> None:
    """No `performance`: kernels (TensorRT-LLM, its current version) on an H100; the report
    says what priced each deployment, and two runs are identical."""
    scenario = make_scenario(**{k: v for k, v in _scenario_data().items() if k != "name"})
    result = run_checked(scenario)
    pool = result.report["deployments"][0]
    assert pool["performance_model"] == "kernels"
    assert pool["engine"] == "trtllm"
    assert pool["engine_version"] and pool["engine_version"][0].isdigit()
    assert pool["performance_note"] is None
    assert run_checked(scenario).report == result.report
    serverless = make_scenario()
    assert "performance_model" not in run_checked(serverless).report["deployments"][0]


@pytest.mark.parametrize(
    ("gpu", "tp", "architecture", "reason"),
    [
        ("MI300X", 1, "llama-3.1-8b", "no measured kernels for MI300X"),
        ("H100-SXM", 1, "llama-2-70b", "no measured-kernel model config"),
        ("L40S", 2, "llama-3.1-8b", "L40S over PCIe"),
        ("A100-80GB", 1, "llama-3.1-8b", "A100 has no FP8"),
        ("B200", 1, "llama-4-scout", "closer to the roofline"),
    ],
)
def test_elsewhere_the_roofline_serves_and_the_report_says_why(
    gpu: str, tp: int, architecture: str, reason: str
) -> None:
    if not kernels.available():
        reason = "not installed"
    chosen, note = default_performance(gpu, tp, find_architecture(architecture), "fp8")
    assert chosen["model"] == "roofline"
    assert note is not None and reason in note


def test_without_the_package_the_roofline_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "available", lambda: False)
    data = _scenario_data()
    result = run_checked(make_scenario(**{k: v for k, v in data.items() if k != "name"}))
    pool = result.report["deployments"][0]
    assert pool["performance_model"] == "roofline" and pool["engine"] is None
    assert "not installed" in pool["performance_note"]


@needs_kernels
@pytest.mark.parametrize(
    ("performance", "message"),
    [
        ({"model": "kernels", "engine": "tgi"}, "engine"),
        ({"model": "kernels", "engine_version": "0.0.1"}, "engine_version '0.0.1'"),
        ({"model": "kernels", "engine_version": "../../etc"}, "engine_version"),
        ({"model": "kernels", "precision": "fp4"}, "H100-SXM has no fp4"),
        ({"model": "kernels", "mfu": 0.5}, "mfu"),
    ],
)
def test_bad_kernel_settings_exit_2_naming_the_field(
    tmp_path: Path, performance: dict[str, Any], message: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_scenario_data(performance=performance)))
    out = capsim("validate", str(path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "deployments" in out.stderr and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


@needs_kernels
def test_probe_names_the_engine_and_each_engine_differs() -> None:
    figures = {}
    for engine in ("trtllm", "vllm"):
        out = capsim(
            "probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "1000",
            "--output-tokens", "200", "--concurrency", "8", "--engine", engine,
            "--format", "json",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["performance_model"] == "kernels" and result["engine"] == engine
        figures[engine] = result["tpot_s"]
    assert figures["trtllm"] != figures["vllm"]
    out = capsim(
        "probe", "--model", "llama-3.1-8b", "--gpu", "MI300X", "--input-tokens", "1000",
        "--output-tokens", "200", "--engine", "vllm",
    )  # fmt: skip
    assert out.returncode == 2 and "no measured kernels for MI300X" in out.stderr
    out = capsim(
        "probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "1000",
        "--output-tokens", "200", "--engine", "vllm", "--mfu", "0.5",
    )  # fmt: skip
    assert out.returncode == 2 and "--engine" in out.stderr


@needs_kernels
def test_a_shape_the_database_lacks_kernels_for_falls_back_to_the_roofline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Covered on paper, refused by the estimator (a MoE kernel it never measured): the
    default is the roofline and the report says why; asked for explicitly, it is an error
    naming the deployment, never a traceback."""

    def refuse(*_: Any) -> None:
        raise RuntimeError("perf database error: MoE data missing for MoeKey {..} at /site/x")

    monkeypatch.setenv("CAPSIM_CACHE_DIR", "")
    monkeypatch.setattr(kernels, "tabulate", refuse)
    kernels.kernel_table.cache_clear()
    kernels.table_or_reason.cache_clear()
    try:
        data = _scenario_data()
        result = run_checked(make_scenario(**{k: v for k, v in data.items() if k != "name"}))
        pool = result.report["deployments"][0]
        assert pool["performance_model"] == "roofline"
        assert (
            "lacks data" in pool["performance_note"]
            and "MoE data missing" in pool["performance_note"]
        )
        assert "/site/" not in pool["performance_note"]
        from simulator.errors import ScenarioError

        explicit = _scenario_data(performance={"model": "kernels"})
        with pytest.raises(ScenarioError, match=r"deployments\.pool.*lacks data"):
            make_scenario(**{k: v for k, v in explicit.items() if k != "name"})
    finally:
        kernels.kernel_table.cache_clear()
        kernels.table_or_reason.cache_clear()


@needs_kernels
def test_attention_data_parallel_spreads_the_batch_over_the_ranks() -> None:
    """`dep`: each of the replica's GPUs a rank with its share of the batch: a replica step
    of 8 x b sequences is one rank's step of b, and the non-expert weights on every GPU
    leave less room for the KV cache than tensor parallel does."""
    from simulator.scenario.deployments import KernelsSpec
    from simulator.serving.hardware import find_gpu
    from simulator.serving.performance import kv_capacity

    shape = kernels.Shape(
        "qwen3-30b-a3b", "H200", 8, "fp8", "fp8", "trtllm", "latest", layout="dep"
    )
    table = kernels.kernel_table(shape)
    assert (table.layout, table.ranks) == ("dep", 8)
    model = kernels.KernelModel(table, 1e9, "trtllm", 1.0)
    one_rank = kernels.KernelModel(
        kernels.KernelTable(**{**table.__dict__, "ranks": 1}), 1e9, "trtllm", 1.0
    )
    for b in (1, 16, 200):
        assert model.decode_lines(8 * b)[0][0] == pytest.approx(
            one_rank.decode_lines(b)[0][0], rel=1e-9
        )
        context = 8 * b * 3000.0
        assert model.fused_step_time(0, 0.0, 8 * b, context) == pytest.approx(
            one_rank.fused_step_time(0, 0.0, b, context / 8), rel=1e-9
        )
    # fewer sequences than ranks: the busiest rank runs one
    assert model.decode_lines(3)[0][0] == pytest.approx(one_rank.decode_lines(1)[0][0])
    arch = find_architecture("qwen3-30b-a3b")
    gpu = find_gpu("H200")
    assert arch is not None and gpu is not None
    perf = KernelsSpec(model="kernels")
    spread = kv_capacity(perf, arch, gpu, 8)[0]
    replicated = kv_capacity(perf, arch, gpu, 8, replicated=True)[0]
    assert replicated < spread
