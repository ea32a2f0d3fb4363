"""A year-ahead forecast's wall time, on one process and on several.

    python benchmarks/bench_forecast.py [--workers 1,2] [--growth-sd 0.03] [--repeat 2]

`capsim plan scenarios/forecast_assistant_70b.yaml --months 12 --growth 8%` (a 70B
assistant on H100 with a commitment and a second provider), timed in this process for each
`--workers` value, best of `--repeat`. A forecast sizes each month in turn (each size's
replications on the workers), then runs every month of every strategy at once on them.
The forecasts must be the same whatever the workers (the script exits 1 if not).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from simulator import load_scenario
from simulator.studies.forecast import forecast

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "forecast_assistant_70b.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--growth-sd", type=float, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    scenario = load_scenario(SCENARIO)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    answers = {}
    for workers in (int(w) for w in args.workers.split(",")):
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            answer = forecast(scenario, 12, 0.08, args.growth_sd, workers=workers)["forecast"]
            times.append(time.perf_counter() - start)
        answers[workers] = json.dumps(answer, sort_keys=True)
        shown = ", ".join(f"{t:.1f}" for t in times)
        print(f"workers {workers}: {min(times):.1f} s (best of {shown}), {answer['runs']} runs")
    if len(set(answers.values())) > 1:
        sys.exit("the forecasts differ with the number of workers")
    print("same forecast with every number of workers")


if __name__ == "__main__":
    main()
