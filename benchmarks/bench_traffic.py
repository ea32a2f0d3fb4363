"""Time generating ~10M arrivals with token lengths for each arrival process.

    python benchmarks/bench_traffic.py [--requests 10000000]

Each process runs in a fresh process (peak RSS is its own). `closed` arrivals are issued by
the engine as requests finish, so it is timed as a whole run (serverless) of ~1M requests.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HORIZON = 86400.0


def _process(name: str, requests: int) -> dict[str, object]:
    rate = requests / HORIZON
    trace = str(ROOT / "scenarios" / "traces" / "AzureLLMInferenceTrace_conv.csv")
    return {
        "poisson": {"process": "poisson", "rate": rate},
        "gamma": {"process": "gamma", "rate": rate, "cv": 4},
        "mmpp": {
            "process": "mmpp",
            "states": [{"rate": 3 * rate, "mean_duration": 300}, {"rate": 0, "mean_duration": 600}],
        },
        "diurnal": {"process": "diurnal", "rate": rate, "peak_to_mean": 3, "peak_at": "14:00"},
        "diurnal_hourly": {
            "process": "diurnal",
            "rate": rate,
            "hourly": [1] * 8 + [3] * 10 + [1.5] * 6,
        },
        "batch_jobs": {"process": "batch_jobs", "every": 3600, "requests": requests // 24},
        # the Azure trace replayed at the speed that gives ~`requests` a day, looped
        "trace": {
            "process": "trace",
            "path": trace,
            "format": "azure",
            "loop": True,
            "time_scale": 19366 / 3501.72 / rate,
        },
    }[name]


def _scenario(arrivals: dict[str, object]) -> dict[str, object]:
    return {
        "name": "bench-traffic",
        "seed": 1,
        "horizon": HORIZON,
        "models": {"m": {"price": {"input": 0.9, "output": 3.3}}},
        "workloads": [
            {
                "name": "w",
                "model": "m",
                "arrivals": arrivals,
                "input_tokens": {"dist": "lognormal", "mean": 3000, "cv": 0.6},
                "output_tokens": {"dist": "lognormal", "mean": 500, "cv": 0.8},
                "route": ["serverless"],
            }
        ],
        "deployments": [{"name": "serverless", "kind": "serverless"}],
    }


def _child(name: str, requests: int) -> dict[str, float]:
    from simulator import load_scenario, run
    from simulator.traffic.draw import workload_traffic

    if name == "closed":
        # 1M requests: 64 clients, each request ~0.4 s + 1 token
        arrivals = {"process": "closed", "concurrency": 64}
        data = _scenario(arrivals)
        data["horizon"] = 1_000_000 / 64 * 0.4
        data["workloads"][0]["output_tokens"] = {"dist": "fixed", "value": 1}  # type: ignore
        scenario = load_scenario(data)
        start = time.perf_counter()
        result = run(scenario, force=True)
        elapsed = time.perf_counter() - start
        generated = result.report["totals"]["requests"]
    else:
        scenario = load_scenario(_scenario(_process(name, requests)))
        start = time.perf_counter()
        traffic = workload_traffic(scenario.workloads[0], HORIZON, 1)
        elapsed = time.perf_counter() - start
        generated = len(traffic.times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"requests": generated, "seconds": elapsed, "peak_rss_mb": peak}


NAMES = ["poisson", "gamma", "mmpp", "diurnal", "diurnal_hourly", "batch_jobs", "trace", "closed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.requests)))
        return
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    print(f"{'process':16}{'requests':>12}{'seconds':>10}{'M arrivals/s':>14}{'peak RSS MB':>13}")
    for name in NAMES:
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--requests", str(args.requests)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        print(
            f"{name:16}{r['requests']:>12,}{r['seconds']:>10.2f}"
            f"{r['requests'] / r['seconds'] / 1e6:>14.2f}{r['peak_rss_mb']:>13.0f}"
        )


if __name__ == "__main__":
    main()
