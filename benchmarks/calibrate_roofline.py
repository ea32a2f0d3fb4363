"""The roofline's default efficiencies, fitted on part of the published throughput
measurements and checked on the rest.

    python benchmarks/calibrate_roofline.py            # error by family, fit and held out
    python benchmarks/calibrate_roofline.py --points   # ... and every point
    python benchmarks/calibrate_roofline.py --fit      # refit on the `fit` rows (~40 min)

Each row of `calibration_points.csv` is an offline maximum-throughput measurement from
TensorRT-LLM's performance overview (all requests queued at once, fixed input / output
lengths); `capsim probe` with as many clients as the batch or the KV cache holds is the same
experiment in the simulator. Rows marked `fit` (dense Llama 3.1 8B, 3.3 70B and 3.1 405B,
MoE Qwen3-30B-A3B and Qwen3-235B-A22B, on H100, H200, B200, GB200) are the only ones the
efficiencies were chosen on; `held-out` rows (Llama 4 Scout and Maverick, other MoE models,
and every RTX PRO 6000 row, a PCIe GPU) never were. Errors are (model - measured) / measured.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from simulator.studies.probe import probe

POINTS = Path(__file__).with_name("calibration_points.csv")
MAX_BATCH = 2048  # trtllm-bench's default max_batch_size; the KV cache binds first


def _one(args: tuple[dict[str, str], dict[str, Any]]) -> float:
    row, performance = args
    result = probe(
        row["model"],
        row["gpu"],
        int(row["gpus"]),
        row["precision"],
        int(row["input_tokens"]),
        int(row["output_tokens"]),
        None,
        MAX_BATCH,
        {"model": "roofline", **performance},
        prefill="fused",  # TensorRT-LLM's in-flight batching (the default)
    )
    return result.output_tokens_per_s / float(row["output_tokens_per_s"]) - 1


def evaluate(
    rows: list[dict[str, str]], performance: dict[str, Any], pool: ProcessPoolExecutor
) -> list[float]:
    return list(pool.map(_one, [(row, performance) for row in rows], chunksize=4))


def _moe(model: str) -> str:
    return "MoE" if model.startswith(("qwen3-235b", "qwen3-30b", "llama-4")) else "dense"


FAMILIES: dict[str, Callable[[dict[str, str]], str]] = {
    "GPU": lambda r: r["gpu"],
    "precision": lambda r: r["precision"].upper(),
    "dense / MoE": lambda r: _moe(r["model"]),
    "TP": lambda r: f"TP{r['gpus']}",
    "model": lambda r: r["model"],
}


def summary(rows: Iterable[dict[str, str]], errors: Iterable[float]) -> str:
    pairs = list(zip(rows, errors, strict=True))
    lines = ["| split | family | value | points | median abs error | worst | mean (bias) |"]
    lines.append("|---|---|---|---|---|---|---|")
    for split in ("fit", "held-out"):
        chosen = [(r, e) for r, e in pairs if r["split"] == split]
        if not chosen:
            continue
        groups: dict[tuple[str, str], list[float]] = defaultdict(list)
        for row, error in chosen:
            groups["all", ""].append(error)
            for family, key in FAMILIES.items():
                groups[family, key(row)].append(error)
        order = ["all", *FAMILIES]
        for (family, value), errs in sorted(
            groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1])
        ):
            lines.append(
                f"| {split} | {family} | {value} | {len(errs)} | "
                f"{statistics.median(abs(e) for e in errs):.1%} | "
                f"{max(abs(e) for e in errs):.1%} | {statistics.fmean(errs):+.1%} |"
            )
    return "\n".join(lines)


def fit(rows: list[dict[str, str]], pool: ProcessPoolExecutor, passes: int) -> dict[str, Any]:
    """Coordinate descent on the mean absolute log ratio (model / measured) of the `fit`
    rows (the worst error breaks ties), `passes` passes over each knob's grid."""
    # overheads within what engines show at batch 1 (NVIDIA NIM's 70B TP2 table: ~2 ms a
    # step in all): left free, the offline rows push them to 3 ms + 50 us a layer, a stand-in
    # for large-batch costs the roofline lacks, and batch-1 steps come out 30% slow
    grids: dict[str, list[float]] = {
        "moe_efficiency": [0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0],
        "sequence_overhead": [0.0, 5e-6, 10e-6, 20e-6],
        "mfu_fp8": [0.5, 0.6, 0.7, 0.8],
        "mfu_fp4": [0.3, 0.35, 0.45, 0.55],
        "mbu": [0.6, 0.7, 0.8, 0.9],
        "step_overhead": [0.001, 0.0015, 0.002],
        "layer_overhead": [0.0, 15e-6, 30e-6],
        "link_efficiency": [0.35, 0.5, 0.65, 0.8, 0.9],
    }
    # where the earlier passes of the search (2026-11-27) left each knob; one pass from here
    # gives the defaults (RooflineSpec, DEFAULT_MFU)
    chosen = {"mfu_fp8": 0.6, "mfu_fp4": 0.35, "mbu": 0.7, "step_overhead": 0.0015,
              "layer_overhead": 30e-6, "moe_efficiency": 0.2,
              "link_efficiency": 0.8, "sequence_overhead": 5e-6}  # fmt: skip
    cache: dict[tuple[float, ...], tuple[float, float]] = {}

    def score(knobs: dict[str, float]) -> tuple[float, float]:
        key = tuple(knobs[k] for k in sorted(knobs))
        if key not in cache:
            errors = []
            for precision in ("fp8", "fp4"):
                subset = [r for r in rows if r["precision"] == precision]
                performance = {k: v for k, v in knobs.items() if not k.startswith("mfu")}
                performance["mfu"] = knobs[f"mfu_{precision}"]
                errors += evaluate(subset, performance, pool)
            cache[key] = (
                statistics.fmean(abs(math.log1p(e)) for e in errors),
                max(abs(e) for e in errors),
            )
        return cache[key]

    for _ in range(passes):
        for knob, grid in grids.items():
            best = min(grid, key=lambda v: score({**chosen, knob: v}))
            chosen[knob] = best
            mean, worst = score(chosen)
            print(f"{knob} = {best}: mean |log ratio| {mean:.3f}, worst {worst:.1%}", flush=True)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--points", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    rows = list(csv.DictReader(POINTS.open()))
    with ProcessPoolExecutor(args.workers) as pool:
        if args.fit:
            # six of the ten lengths of each configuration, to keep the search to minutes
            lengths = {"128/128", "128/2048", "1000/1000", "2048/128", "5000/500", "20000/2000"}
            subset = [
                r for r in rows
                if r["split"] == "fit" and f"{r['input_tokens']}/{r['output_tokens']}" in lengths
            ]  # fmt: skip
            print("chosen:", fit(subset, pool, args.passes))
            return
        errors = evaluate(rows, {}, pool)
    if args.points:
        print(
            "| split | model | GPU | TP | precision | ISL/OSL | measured out tok/s | capsim "
            "| error |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for row, error in zip(rows, errors, strict=True):
            measured = float(row["output_tokens_per_s"])
            print(
                f"| {row['split']} | {row['model']} | {row['gpu']} | {row['gpus']} | "
                f"{row['precision'].upper()} | {row['input_tokens']}/{row['output_tokens']} | "
                f"{measured:,.0f} | {measured * (1 + error):,.0f} | {error:+.1%} |"
            )
        print()
    print(summary(rows, errors))
    rms = math.sqrt(sum(e * e for e in errors) / len(errors))
    print(f"\n{len(errors)} points, rms {rms:.1%}")


if __name__ == "__main__":
    main()
