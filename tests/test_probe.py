"""`capsim probe` against the published throughput it was calibrated to, and its output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from simulator.serving.hardware import gpu_names
from simulator.studies.probe import probe
from tests.test_cli import capsim

ALL_POINTS = list(
    csv.DictReader(
        (Path(__file__).resolve().parent.parent / "benchmarks" / "calibration_points.csv").open()
    )
)


def _one_per_configuration(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The 1000/1000 point of each model x GPU x TP x precision (else its first): every
    configuration checked, the full table left to benchmarks/calibrate_roofline.py."""
    chosen: dict[tuple[str, ...], dict[str, str]] = {}
    for row in rows:
        key = (row["model"], row["gpu"], row["gpus"], row["precision"])
        if key not in chosen or f"{row['input_tokens']}/{row['output_tokens']}" == "1000/1000":
            chosen[key] = row
    return list(chosen.values())


POINTS = _one_per_configuration(ALL_POINTS)
# the worst errors of these points today (benchmarks/README.md has the whole table: median
# 11% on the fit rows, 25% held out): a change that makes any configuration worse fails.
# The worst two: Qwen3-30B-A3B on GB200 (+77%; the published GB200 row is 32% below the
# same chip's B200 row) and Llama 4 Maverick on 8 x H100 (+100%; published 3.3x below
# 8 x H200, whose memory and bandwidth are 1.8x and 1.4x the H100's)
TOLERANCE = {"fit": 0.8, "held-out": 1.05}
# the default (measured kernels where they cover the shape; benchmarks/README.md, "Measured
# kernels"): today's worst dense configuration is 8.6% off (405B on 8 x H200), the worst MoE
# ones the same two rows as above (+94% and +100%)
DEFAULT_TOLERANCE = {"dense": 0.15, "MoE": 1.05}


def _family(model: str) -> str:
    return "MoE" if model.startswith(("qwen3-235b", "qwen3-30b", "llama-4")) else "dense"


@pytest.mark.parametrize("performance", ["roofline", "default"])
@pytest.mark.parametrize(
    "row",
    POINTS,
    ids=[
        f"{p['split']}-{p['model']}-{p['gpu']}-tp{p['gpus']}-{p['input_tokens']}x"
        f"{p['output_tokens']}"
        for p in POINTS
    ],
)
def test_probe_is_near_published_throughput(row: dict[str, str], performance: str) -> None:
    """`capsim probe` as trtllm-bench ran it (max batch 2048, the KV cache binding first)
    against TensorRT-LLM's published offline throughput, with the roofline and with the
    default a deployment gets."""
    result = probe(
        row["model"],
        row["gpu"],
        int(row["gpus"]),
        row["precision"],
        int(row["input_tokens"]),
        int(row["output_tokens"]),
        max_batch=2048,
        performance={"model": "roofline"} if performance == "roofline" else None,
    )
    measured = float(row["output_tokens_per_s"])
    error = abs(result.output_tokens_per_s / measured - 1)
    if performance == "roofline":
        assert result.performance_model == "roofline"
        assert error <= TOLERANCE[row["split"]]
    else:
        assert error <= DEFAULT_TOLERANCE[_family(row["model"])]


def test_probe_reports_latency_and_capacity() -> None:
    light = probe("llama-3.1-70b", "H100-SXM", 2, "fp8", 1000, 200, concurrency=1)
    heavy = probe("llama-3.1-70b", "H100-SXM", 2, "fp8", 1000, 200, concurrency=64)
    # one request alone: TPOT is a weight read, ~70.6 GB over 2 x 3.35 TB/s x mbu
    assert 0.015 < light.tpot_s < 0.025
    assert light.max_batch_reached == 1 and heavy.max_batch_reached == 64
    assert heavy.output_tokens_per_s > 10 * light.output_tokens_per_s
    assert heavy.tpot_s > light.tpot_s and heavy.ttft_s > light.ttft_s
    # KV capacity: 0.9 x (2 x 80 GB - 70.55 GB of FP8 weights - 2 x (1 GB + 8,192 tokens x
    # 8,192 hidden x 16 bytes / 2) of activations) / 160 KiB per token (FP8 KV)
    reserve = 2 * (1e9 + 8192 * 8192 * 16 / 2)
    expected = 0.9 * (160e9 - 70.55e9 - reserve) / 163840
    assert light.kv_capacity_tokens == pytest.approx(expected, abs=2)


def test_probe_command() -> None:
    out = capsim(
        "probe",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "H100-SXM",
        "--input-tokens",
        "500",
        "--output-tokens",
        "200",
        "--concurrency",
        "8",
        "--format",
        "json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {
        "output_tokens_per_s",
        "ttft_s",
        "tpot_s",
        "kv_capacity_tokens",
        "max_batch_reached",
    } <= set(result)
    bad = capsim(
        "probe",
        "--model",
        "gpt-9",
        "--gpu",
        "H100-SXM",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
    )
    assert bad.returncode == 2 and "unknown architecture 'gpt-9'" in bad.stderr
    too_big = capsim(
        "probe",
        "--model",
        "llama-3.1-405b",
        "--gpu",
        "L4",
        "--input-tokens",
        "1",
        "--output-tokens",
        "1",
    )
    assert too_big.returncode == 2 and "needs 406 GB" in too_big.stderr


