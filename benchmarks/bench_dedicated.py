"""Time a one-day, ~1M-request dedicated pool with serverless spillover; requests/s, peak RSS.

    python benchmarks/bench_dedicated.py [--requests 1000000]

Llama-3.1-70B in FP8 on 3 replicas of 2 x H100, diurnal traffic (peak twice the mean), a
batch capped at 64 and a queue of at most 8 before requests spill to serverless. Runs in a
fresh process.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

DAY = 86400.0


def scenario(requests: int) -> dict[str, object]:
    return {
        "name": "bench-dedicated",
        "seed": 1,
        "horizon": DAY,
        "models": {"llama70b": {"id": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"}},
        "workloads": [
            {
                "name": "chat",
                "model": "llama70b",
                "arrivals": {
                    "process": "diurnal",
                    "rate": requests / DAY,
                    "peak_to_mean": 2,
                    "peak_at": "14:00",
                },
                "input_tokens": {"dist": "lognormal", "mean": 1500, "cv": 0.8, "max": 32000},
                "output_tokens": {"dist": "lognormal", "mean": 300, "cv": 0.7, "max": 2048},
                "slo": {"ttft_p95": "2s", "e2e_p99": "60s"},
                "route": ["pool", "serverless"],
            }
        ],
        "deployments": [
            {
                "name": "pool",
                "kind": "dedicated",
                "model": "llama70b",
                "gpu": "H100-SXM",
                "gpus_per_replica": 2,
                "replicas": 3,
                "max_batch": 64,
                "max_queue": 8,
            },
            {"name": "serverless", "kind": "serverless"},
        ],
    }


def child(requests: int) -> dict[str, float]:
    from simulator import load_scenario, run

    spec = load_scenario(scenario(requests))
    start = time.perf_counter()
    result = run(spec)
    elapsed = time.perf_counter() - start
    totals = result.report["totals"]
    pool = result.report["deployments"][0]
    return {
        "requests": totals["requests"],
        "seconds": elapsed,
        "requests_per_s": totals["requests"] / elapsed,
        "on_pool": pool["requests"],
        "spilled": pool["spilled"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.requests)))
        return
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--requests", str(args.requests)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout)
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    print(
        f"{r['requests']:,} requests ({r['on_pool']:,} on the pool, {r['spilled']:,} spilled) "
        f"in {r['seconds']:.1f} s: {r['requests_per_s']:,.0f} requests/s, "
        f"peak RSS {r['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
