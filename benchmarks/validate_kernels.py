"""The measured-kernel model against the roofline, side by side, on published measurements
neither was fitted to.

    python benchmarks/validate_kernels.py              # summary tables (~3 min on 2 cores)
    python benchmarks/validate_kernels.py --points     # ... and every point

Three sets of published figures (sources in each CSV):

- throughput: `calibration_points.csv`, TensorRT-LLM's performance overview (offline
  maximum throughput, trtllm-bench, fixed lengths; 259 rows). The roofline's efficiencies
  were fitted on its `fit` rows, so for the roofline only the `held-out` rows are out of
  sample; the kernel model was fitted to none of them (its data are kernel timings).
- latency under load: `nim_concurrency_points.csv`, NVIDIA NIM's Llama-3.3-70B table (TTFT,
  ITL and throughput at 1-250 clients; TensorRT-LLM inside NIM).
- batch latency: `amd_latency_points.csv`, vLLM `bench latency` on 8 x MI300X: no kernel
  data for AMD GPUs, so capsim's default there is the roofline, shown for completeness.

Each point runs `capsim probe` (or `batch_latency`) three ways: `roofline`, `kernels`
(TensorRT-LLM's kernels, the database's current version), and `default`, what a scenario
that names no performance model gets (`simulator.serving.performance.default_performance`).
Errors are (model - measured) / measured.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from calibrate_roofline import FAMILIES, MAX_BATCH  # the same rows, grouped the same way

from simulator.studies.probe import batch_latency, probe, replica_performance

HERE = Path(__file__).resolve().parent
MODELS: dict[str, dict[str, Any] | None] = {
    "roofline": {"model": "roofline"},
    "kernels": {"model": "kernels", "engine": "trtllm"},
    "default": None,
}


def _throughput(args: tuple[dict[str, str], str]) -> float | None:
    row, name = args
    try:
        result = probe(
            row["model"], row["gpu"], int(row["gpus"]), row["precision"],
            int(row["input_tokens"]), int(row["output_tokens"]), None, MAX_BATCH,
            MODELS[name], prefill="fused",
        )  # fmt: skip
    except ValueError:  # the kernels do not cover this GPU, model or precision
        return None
    return result.output_tokens_per_s / float(row["output_tokens_per_s"]) - 1


def _latency(args: tuple[dict[str, str], str]) -> tuple[float, float, float] | None:
    row, name = args
    try:
        r = probe(
            row["model"], row["gpu"], int(row["gpus"]), row["precision"],
            int(row["input_tokens"]), int(row["output_tokens"]), int(row["concurrency"]),
            performance=MODELS[name],
        )  # fmt: skip
    except ValueError:
        return None
    assert r.tpot_s is not None
    return (
        r.ttft_s * 1000 / float(row["ttft_ms"]) - 1,
        r.tpot_s * 1000 / float(row["itl_ms"]) - 1,
        r.output_tokens_per_s / float(row["output_tokens_per_s"]) - 1,
    )


def _batch(args: tuple[dict[str, str], str]) -> float | None:
    row, name = args
    try:
        seconds = batch_latency(
            row["model"], row["gpu"], int(row["gpus"]), row["precision"], int(row["batch"]),
            int(row["input_tokens"]), int(row["output_tokens"]), MODELS[name],
        )  # fmt: skip
    except ValueError:
        return None
    return seconds / float(row["latency_s"]) - 1


def _default(row: dict[str, str]) -> str:
    """The model a deployment of this shape gets by default: kernels or roofline."""
    gpus, precision = int(row["gpus"]), row["precision"]
    return str(replica_performance(row["model"], row["gpu"], gpus, precision)["model"])


def _cell(errors: list[float | None]) -> str:
    known = sorted(abs(e) for e in errors if e is not None)
    if not known:
        return "n/a"
    p90 = known[min(len(known) - 1, round(0.9 * (len(known) - 1)))]
    bias = statistics.fmean(e for e in errors if e is not None)
    return f"{statistics.median(known):.1%} / {p90:.1%} ({bias:+.0%})"


def summary(rows: list[dict[str, str]], errors: dict[str, list[float | None]]) -> str:
    """Median / p90 absolute error (mean signed error) by split and family, each model."""
    lines = [
        "| rows | family | value | points | " + " | ".join(MODELS) + " |",
        "|---|---|---|---|" + "---|" * len(MODELS),
    ]
    for split in ("all", "fit", "held-out"):
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            if split != "all" and row.get("split") != split:
                continue
            groups["all", ""].append(i)
            if split == "all":
                for family, key in FAMILIES.items():
                    groups[family, key(row)].append(i)
        order = ["all", *FAMILIES]
        for (family, value), index in sorted(
            groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1])
        ):
            cells = [_cell([errors[m][i] for i in index]) for m in MODELS]
            lines.append(
                f"| {split} | {family} | {value} | {len(index)} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", action="store_true", help="every point's errors")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rows = list(csv.DictReader((HERE / "calibration_points.csv").open()))
    nim = list(csv.DictReader((HERE / "nim_concurrency_points.csv").open()))
    amd = list(csv.DictReader((HERE / "amd_latency_points.csv").open()))
    with ProcessPoolExecutor(args.workers) as pool:
        throughput: dict[str, list[float | None]] = {}
        for m in ("roofline", "kernels"):
            throughput[m] = list(pool.map(_throughput, [(r, m) for r in rows], chunksize=4))
            print(f"{m}: {len(rows)} throughput points done", file=sys.stderr, flush=True)
        latency = {m: list(pool.map(_latency, [(r, m) for r in nim])) for m in MODELS}
        batch = {m: list(pool.map(_batch, [(r, m) for r in amd])) for m in MODELS}
    # the default is one of the two, per point: what a scenario naming no model gets
    chosen = [_default(r) for r in rows]
    throughput["default"] = [throughput[c][i] for i, c in enumerate(chosen)]
    print("## Throughput: TensorRT-LLM performance overview (median / p90 |error|, bias)\n")
    print(summary(rows, throughput))
    print("\n## Latency under load: NVIDIA NIM, Llama-3.3-70B, 2 x H100 FP8, 5000/500\n")
    print("| clients | measured TTFT / ITL / tok/s | " + " | ".join(MODELS) + " |")
    print("|---|---|" + "---|" * len(MODELS))
    for i, row in enumerate(nim):
        cells = []
        for m in MODELS:
            e = latency[m][i]
            cells.append("n/a" if e is None else f"{e[0]:+.0%} / {e[1]:+.0%} / {e[2]:+.0%}")
        measured = f"{row['ttft_ms']} ms / {row['itl_ms']} ms / {row['output_tokens_per_s']}"
        print(f"| {row['concurrency']} | {measured} | " + " | ".join(cells) + " |")
    for k, name in enumerate(("TTFT", "ITL", "throughput")):
        cells = [_cell([None if e is None else e[k] for e in latency[m]]) for m in MODELS]
        print(f"| {name}, all | | " + " | ".join(cells) + " |")
    print("\n## Batch latency: vLLM on 8 x MI300X (no kernel data: the default is the roofline)\n")
    print("| rows | " + " | ".join(MODELS) + " |")
    print("|---|" + "---|" * len(MODELS))
    print(f"| {len(amd)} | " + " | ".join(_cell(batch[m]) for m in MODELS) + " |")
    if args.points:
        print(
            "\n| model | GPU | TP | precision | ISL/OSL | measured | "
            + " | ".join(MODELS)
            + " | default is |"
        )
        print("|---|---|---|---|---|---|" + "---|" * (len(MODELS) + 1))
        for i, r in enumerate(rows):
            cells = [
                "n/a" if throughput[m][i] is None else f"{throughput[m][i]:+.1%}" for m in MODELS
            ]
            measured = float(r["output_tokens_per_s"])
            print(
                f"| {r['model']} | {r['gpu']} | {r['gpus']} | {r['precision']} | "
                f"{r['input_tokens']}/{r['output_tokens']} | {measured:,.0f} | "
                + " | ".join(cells)
                + f" | {chosen[i]} |"
            )


if __name__ == "__main__":
    main()