NIM_POINTS = list(
    csv.DictReader(
        (
            Path(__file__).resolve().parent.parent / "benchmarks" / "nim_concurrency_points.csv"
        ).open()
    )
)


@pytest.mark.parametrize("row", NIM_POINTS, ids=[f"c{p['concurrency']}" for p in NIM_POINTS])
def test_probe_matches_fixed_concurrency_measurements(row: dict[str, str]) -> None:
    """NVIDIA NIM's fixed-concurrency latency table (held out: the roofline was never fitted
    to it). Clients that started together were prefilled together every cycle: TTFT came
    out 3-13x the measured one at concurrency 5-50, TPOT 40% short. Desynchronized, the
    steady state matches TPOT and throughput within 15% (TPOT 14% slow at concurrency 1, 4%
    at 50); TTFT stays short of the measured one (engine scheduling the roofline does not
    model), 0.86x at concurrency 1 down to 0.49x at 50. From 100 clients on, the KV cache
    holds fewer requests than there are clients (87 of 5,500 tokens): the rest queue, and
    TTFT (8-89 s), TPOT and throughput all land within 5% of the measured ones, a check of
    the memory model's KV capacity."""
    result = probe(
        row["model"],
        row["gpu"],
        int(row["gpus"]),
        row["precision"],
        int(row["input_tokens"]),
        int(row["output_tokens"]),
        concurrency=int(row["concurrency"]),
    )
    assert result.output_tokens_per_s == pytest.approx(float(row["output_tokens_per_s"]), rel=0.15)
    assert result.tpot_s == pytest.approx(float(row["itl_ms"]) / 1000, rel=0.15)
    assert 0.4 <= result.ttft_s / (float(row["ttft_ms"]) / 1000) <= 1.1


@pytest.mark.parametrize("gpu", gpu_names())
def test_probe_works_on_every_catalog_gpu_for_one_token_answers(gpu: str) -> None:
    """A probe prices nothing: GPUs with no bundled price work; a one-token answer has no
    TPOT; the default precision is one the GPU has."""
    from simulator.serving.hardware import find_gpu

    result = probe("llama-3.1-8b", gpu, input_tokens=500, output_tokens=1, concurrency=4)
    assert result.tpot_s is None and result.ttft_s > 0
    assert result.requests_per_s == pytest.approx(result.output_tokens_per_s)
    out = capsim(
        "probe", "--model", "llama-3.1-8b", "--gpu", gpu, "--input-tokens", "500",
        "--output-tokens", "1", "--format", "json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tpot_s"] is None
    found = find_gpu(gpu)
    assert found is not None


def test_probe_at_a_poisson_rate_and_with_chunked_prefill() -> None:
    light = probe("llama-3.1-8b", "H100-SXM", input_tokens=1000, output_tokens=200, rate=2.0)
    heavy = probe("llama-3.1-8b", "H100-SXM", input_tokens=1000, output_tokens=200, rate=30.0)
    assert light.concurrency is None and light.rate == 2.0
    # open loop: what is served is what arrives
    assert light.requests_per_s == pytest.approx(2.0, rel=0.15)
    assert heavy.requests_per_s == pytest.approx(30.0, rel=0.1)
    assert heavy.tpot_s > light.tpot_s
    chunked = probe(
        "llama-3.1-8b", "H100-SXM", input_tokens=1000, output_tokens=200, rate=30.0,
        chunked_prefill=True,
    )  # fmt: skip
    assert chunked.requests_per_s == pytest.approx(30.0, rel=0.1)
    both = capsim(
        "probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "10",
        "--output-tokens", "10", "--rate", "5", "--concurrency", "3",
    )  # fmt: skip
    assert both.returncode == 2 and "--rate and --concurrency" in both.stderr


def test_probe_with_optimistic_admission_runs_bigger_batches_where_the_kv_cache_binds() -> None:
    """Llama-2-7B in BF16 on one H100 (~110,000 tokens of KV), 1,000 in / 1,000 out: reserving
    2,000 tokens a request caps the batch at 55; admitting on the prompt (vLLM) fills it to
    what requests hold on average, the prompt and half the answer, and serves more."""
    runs = {
        mode: probe(
            "llama-2-7b", "H100-SXM", 1, "bf16", 1000, 1000, max_batch=512, kv_admission=mode
        )
        for mode in ("reserve", "optimistic")
    }
    reserve, optimistic = runs["reserve"], runs["optimistic"]
    assert reserve.max_batch_reached == reserve.concurrency
    assert reserve.concurrency == reserve.kv_capacity_tokens // 2000
    assert optimistic.max_batch_reached > 1.2 * reserve.max_batch_reached
    assert optimistic.requests_per_s > reserve.requests_per_s


