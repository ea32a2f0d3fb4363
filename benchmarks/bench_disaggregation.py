"""Prefill/decode disaggregation against DistServe's published experiment.

    python benchmarks/bench_disaggregation.py

The DistServe authors' blog ("Throughput is Not All You Need", hao-ai-lab.github.io,
2024-03; the OSDI'24 paper's Figure 1 experiment): a 13B model (OPT-13B) on one A100-80GB,
Poisson arrivals of 512-token prompts and 64-token answers, SLOs P90 TTFT <= 0.4 s and P90
TPOT <= 0.04 s. Published, read off their Figure 6:

- colocated (vLLM): TTFT holds up to ~3 requests/s, TPOT up to ~1.6: goodput 1.6 per GPU;
- a prefill-only GPU holds TTFT up to ~5.6 requests/s, a decode-only GPU TPOT up to ~10;
- two prefill GPUs and one decode GPU (2P1D): min(2 x 5.6, 10) / 3 = 3.3 per GPU, 2.1x.

capsim runs the same experiment (never fitted to it): the colocated replica with vLLM V0's
scheduling (`prefill: separate`, prompts in steps of their own), the disaggregated ones
with their KV cache sent at 25 GB/s (their A100s' PCIe); for each configuration, the
highest rate (bisection, 300 s of traffic, seeds 0-2 pooled) at which each P90 holds.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from simulator.scenario.loader import load_scenario
from simulator.studies.run import run

OPT_13B = {
    "params_b": 12.85,
    "layers": 40,
    "hidden": 5120,
    "attn_heads": 40,
    "kv_heads": 40,
    "head_dim": 128,
}
TTFT, TPOT = 0.4, 0.04


def _deployment(prefill: int, decode: int) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "pool",
        "kind": "dedicated",
        "model": "m",
        "gpu": "A100-80GB",
        "price_per_gpu_hour": 2.0,
        "performance": {"model": "roofline", "precision": "bf16"},
    }
    if prefill == 0:
        return {**base, "replicas": decode, "prefill": "separate"}
    return {
        **base,
        "replicas": decode,
        "disaggregation": {"prefill_replicas": prefill, "kv_transfer_gb_per_s": 25},
    }


def p90s(prefill: int, decode: int, rate: float) -> tuple[float, float]:
    """P90 TTFT and P90 TPOT at `rate` requests/s (three seeds pooled)."""
    ttft, tpot = [], []
    for seed in range(3):
        scenario = load_scenario(
            {
                "name": "distserve",
                "seed": seed,
                "horizon": 300,
                "warmup": 30,
                "models": {"m": {"price": {"input": 0, "output": 0}, "architecture": OPT_13B}},
                "workloads": [
                    {
                        "name": "w",
                        "model": "m",
                        "arrivals": {"process": "poisson", "rate": rate},
                        "input_tokens": {"dist": "fixed", "value": 512},
                        "output_tokens": {"dist": "fixed", "value": 64},
                        "route": ["pool"],
                    }
                ],
                "deployments": [_deployment(prefill, decode)],
            }
        )
        r = run(scenario, force=True).runs[0].records
        kept = r.arrival >= 30
        ttft.append((r.first_token - r.arrival)[kept])
        tpot.append(((r.finish - r.first_token) / (r.output_tokens - 1))[kept])
    return float(np.quantile(np.concatenate(ttft), 0.9)), float(
        np.quantile(np.concatenate(tpot), 0.9)
    )


def highest_rate(prefill: int, decode: int, which: str) -> float:
    """The highest rate (to 1%) at which the P90 named by `which` ("ttft", "tpot" or
    "both") holds."""

    def holds(rate: float) -> bool:
        ttft, tpot = p90s(prefill, decode, rate)
        ok = {"ttft": ttft <= TTFT, "tpot": tpot <= TPOT}
        return all(ok.values()) if which == "both" else ok[which]

    low, high = 0.05, 1.0
    while holds(high):
        low, high = high, high * 2
    while high / low > 1.01:
        mid = (low * high) ** 0.5
        low, high = (mid, high) if holds(mid) else (low, mid)
    return low


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    colocated_ttft = highest_rate(0, 1, "ttft")
    colocated_tpot = highest_rate(0, 1, "tpot")
    prefill_only = highest_rate(1, 64, "ttft")  # decode side large enough not to matter
    decode_only = highest_rate(8, 1, "tpot")  # prefill side large enough not to matter
    colocated = min(colocated_ttft, colocated_tpot)
    two_one = highest_rate(2, 1, "both")
    rows = [
        ("colocated, TTFT holds up to", "~3", colocated_ttft),
        ("colocated, TPOT holds up to", "~1.6", colocated_tpot),
        ("colocated goodput per GPU", "1.6", colocated),
        ("prefill-only GPU, TTFT holds up to", "~5.6", prefill_only),
        ("decode-only GPU, TPOT holds up to", "~10", decode_only),
        ("2P1D goodput per GPU", "3.3", two_one / 3),
        ("2P1D / colocated, per GPU", "2.1x", two_one / 3 / colocated),
    ]
    print("| requests/s | DistServe (published) | capsim |")
    print("|---|---|---|")
    for name, published, ours in rows:
        print(f"| {name} | {published} | {ours:.2f} |")


if __name__ == "__main__":
    main()
