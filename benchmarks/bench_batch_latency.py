"""`capsim`'s batch latency against published vLLM `bench latency` tables on AMD MI300X.

    python benchmarks/bench_batch_latency.py

Each row of `benchmarks/amd_latency_points.csv` is a published offline latency measurement
(vLLM's `benchmark_latency.py`: `batch` prompts submitted at once, every answer exactly
`output_tokens` long, the seconds until the batch is done) on 8 x AMD Instinct MI300X in
FP8. None was used to choose a default: the roofline's efficiencies were fitted on
TensorRT-LLM throughput on NVIDIA GPUs only (benchmarks/README.md). capsim runs the same
experiment through its engine (`simulator.studies.probe.batch_latency`): the batch's prompts
prefilled in one step, then decoded together.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from simulator.studies.probe import batch_latency

POINTS = Path(__file__).resolve().parent / "amd_latency_points.csv"


def main() -> None:
    rows = list(csv.DictReader(POINTS.open()))
    print(f"{'model':<15} {'vLLM':<16} {'batch':>5} {'in/out':>9} {'measured':>9} "
          f"{'capsim':>8} {'error':>7}")  # fmt: skip
    errors: dict[str, list[float]] = {}
    for row in rows:
        seconds = batch_latency(
            row["model"],
            row["gpu"],
            int(row["gpus"]),
            row["precision"],
            int(row["batch"]),
            int(row["input_tokens"]),
            int(row["output_tokens"]),
        )
        measured = float(row["latency_s"])
        error = seconds / measured - 1
        engine = row["engine"].removeprefix("vLLM ")
        errors.setdefault(f"{row['model']} ({engine})", []).append(error)
        print(
            f"{row['model']:<15} {engine:<16} {row['batch']:>5} "
            f"{row['input_tokens'] + '/' + row['output_tokens']:>9} {measured:>8.2f}s "
            f"{seconds:>7.2f}s {error:>+7.1%}"
        )
    print()
    for group, values in errors.items():
        print(
            f"{group}: {len(values)} points, median |error| "
            f"{statistics.median(abs(e) for e in values):.1%}, mean {statistics.mean(values):+.1%}"
        )


if __name__ == "__main__":
    main()