@pytest.mark.parametrize("batch, n_in, n_out", [(1, 100, 20), (3, 100, 20), (16, 700, 5)])
def test_batch_latency_is_one_prefill_then_the_batch_decoding_step_by_step(
    batch: int, n_in: int, n_out: int
) -> None:
    """vLLM's `bench latency` experiment through the engine equals its steps added up by
    hand: one step prefilling every prompt (and giving each its first token), then n_out - 1
    decode steps of the whole batch, the k-th at batch x (prompt + k) tokens of context."""
    from simulator.serving.step import fused_step
    from simulator.studies.probe import (
        _replica,
        _step_model,
        batch_latency,
        replica_performance,
    )

    performance = replica_performance("llama-3.1-8b", "H100-SXM", 1, "fp8")
    replica = _replica("H100-SXM", 1, batch, performance, False, None, "reserve", "fused")
    model = _step_model("llama-3.1-8b", replica, n_in + n_out)  # the replica probe measures
    expected = fused_step(model)(batch * n_in, float(batch * n_in * n_in), 0, 0.0)
    for k in range(1, n_out):
        context = batch * (n_in + k)
        expected += max(a + b * context for a, b in model.decode_lines(batch))
    seconds = batch_latency("llama-3.1-8b", "H100-SXM", 1, "fp8", batch, n_in, n_out)
    assert seconds == pytest.approx(expected, rel=1e-9)


def test_batch_latency_runs_in_waves_of_max_batch_and_takes_the_replicas_options() -> None:
    """A batch larger than `max_batch` runs in waves: the second starts where the first
    ends, the same steps again (exactly twice one wave). The replica's options reach the
    experiment: speculative decoding shortens it; options that do not go together are
    refused in one line (exit 2), not as a validation dump."""
    from simulator.studies.probe import batch_latency

    args = ("llama-3.1-8b", "H100-SXM", 1, "fp8")
    one_wave = batch_latency(*args, 4, 300, 50)
    assert batch_latency(*args, 8, 300, 50, max_batch=4) == pytest.approx(2 * one_wave, rel=1e-9)
    drafted = batch_latency(
        *args, 4, 300, 50, speculative={"draft_tokens": 3, "acceptance_rate": 0.8}
    )
    assert drafted < 0.7 * one_wave
    both = capsim(
        "probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "300",
        "--output-tokens", "50", "--batch", "4", "--chunked-prefill", "--draft-tokens", "2",
    )  # fmt: skip
    assert both.returncode == 2
    assert "not modeled together with chunked_prefill" in both.stderr
    assert "pydantic" not in both.stderr and "validation error" not in both.stderr


AMD_POINTS = list(
    csv.DictReader(
        (Path(__file__).resolve().parent.parent / "benchmarks" / "amd_latency_points.csv").open()
    )
)


@pytest.mark.parametrize(
    "row",
    AMD_POINTS,
    ids=[f"{p['model']}-{p['engine'].split()[-1]}-b{p['batch']}" for p in AMD_POINTS],
)
def test_batch_latency_against_published_mi300x_measurements(row: dict[str, str]) -> None:
    """Held out (the roofline was fitted on NVIDIA GPUs and TensorRT-LLM only): vLLM's
    offline batch latency on 8 x MI300X in FP8. AMD's 2025 releases (Llama 3.1 70B,
    128/2048, batch 1-4) within 12%; Oracle's 2024 build (405B, 128/128) slower than the
    roofline by 22% at batch 1 growing to 55% at batch 256 (the older stack's GEMMs and
    collectives; benchmarks/README.md). Bounds at today's errors: worse fails."""
    from simulator.studies.probe import batch_latency

    seconds = batch_latency(
        row["model"], row["gpu"], int(row["gpus"]), row["precision"], int(row["batch"]),
        int(row["input_tokens"]), int(row["output_tokens"]),
    )  # fmt: skip
    error = seconds / float(row["latency_s"]) - 1
    if row["engine"] == "vLLM 2024 ROCm build":
        assert -0.56 <= error < 0
    else:
        assert abs(error) <= 0.12


def test_probe_batch_command() -> None:
    """`capsim probe --batch`: the batch's latency as `batch_latency` gives it; refused
    beside --rate or --concurrency, and for a request the KV cache cannot hold (exit 2)."""
    from simulator.studies.probe import batch_latency

    args = ("probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "100",
            "--output-tokens", "20", "--batch", "3")  # fmt: skip
    out = capsim(*args, "--format", "json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    seconds = batch_latency("llama-3.1-8b", "H100-SXM", 1, "fp8", 3, 100, 20)
    assert shown["latency_s"] == pytest.approx(seconds, rel=1e-12)
    assert shown["output_tokens_per_s"] == pytest.approx(60 / seconds)
    table = capsim(*args)
    assert table.returncode == 0 and "latency (the batch done)" in table.stdout
    both = capsim(*args, "--rate", "2")
    assert both.returncode == 2 and "--batch" in both.stderr
    too_long = capsim(*args[:-4], "--output-tokens", "9000000", "--batch", "2")
    assert too_long.returncode == 2 and "does not fit the KV cache" in too_long.stderr
