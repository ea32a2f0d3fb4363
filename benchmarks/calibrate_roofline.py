"""The roofline's default efficiencies against published throughput measurements.

    python benchmarks/calibrate_roofline.py                # the defaults, point by point
    python benchmarks/calibrate_roofline.py --grid         # search mfu, mbu, overhead, batch

Each point of `calibration_points.csv` is an offline maximum-throughput measurement (all
requests queued at once, fixed input / output lengths); `capsim probe` with concurrency
`max` is the same experiment in the simulator. Errors are (model - measured) / measured.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
from pathlib import Path

from simulator.probe import probe

POINTS = Path(__file__).with_name("calibration_points.csv")


def evaluate(
    rows: list[dict[str, str]], performance: dict[str, float], max_batch: int
) -> list[float]:
    errors = []
    for row in rows:
        result = probe(
            row["model"],
            row["gpu"],
            int(row["gpus"]),
            row["precision"],
            int(row["input_tokens"]),
            int(row["output_tokens"]),
            None,
            max_batch,
            performance,
        )
        measured = float(row["output_tokens_per_s"])
        errors.append(result.output_tokens_per_s / measured - 1)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", action="store_true")
    parser.add_argument("--max-batch", type=int, default=256)
    args = parser.parse_args()
    rows = list(csv.DictReader(POINTS.open()))
    if args.grid:
        best = None
        for mfu, mbu, overhead, batch in itertools.product(
            (0.4, 0.45, 0.5, 0.55, 0.6), (0.7, 0.75, 0.8, 0.85), (0.001, 0.002, 0.003), (256, 512)
        ):
            errors = evaluate(rows, {"mfu": mfu, "mbu": mbu, "step_overhead": overhead}, batch)
            worst = max(abs(e) for e in errors)
            rms = math.sqrt(sum(e * e for e in errors) / len(errors))
            print(
                f"mfu {mfu} mbu {mbu} overhead {overhead} max_batch {batch}: "
                f"worst {worst:+.1%} rms {rms:.1%}",
                flush=True,
            )
            if best is None or worst < best[0]:
                best = (worst, rms, mfu, mbu, overhead, batch)
        print("best (smallest worst error):", best)
        return
    errors = evaluate(rows, {}, args.max_batch)
    print("| model | GPU | TP | ISL/OSL | measured out tok/s | capsim probe | error |")
    print("|---|---|---|---|---|---|---|")
    for row, error in zip(rows, errors, strict=True):
        measured = float(row["output_tokens_per_s"])
        print(
            f"| {row['model']} | {row['gpu']} | {row['gpus']} | {row['input_tokens']}/"
            f"{row['output_tokens']} | {measured:,.0f} | {measured * (1 + error):,.0f} | "
            f"{error:+.1%} |"
        )
    worst = max(abs(e) for e in errors)
    rms = math.sqrt(sum(e * e for e in errors) / len(errors))
    print(f"\nworst {worst:.1%}, rms {rms:.1%} over {len(errors)} points")


if __name__ == "__main__":
    main()
