"""Prefix caching: the replica's LRU of prompt blocks against the infinite-cache hit rate of
the Mooncake trace, shared prefixes of a synthetic workload, and a cache bounded by KV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.traffic.traces import TRACE_BLOCK_TOKENS
from tests.helpers import BASE, make_scenario, run_checked

MOONCAKE = str(
    Path(__file__).resolve().parent.parent / "scenarios/traces/mooncake_conversation_trace.jsonl"
)
MODELS = {"m": {"price": {"input": 0.5, "output": 0.5}, "architecture": {"like": "llama-3.1-8b"}}}


def _pool(**extra: object) -> dict:
    return {
        "name": "pool",
        "kind": "dedicated",
        "model": "m",
        "gpu": "H100-SXM",
        "price_per_gpu_hour": 2.0,
        "max_batch": 512,
        "prefix_caching": True,
        **extra,
    }


def _infinite_cache_hit_rate(blocks: object, input_tokens: np.ndarray) -> float:
    """Every block ever seen stays cached: a prompt's leading blocks seen before are hits."""
    seen: set[int] = set()
    cached = 0
    for r in range(len(input_tokens)):
        ids = blocks.of(r).tolist()  # type: ignore[attr-defined]
        hits = 0
        for block in ids:
            if block not in seen:
                break
            hits += 1
        cached += min(hits * TRACE_BLOCK_TOKENS, int(input_tokens[r]) - 1)
        seen.update(ids)
    return cached / float(input_tokens.sum())


def test_an_unbounded_cache_at_low_load_gives_the_trace_s_infinite_cache_hit_rate() -> None:
    """One replica with room for everything, requests admitted in arrival order: its hit
    rate is exactly the one computed from the trace's hash_ids with an infinite cache."""
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "trace", "path": MOONCAKE, "format": "mooncake"},
    }
    workload.pop("input_tokens"), workload.pop("output_tokens")
    fast = {"model": "fixed", "prefill_tokens_per_s": 1e9, "tpot": "1ms"}
    scenario = make_scenario(
        horizon="10m", models=MODELS, workloads=[workload], deployments=[_pool(performance=fast)]
    )
    result = run_checked(scenario)
    pool = result.report["deployments"][0]
    from simulator.traffic.draw import scenario_traffic

    traffic = scenario_traffic(scenario)[0]
    expected = _infinite_cache_hit_rate(traffic.blocks, traffic.input_tokens)
    assert 0.1 < expected < 0.99  # conversations re-send their history
    assert pool["prefix_cache_hit_rate"] == pytest.approx(expected, rel=1e-12)


def _synthetic(prefix_caching: bool, **pool: object) -> dict:
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": "4/s"},
        "input_tokens": {"dist": "fixed", "value": 4096},
        "output_tokens": {"dist": "fixed", "value": 100},
        "prefix": {"shared_tokens": 3072, "groups": 4},
    }
    deployment = _pool(prefix_caching=prefix_caching, **pool)
    return make_scenario(
        horizon="5m", models=MODELS, workloads=[workload], deployments=[deployment]
    )


def test_shared_prefixes_are_prefilled_once_and_ttft_drops() -> None:
    """Four system prompts of 3,072 tokens (six 512-token blocks) before 1,024 tokens of
    each request's own: after each group's first request, 3,072 of 4,096 tokens hit."""
    cached = run_checked(_synthetic(True)).report
    plain = run_checked(_synthetic(False)).report
    rate = cached["deployments"][0]["prefix_cache_hit_rate"]
    requests = cached["totals"]["requests"]
    assert rate == pytest.approx(0.75 * (requests - 4) / requests, rel=1e-9)
    assert plain["deployments"][0]["prefix_cache_hit_rate"] is None
    ttft_cached = cached["workloads"][0]["latency"]["ttft_s"]["p50"]
    ttft_plain = plain["workloads"][0]["latency"]["ttft_s"]["p50"]
    assert ttft_cached < 0.5 * ttft_plain


def test_a_cache_bounded_by_the_kv_capacity_evicts_least_recently_used_blocks() -> None:
    """Room for fewer blocks than the groups' shared ones and the requests' own: the LRU
    evicts, and the hit rate falls below the unbounded cache's."""
    fast = {"model": "fixed", "prefill_tokens_per_s": 50_000, "tpot": "5ms"}
    roomy = run_checked(_synthetic(True, performance=fast)).report["deployments"][0]
    tight = {**fast, "kv_capacity_tokens": 5 * 4196}  # five requests' KV, no more
    small = run_checked(_synthetic(True, performance=tight)).report["deployments"][0]
    assert small["prefix_cache_hit_rate"] < roomy["prefix_cache_hit_rate"]
    assert small["prefix_cache_hit_rate"] > 0


def test_cache_aware_routing_keeps_each_group_on_the_replica_that_holds_it() -> None:
    """Sixteen groups over four replicas whose caches hold a few groups each: balancing on
    load alone spreads every group everywhere and evicts; routing to the replica holding the
    prefix keeps the hits."""
    fast = {"model": "fixed", "prefill_tokens_per_s": 50_000, "tpot": "5ms"}
    tight = {**fast, "kv_capacity_tokens": 8 * 4196}

    def hit_rate(routing: bool) -> float:
        scenario = _synthetic(True, performance=tight, replicas=4, prefix_routing=routing)
        data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["workloads"][0]["prefix"]["groups"] = 16
        data["workloads"][0]["arrivals"]["rate"] = "12/s"
        from simulator import load_scenario

        pool = run_checked(load_scenario(data)).report["deployments"][0]
        return float(pool["prefix_cache_hit_rate"])

    routed, balanced = hit_rate(True), hit_rate(False)
    assert routed > balanced + 0.1, (routed, balanced)


def test_prefix_routing_needs_prefix_caching() -> None:
    from simulator.errors import ScenarioError

    with pytest.raises(ScenarioError, match="prefix_routing"):
        _synthetic(False, prefix_routing=True)
