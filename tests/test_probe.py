"""`capsim probe` against the published throughput it was calibrated to, and its output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from simulator.probe import probe
from tests.test_cli import capsim

POINTS = list(
    csv.DictReader(
        (Path(__file__).resolve().parent.parent / "benchmarks" / "calibration_points.csv").open()
    )
)


@pytest.mark.parametrize(
    "row",
    POINTS,
    ids=[
        f"{p['model']}-{p['gpu']}-tp{p['gpus']}-{p['input_tokens']}x{p['output_tokens']}"
        for p in POINTS
    ],
)
def test_probe_is_within_25_percent_of_published_throughput(row: dict[str, str]) -> None:
    result = probe(
        row["model"],
        row["gpu"],
        int(row["gpus"]),
        row["precision"],
        int(row["input_tokens"]),
        int(row["output_tokens"]),
    )
    measured = float(row["output_tokens_per_s"])
    assert abs(result.output_tokens_per_s / measured - 1) <= 0.25


def test_probe_reports_latency_and_capacity() -> None:
    light = probe("llama-3.1-70b", "H100-SXM", 2, "fp8", 1000, 200, concurrency=1)
    heavy = probe("llama-3.1-70b", "H100-SXM", 2, "fp8", 1000, 200, concurrency=64)
    # one request alone: TPOT is a weight read, ~70.6 GB over 2 x 3.35 TB/s x mbu
    assert 0.015 < light.tpot_s < 0.025
    assert light.max_batch_reached == 1 and heavy.max_batch_reached == 64
    assert heavy.output_tokens_per_s > 10 * light.output_tokens_per_s
    assert heavy.tpot_s > light.tpot_s and heavy.ttft_s > light.ttft_s
    # KV capacity: (2 x 80 GB x 0.9 - 70.55 GB of FP8 weights) / 160 KiB per token (FP8 KV)
    assert light.kv_capacity_tokens == pytest.approx((144e9 - 70.55e9) / 163840, abs=1)


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
