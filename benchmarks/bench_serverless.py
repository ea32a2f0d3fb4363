"""Time a serverless-only run of about 1M requests; print requests/s and peak memory.

    python benchmarks/bench_serverless.py [--requests 1000000] [--repeat 3]

Each measurement runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time


def _one(requests: int) -> dict[str, float]:
    from simulator import load_scenario, run

    horizon = 86400.0
    scenario = load_scenario(
        {
            "name": "bench-serverless",
            "seed": 1,
            "horizon": horizon,
            "models": {"m": {"price": {"input": 0.9, "output": 3.3}, "context_length": 131072}},
            "workloads": [
                {
                    "name": "chat",
                    "model": "m",
                    "arrivals": {"process": "poisson", "rate": requests / horizon},
                    "input_tokens": {"dist": "lognormal", "mean": 3000, "cv": 0.6},
                    "output_tokens": {"dist": "lognormal", "mean": 1000, "cv": 0.5},
                    "slo": {"ttft_p95": "2s", "e2e_p99": "60s"},
                    "route": ["serverless"],
                }
            ],
            "deployments": [
                {
                    "name": "serverless",
                    "kind": "serverless",
                    "ttft": 0.4,
                    "prefill_tokens_per_s": 20000,
                    "output_tokens_per_s": 80,
                }
            ],
        }
    )
    start = time.perf_counter()
    result = run(scenario)
    elapsed = time.perf_counter() - start
    simulated = result.report["totals"]["requests"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "requests": simulated,
        "seconds": elapsed,
        "requests_per_s": simulated / elapsed,
        "peak_rss_mb": peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(args.requests)))
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    rows = []
    for _ in range(args.repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--requests", str(args.requests)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout))
        r = rows[-1]
        print(
            f"{r['requests']:,} requests in {r['seconds']:.2f} s: "
            f"{r['requests_per_s']:,.0f} requests/s, peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    best = max(rows, key=lambda r: r["requests_per_s"])
    print(f"best: {best['requests_per_s']:,.0f} requests/s; peak RSS {best['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
