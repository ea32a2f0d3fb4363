"""The scale targets: mixed scenarios against a bare SimPy M/M/1 loop, a month of 10M requests.

    python benchmarks/bench_scale.py [--only mm1,day,month,linearity] [--repeat 3]
                                     [--engine auto|python|compiled]

Each case runs in a fresh process (peak RSS is that process's own, interpreter and imports
included) and the script exits 1 when a target is missed:

- `mm1`: a bare SimPy M/M/1 queue (utilization 0.8) over 1M customers: a source process
  with one timeout per arrival, a process per customer that requests a `simpy.Resource`,
  holds it for its service time and releases it. Interarrival and service times are drawn
  up front in numpy, so the figure is SimPy's own cost.
- `day`: one day of a mixed scenario with ~1M requests: a diurnal chat workload
  (Llama-3.1-70B, FP8) on a dedicated pool of 3 x (2 x H100) with serverless spillover,
  and a nightly batch job of 300,000 requests through the batch API.
  Target: at most half of `mm1` (the ratio is printed). Both run `--repeat` times,
  alternated, and the best time of each is compared.
- `month`: 30 days of the same shape at 10M requests (weekday/weekend seasonality, a pool
  of 2 replicas, a batch job each night). Target: at most 3x `mm1` (measured in the same
  invocation; `mm1` runs whenever `month` does), peak RSS at most 1,000 MB.
- `linearity`: the `month` scenario at 2.5M, 5M and 10M requests, peak RSS of each, and
  the extra MB per extra 1M requests between consecutive sizes; target: the step from 5M to
  10M costs no more per request than the step from 2.5M to 5M (x 1.1), i.e. linear or
  better.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

DAY = 86400.0
MM1_CUSTOMERS = 1_000_000
DAY_RATIO_TARGET = 0.5  # day / mm1
MONTH_RATIO_TARGET = 3.0  # month / mm1
MONTH_RSS_TARGET_MB = 1000.0

POOL_MODEL = {"id": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"}


def mixed(days: int, chat_requests: int, batch_requests: int, replicas: int) -> dict[str, object]:
    """Chat on a dedicated pool spilling to serverless, plus one batch job a night."""
    chat_arrivals: dict[str, object] = {
        "process": "diurnal",
        "rate": chat_requests / (days * DAY),
        "peak_to_mean": 2,
        "peak_at": "14:00",
    }
    if days >= 7:
        chat_arrivals["weekly"] = [1.1, 1.1, 1.1, 1.1, 1.1, 0.75, 0.75]
    return {
        "name": f"bench-mixed-{days}d",
        "seed": 7,
        "horizon": f"{days}d",
        "models": {"llama70b": POOL_MODEL},
        "workloads": [
            {
                "name": "chat",
                "model": "llama70b",
                "arrivals": chat_arrivals,
                "input_tokens": {"dist": "lognormal", "mean": 1500, "cv": 0.8, "max": 32000},
                "output_tokens": {"dist": "lognormal", "mean": 300, "cv": 0.7, "max": 2048},
                "slo": {"ttft_p95": "2s", "e2e_p99": "60s"},
                "route": ["pool", "serverless"],
            },
            {
                "name": "nightly-evals",
                "model": "llama70b",
                "arrivals": {
                    "process": "batch_jobs",
                    "every": "24h",
                    "requests": batch_requests // days,
                    "start": "1h",
                },
                "input_tokens": {"dist": "lognormal", "mean": 2000, "cv": 0.5, "max": 32000},
                "output_tokens": {"dist": "lognormal", "mean": 200, "cv": 0.5, "max": 2048},
                "slo": {"completion": "24h"},
                "route": ["batch"],
            },
        ],
        "deployments": [
            {
                "name": "pool",
                "kind": "dedicated",
                "model": "llama70b",
                "gpu": "H100-SXM",
                "gpus_per_replica": 2,
                "replicas": replicas,
                "max_batch": 64,
                "max_queue": 8,
            },
            {"name": "serverless", "kind": "serverless"},
            {"name": "batch", "kind": "batch", "discount": 0.5},
        ],
    }


def day_scenario() -> dict[str, object]:
    return mixed(days=1, chat_requests=700_000, batch_requests=300_000, replicas=3)


def month_scenario(requests: int = 10_000_000) -> dict[str, object]:
    return mixed(
        days=30,
        chat_requests=int(requests * 0.7),
        batch_requests=int(requests * 0.3),
        replicas=2,
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mm1(customers: int) -> dict[str, float]:
    import numpy as np
    import simpy

    rng = np.random.default_rng(1)
    arrival_rate, service_rate = 0.8, 1.0
    gaps = rng.exponential(1 / arrival_rate, customers).tolist()
    services = rng.exponential(1 / service_rate, customers).tolist()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    waits: list[float] = []

    def customer(service: float):  # type: ignore[no-untyped-def]
        arrived = env.now
        with server.request() as request:
            yield request
            waits.append(env.now - arrived)
            yield env.timeout(service)

    def source():  # type: ignore[no-untyped-def]
        for gap, service in zip(gaps, services, strict=True):
            yield env.timeout(gap)
            env.process(customer(service))

    start = time.perf_counter()
    env.process(source())
    env.run()
    elapsed = time.perf_counter() - start
    mean_wait = sum(waits) / len(waits)
    # M/M/1: Wq = rho / (mu - lambda) = 4 s; a sanity check that the loop is the real thing
    return {"requests": len(waits), "seconds": elapsed, "mean_wait_s": mean_wait}


def run_scenario(data: dict[str, object]) -> dict[str, float]:
    from simulator import load_scenario, run

    spec = load_scenario(data)
    start = time.perf_counter()
    result = run(spec)
    elapsed = time.perf_counter() - start
    totals = result.report["totals"]
    by_name = {d["name"]: d for d in result.report["deployments"]}
    return {
        "requests": totals["requests"],
        "seconds": elapsed,
        "on_pool": by_name["pool"]["requests"],
        "spilled": by_name["pool"]["spilled"],
        "on_serverless": by_name["serverless"]["requests"],
        "on_batch": by_name["batch"]["requests"],
    }


def child(case: str, requests: int) -> dict[str, float]:
    if case == "mm1":
        out = run_mm1(requests)
    elif case == "day":
        out = run_scenario(day_scenario())
    else:
        out = run_scenario(month_scenario(requests))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


ENGINE = "auto"  # CAPSIM_ENGINE for the scenario cases (--engine)


def fresh(case: str, requests: int = 0) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", case, "--requests", str(requests)],
        capture_output=True,
        text=True,
        env={**os.environ, "CAPSIM_ENGINE": ENGINE},
    )
    if done.returncode != 0:
        sys.exit(f"{case} failed:\n{done.stderr}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def times(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['seconds']:.1f}" for r in runs)


def describe(r: dict[str, float]) -> str:
    return (
        f"{r['requests']:,.0f} requests ({r['on_pool']:,.0f} on the pool, "
        f"{r['spilled']:,.0f} spilled to serverless, {r['on_batch']:,.0f} batch) in "
        f"{r['seconds']:.1f} s ({r['requests'] / r['seconds']:,.0f} requests/s), "
        f"peak RSS {r['peak_rss_mb']:,.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="mm1,day,month,linearity")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of mm1 and day, best kept (default 3)"
    )
    parser.add_argument(
        "--engine",
        choices=["auto", "python", "compiled"],
        default="auto",
        help="CAPSIM_ENGINE for day and month: python measures the reference engine",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.requests)))
        return
    global ENGINE
    ENGINE = args.engine
    cases = set(args.only.split(","))
    missed: list[str] = []
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
        f", engine {args.engine}"
    )
    if "day" in cases or "month" in cases:
        cases.add("mm1")
    runs: dict[str, list[dict[str, float]]] = {"mm1": [], "day": []}
    for _ in range(args.repeat):  # alternated, so a busy moment of the machine hits both
        for case in ("mm1", "day"):
            if case in cases:
                runs[case].append(fresh(case, MM1_CUSTOMERS if case == "mm1" else 0))
    best = {case: min(r, key=lambda x: x["seconds"]) for case, r in runs.items() if r}
    if "mm1" in best:
        mm1 = best["mm1"]
        print(
            f"mm1:   bare SimPy M/M/1, {mm1['requests']:,.0f} customers in "
            f"{mm1['seconds']:.1f} s, best of {args.repeat} "
            f"({times(runs['mm1'])}; mean wait "
            f"{mm1['mean_wait_s']:.2f} s, theory 4.00 s), peak RSS {mm1['peak_rss_mb']:,.0f} MB"
        )
    if "day" in best:
        day = best["day"]
        ratio = day["seconds"] / mm1["seconds"]
        print(f"day:   {describe(day)}, best of {args.repeat} ({times(runs['day'])})")
        print(f"       day / mm1 = {ratio:.2f} (target <= {DAY_RATIO_TARGET})")
        if ratio > DAY_RATIO_TARGET:
            missed.append(f"day: {ratio:.2f} x the bare M/M/1 loop")
    if "month" in cases:
        month = fresh("month", 10_000_000)
        ratio = month["seconds"] / best["mm1"]["seconds"]
        print(f"month: {describe(month)}")
        print(f"       month / mm1 = {ratio:.2f} (target <= {MONTH_RATIO_TARGET})")
        if ratio > MONTH_RATIO_TARGET:
            missed.append(f"month: {ratio:.2f} x the bare M/M/1 loop")
        if month["peak_rss_mb"] > MONTH_RSS_TARGET_MB:
            missed.append(f"month: {month['peak_rss_mb']:.0f} MB > {MONTH_RSS_TARGET_MB:.0f} MB")
    if "linearity" in cases:
        sizes = [2_500_000, 5_000_000, 10_000_000]
        rss = [fresh("month", n)["peak_rss_mb"] for n in sizes]
        steps = [(rss[k + 1] - rss[k]) / ((sizes[k + 1] - sizes[k]) / 1e6) for k in range(2)]
        print(
            "linearity: peak RSS "
            + ", ".join(f"{n / 1e6:g}M {m:,.0f} MB" for n, m in zip(sizes, rss, strict=True))
            + f"; MB per extra 1M requests: {steps[0]:.0f} then {steps[1]:.0f}"
        )
        if steps[1] > steps[0] * 1.1:
            missed.append("linearity: memory grows faster than linearly")
    if missed:
        print("targets missed: " + "; ".join(missed))
        sys.exit(1)
    print("all targets met")


if __name__ == "__main__":
    main()
