"""Performance models: the closed-form decode sums, the roofline's regimes, table fits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import ScenarioError
from simulator.scenario.deployments import DedicatedSpec, RooflineSpec
from simulator.serving.hardware import find_architecture
from simulator.serving.performance import DEFAULT_MFU, build_step_model
from simulator.serving.performance_table import fit_table
from simulator.serving.step import (
    FixedModel,
    LinearModel,
    decode_time,
    envelope,
    first_boundary,
    fused_time,
    next_boundary,
    steps_within,
)


def _roofline(
    model: str = "llama-3.1-70b", gpu: str = "H100-SXM", tp: int = 2, **perf: object
) -> object:
    spec = DedicatedSpec.model_validate(
        {
            "name": "p",
            "kind": "dedicated",
            "model": "m",
            "gpu": gpu,
            "gpus_per_replica": tp,
            "performance": {"model": "roofline", **perf},
        }
    )
    return build_step_model(spec, find_architecture(model))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 600),
    st.integers(0, 500_000),
    st.integers(0, 3000),
    st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "deepseek-v3"]),
)
def test_closed_form_decode_time_equals_the_step_sum(
    batch: int, context: int, steps: int, name: str
) -> None:
    model = _roofline(name, "H200", 8) if name == "deepseek-v3" else _roofline(name)
    lines = model.decode_lines(batch)  # type: ignore[attr-defined]
    iterated = sum(max(a + b * (context + j * batch) for a, b in lines) for j in range(steps))
    assert decode_time(model, batch, context, steps) == pytest.approx(iterated, rel=1e-9, abs=1e-12)
    if steps:
        elapsed = decode_time(model, batch, context, steps // 2) + 1e-9
        assert steps_within(model, batch, context, steps, elapsed) == steps // 2


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 512),
    st.integers(0, 400_000),
    st.integers(1, 2000),
    st.floats(0.0, 1.2),
    st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b"]),
)
def test_the_next_step_boundary_is_the_first_step_end_at_or_after_a_time(
    batch: int, context: int, limit: int, fraction: float, name: str
) -> None:
    """next_boundary (any envelope) and first_boundary (one line) against the step sums."""
    model = _roofline(name)
    elapsed = fraction * decode_time(model, batch, context, limit)  # type: ignore[arg-type]
    steps, at = next_boundary(model, batch, context, limit, elapsed)  # type: ignore[arg-type]
    times = [decode_time(model, batch, context, m) for m in range(limit + 1)]  # type: ignore[arg-type]
    expected = next((m for m, t in enumerate(times) if t >= elapsed), limit)
    assert (steps, at) == (expected, times[expected])
    cuts, pieces = envelope(model.decode_lines(batch))  # type: ignore[attr-defined]
    if not cuts:
        a, b = pieces[0]
        one_line = first_boundary(a + b * context, b * batch, limit, elapsed)
        assert one_line[0] == steps and one_line[1] == pytest.approx(at, rel=1e-12)


def test_decode_is_memory_bound_small_and_compute_bound_large() -> None:
    """Operator by operator: the GEMMs read the weights at one sequence and are bound by
    their FLOPs at 2,048; attention reads the KV cache in both (its line's slope); the
    overheads add a step, a launch per layer and a share per sequence."""
    model = _roofline("llama-3.1-8b", "H100-SXM", 1)
    spec = RooflineSpec(model="roofline")
    ((a1, b1),) = model.decode_lines(1)  # type: ignore[attr-defined]
    ((a2, b2),) = model.decode_lines(2048)  # type: ignore[attr-defined]
    bandwidth = 3.35e12 * spec.mbu
    flops = 1979e12 * DEFAULT_MFU["fp8"]
    fixed = spec.step_overhead + 32 * spec.layer_overhead
    # one sequence: a step reads the FP8 weights, 8.03 GB
    assert a1 == pytest.approx(8.03e9 / bandwidth + fixed + spec.sequence_overhead, rel=1e-3)
    # 2,048 sequences: 2 x 8.03 G x 2,048 FLOPs, well above the weights' read time
    compute = 2 * 8.03e9 * 2048 / flops
    assert compute > 8.03e9 / bandwidth
    assert a2 == pytest.approx(compute + fixed + 2048 * spec.sequence_overhead, rel=1e-3)
    # attention reads each context token's KV (FP8: 64 KiB for Llama-3.1-8B) in both
    assert b1 == b2 == pytest.approx(65536 / bandwidth, rel=1e-9)


def test_a_fused_step_reads_the_weights_once_for_prompts_and_batch() -> None:
    """In-flight batching: a step prefilling 500 prompt tokens beside 8 decoding sequences
    (context 4,000 tokens) is one pass over the weights. Memory bound, it costs the prefill
    plus the batch's attention and per-sequence overhead, not a second weight read and a
    second step overhead; with no batch it is the prefill."""
    model = _roofline("llama-3.1-70b", "H100-SXM", 2)
    spec = RooflineSpec(model="roofline")
    prefill = model.prefill_time(500, 500.0 * 500)
    assert fused_time(model, 500, 500.0**2, 0, 0) == prefill
    ((a, b),) = model.decode_lines(8)  # type: ignore[attr-defined]
    fused = fused_time(model, 500, 500.0**2, 8, 4000)
    separate = prefill + a + b * 4000
    # 508 tokens x 2 x 70.6 G params over 2 H100s: compute bound; the fused step adds the
    # 8 tokens' FLOPs and communication, the KV reads and sequence overheads, no fixed cost
    shared = spec.step_overhead + 80 * spec.layer_overhead
    assert fused < separate - shared
    assert fused > prefill + b * 4000 + 8 * spec.sequence_overhead
    # other models: a prefill and a decode step, one after the other
    fixed = FixedModel(10_000.0, 0.02, math.inf)
    assert fused_time(fixed, 500, 0.0, 8, 4000) == pytest.approx(0.05 + 0.02)


def test_moe_experts_are_read_at_full_bandwidth_and_computed_at_moe_efficiency() -> None:
    """The routed experts' inefficiency (grouped GEMMs, imbalance) slows their FLOPs only:
    one token of Qwen3-30B-A3B reads its 8 experts' weights at the GPU's bandwidth."""
    slow = _roofline("qwen3-30b-a3b", "H100-SXM", 1, moe_efficiency=0.25)
    fast = _roofline("qwen3-30b-a3b", "H100-SXM", 1, moe_efficiency=1.0)
    assert slow.weight_bytes_read(1) == fast.weight_bytes_read(1)  # type: ignore[attr-defined]
    assert slow.decode_lines(1) == fast.decode_lines(1)  # type: ignore[attr-defined]
    # at 4,096 tokens the experts are compute bound: 4 x slower at a quarter the efficiency
    big_slow = slow.prefill_time(4096, 4096.0**2)  # type: ignore[attr-defined]
    big_fast = fast.prefill_time(4096, 4096.0**2)  # type: ignore[attr-defined]
    assert big_slow > 2 * big_fast


def test_memory_keeps_weights_and_activations_then_the_kv_cache() -> None:
    """KV capacity = memory_fraction x (memory - weights - activation reserve): a model
    whose weights nearly fill the GPU keeps GBs of KV cache (10% of the whole memory set
    aside left ~1 GB, and batches of a few requests)."""
    from simulator.serving.performance import activation_reserve_bytes

    arch = find_architecture("llama-3.1-70b")
    assert arch is not None
    model = _roofline("llama-3.1-70b", "H100-SXM", 1)
    weights = arch.total_params_b * 1e9
    reserve = activation_reserve_bytes(arch, 1)
    assert reserve == pytest.approx(1e9 + 8192 * 8192 * 16)
    kv = arch.kv_bytes_per_token_bf16 / 2
    expected = 0.9 * (80e9 - weights - reserve) / kv
    assert model.kv_capacity_tokens == math.floor(expected)  # type: ignore[attr-defined]
    assert model.kv_capacity_tokens * kv > 5e9  # type: ignore[attr-defined]
    set_aside = _roofline("llama-3.1-70b", "H100-SXM", 1, activation_reserve_gb=4.0)
    assert set_aside.kv_capacity_tokens == math.floor(0.9 * (80e9 - weights - 4e9) / kv)  # type: ignore[attr-defined]


def test_a_pcie_gpu_pays_more_for_tensor_parallelism_than_an_nvlink_one() -> None:
    """Two all-reduces a layer: ring, 2 (tp - 1) / tp of the activations over the link at
    `link_efficiency` of its bandwidth, plus a latency each, 25 us through PCIe against 10 us
    over NVLink. At a batch of 256 the 8B model split over 4 L40S spends most of its step
    communicating; over 4 H100, a fifth."""
    spec = RooflineSpec(model="roofline")
    shares = {}
    for gpu, link, latency in (("H100-SXM", 450e9, 10e-6), ("L40S", 32e9, 25e-6)):
        model = _roofline("llama-3.1-8b", gpu, 4)
        ring = 2 * 3 / 4 * 256 * 4096 * 2 / (link * spec.link_efficiency)
        expected = 2 * 32 * (latency + ring)
        assert model._communication(256) == pytest.approx(expected, rel=1e-9)  # type: ignore[attr-defined]
        shares[gpu] = expected / model.decode_lines(256)[0][0]  # type: ignore[attr-defined]
    assert shares["L40S"] > 0.5 > 0.25 > shares["H100-SXM"]


def test_fixed_model_is_constant() -> None:
    model = FixedModel(1000.0, 0.05)
    assert model.prefill_time(500, 0) == 0.5
    assert decode_time(model, 7, 12345, 10) == pytest.approx(0.5)


def test_table_fits_step_times_from_a_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["phase,batch_size,context_tokens,tokens,seconds"]
    for _ in range(50):
        b, c = int(rng.integers(1, 200)), int(rng.integers(100, 200_000))
        rows.append(f"decode,{b},{c},{b},{0.012 + 2e-5 * b + 3e-8 * c}")
        t = int(rng.integers(100, 8000))
        rows.append(f"prefill,1,0,{t},{0.004 + 6e-5 * t}")
    path = tmp_path / "steps.csv"
    path.write_text("\n".join(rows) + "\n")
    model = fit_table(path, 100_000)
    assert isinstance(model, LinearModel)
    assert model.decode_base == pytest.approx(0.012, rel=1e-6)
    assert model.decode_per_sequence == pytest.approx(2e-5, rel=1e-6)
    assert model.decode_per_context_token == pytest.approx(3e-8, rel=1e-6)
    assert model.prefill_time(1000, 0) == pytest.approx(0.004 + 0.06, rel=1e-6)
    assert model.kv_capacity_tokens == 100_000


def _vllm_result(concurrency: int, tpot_ms: float, ttft_ms: float) -> dict:
    completed, mean_in, mean_out = 500, 1000, 200
    output_throughput = concurrency / (tpot_ms / 1000)
    return {
        "date": "20261101-120000",
        "backend": "vllm",
        "max_concurrency": concurrency,
        "completed": completed,
        "total_input_tokens": completed * mean_in,
        "total_output_tokens": completed * mean_out,
        "mean_ttft_ms": ttft_ms,
        "mean_tpot_ms": tpot_ms,
        "output_throughput": output_throughput,
        "request_throughput": output_throughput / mean_out,
        "p99_tpot_ms": tpot_ms * 1.2,
    }


def test_table_fits_vllm_bench_serve_results(tmp_path: Path) -> None:
    # TPOT grows linearly with the batch: 10 ms + 0.1 ms a sequence
    results = [_vllm_result(c, 10 + 0.1 * c, 80 + c) for c in (1, 8, 32, 64)]
    path = tmp_path / "vllm.json"
    path.write_text(json.dumps(results))
    model = fit_table(path, None)
    context = 1000 + 200 / 2
    for c in (1, 8, 32, 64):
        step = max(a + b * c * context for a, b in model.decode_lines(c))
        assert step == pytest.approx((10 + 0.1 * c) / 1000, rel=1e-6)
    assert model.prefill_time(1000, 0) == pytest.approx(0.081, rel=1e-6)  # lightest load


def test_a_scenario_with_a_vllm_table_runs(tmp_path: Path) -> None:
    from tests.helpers import BASE, make_scenario, run_checked

    (tmp_path / "vllm.json").write_text(json.dumps(_vllm_result(16, 20, 100)))
    pool = {
        "name": "pool",
        "kind": "dedicated",
        "model": "m",
        "gpu": "H100-SXM",
        "performance": {
            "model": "table",
            "path": str(tmp_path / "vllm.json"),
            "kv_capacity_tokens": 400_000,
        },
    }
    models = {"m": {"price": {"input": 1, "output": 1}, "architecture": {"like": "llama-3.1-8b"}}}
    workload = {**BASE["workloads"][0], "route": ["pool"]}
    result = run_checked(
        make_scenario(models=models, deployments=[pool], workloads=[workload], horizon="10m")
    )
    tpot = result.report["workloads"][0]["latency"]["tpot_s"]["p50"]
    assert 0.01 < tpot < 0.03


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"completed": 5}', "missing key"),
        ("[1, 2]", "expected a vLLM result"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_tables_are_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=expected):
        fit_table(path, None)


@pytest.mark.parametrize("kind", ["fixed", "table", "roofline"])
def test_measured_performance_needs_no_architecture(tmp_path: Path, kind: str) -> None:
    """A fine-tune with its own numbers: prices and a context length are enough (KV capacity
    then unbounded unless `kv_capacity_tokens` says); only the roofline needs a shape."""
    from simulator import load_scenario
    from simulator.errors import ScenarioError
    from tests.helpers import BASE, run_checked, scenario_dict

    (tmp_path / "vllm.json").write_text(json.dumps(_vllm_result(16, 20, 100)))
    performance = {
        "fixed": {"model": "fixed", "prefill_tokens_per_s": 20_000, "tpot": "20ms"},
        "table": {"model": "table", "path": str(tmp_path / "vllm.json")},
        "roofline": {"model": "roofline", "precision": "fp8"},
    }[kind]
    pool = {
        "name": "pool",
        "kind": "dedicated",
        "model": "my-finetune",
        "gpu": "H100-SXM",
        "price_per_gpu_hour": 2.5,
        "performance": performance,
    }
    models = {"my-finetune": {"price": {"input": 1, "output": 1}, "context_length": 32_000}}
    workload = {**BASE["workloads"][0], "model": "my-finetune", "route": ["pool"]}
    data = scenario_dict(models=models, deployments=[pool], workloads=[workload], horizon="10m")
    if kind == "roofline":
        with pytest.raises(ScenarioError, match=r"models\.my-finetune\.architecture"):
            load_scenario(data)
        return
    report = run_checked(load_scenario(data)).report
    deployment = report["deployments"][0]
    assert deployment["requests"] == report["totals"]["requests"] > 0
    assert deployment["kv_capacity_tokens"] is None or not math.isfinite(
        deployment["kv_capacity_tokens"]
    )
    with_kv = {**performance, "kv_capacity_tokens": 40_000}
    data["deployments"][0]["performance"] = with_kv
    bounded = run_checked(load_scenario(data)).report["deployments"][0]
    assert bounded["kv_capacity_tokens"] == 40_000
    assert bounded["peak_batch"] <= 40_000 // 4_000


def test_table_reads_vllm_append_result_lines(tmp_path: Path) -> None:
    """`vllm bench serve --append-result` writes one JSON object a line (a sweep of
    concurrencies in one file): read as the list of those results."""
    results = [_vllm_result(c, 10 + 0.1 * c, 80 + c) for c in (1, 8, 32, 64)]
    lines = tmp_path / "appended.json"
    lines.write_text("".join(json.dumps(r) + "\n" for r in results))
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps(results))
    assert fit_table(lines, None) == fit_table(listed, None)
    lines.write_text(json.dumps(results[0]) + "\n{broken\n")
    with pytest.raises(ScenarioError, match="line 2"):
        fit_table(lines, None)


def test_table_reads_a_guidellm_report(tmp_path: Path) -> None:
    """GuideLLM's benchmarks.json (a sweep): each benchmark is one point, read from its
    successful requests' means; the fit is the one the same figures give as vLLM results.
    A report missing a metric is refused naming the benchmark and the key."""
    fixture = Path(__file__).with_name("fixtures") / "guidellm_benchmarks.json"
    model = fit_table(fixture, None)
    context = 1000 + 200 / 2
    for c in (1, 8, 32, 64):
        step = max(a + b * c * context for a, b in model.decode_lines(c))
        assert step == pytest.approx((10 + 0.1 * c) / 1000, rel=1e-6)
    assert model.prefill_time(1000, 0) == pytest.approx(0.081, rel=1e-6)
    broken = json.loads(fixture.read_text())
    del broken["benchmarks"][2]["metrics"]["time_per_output_token_ms"]
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ScenarioError, match=r"benchmarks\[2\]\.metrics\.time_per_output_token_ms"):
        fit_table(path, None)
    path.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(ScenarioError, match="benchmarks"):
        fit_table(path, None)


def test_table_fits_prefill_from_save_detailed_per_request_ttfts(tmp_path: Path) -> None:
    """`vllm bench serve --save-detailed` keeps each request's input length and TTFT (in
    seconds): the prefill line is fitted to them (here TTFT = 20 ms + 50 us a token, exact),
    not to one mean point; failed requests (TTFT 0) are left out."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(100, 4000, 200)
    result = _vllm_result(1, 10.1, 81)
    result["input_lens"] = [int(n) for n in lengths] + [1000]
    result["ttfts"] = [0.02 + 5e-5 * float(n) for n in lengths] + [0.0]  # the last one failed
    result["output_lens"] = [200] * 201
    path = tmp_path / "detailed.json"
    path.write_text(json.dumps([result, _vllm_result(32, 13.2, 112)]))
    model = fit_table(path, None)
    assert model.prefill_time(1000, 0) == pytest.approx(0.02 + 0.05, rel=1e-6)
    assert model.prefill_time(3000, 0) == pytest.approx(0.02 + 0.15, rel=1e-6)
    result["ttfts"] = result["ttfts"][:-2]  # arrays of unequal length: the mean point
    path.write_text(json.dumps([result]))
    assert fit_table(path, None).prefill_time(1000, 0) == pytest.approx(0.081, rel=1e-6)
