"""Serverless providers: a deployment's own price (a second provider's overflow is billed at
its price), and cached-input prices for prompt prefixes the provider still holds."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import BASE, make_scenario, run_checked


def _workload(rate: str, **extra: object) -> dict:
    return {
        **BASE["workloads"][0],
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "fixed", "value": 4096},
        "output_tokens": {"dist": "fixed", "value": 100},
        "prefix": {"shared_tokens": 3072, "groups": 1},
        **extra,
    }


def test_cached_input_tokens_are_billed_at_the_cached_price() -> None:
    """One shared 3,072-token prefix, a request a second, a 5-minute cache: every request
    after the first reads 3,072 tokens from the cache, billed at 0.1 instead of 1.0."""
    provider = {
        "name": "serverless",
        "kind": "serverless",
        "price": {"input": 1.0, "output": 2.0, "cached_input": 0.1},
        "prefill_tokens_per_s": 10_000,
    }
    result = run_checked(
        make_scenario(horizon="10m", workloads=[_workload("1/s")], deployments=[provider])
    )
    r = result.runs[0].records
    n = len(r)
    cached = np.full(n, 3072)
    cached[0] = 0
    expected = ((4096 - cached) * 1.0 + cached * 0.1 + 100 * 2.0) / 1e6
    assert r.cost == pytest.approx(expected, rel=1e-12)
    deployment = result.report["deployments"][0]
    assert deployment["cached_input_tokens"] == 3072 * (n - 1)
    assert deployment["prompt_cache_hit_rate"] == pytest.approx(3072 * (n - 1) / (4096 * n))
    # the cached prefix is not prefilled again: TTFT is 0.4 s + the rest of the prompt
    ttft = r.first_token - r.arrival
    assert ttft[1:] == pytest.approx(0.4 + 1024 / 10_000)
    assert ttft[0] == pytest.approx(0.4 + 4096 / 10_000)


def test_a_prefix_unused_past_the_ttl_is_gone() -> None:
    provider = {
        "name": "serverless",
        "kind": "serverless",
        "price": {"input": 1.0, "output": 2.0, "cached_input": 0.1},
        "prompt_cache_ttl": "5m",
    }
    result = run_checked(
        make_scenario(horizon="2d", workloads=[_workload("1/h")], deployments=[provider])
    )
    r = result.runs[0].records
    gaps = np.diff(r.arrival)
    hits = result.report["deployments"][0]["cached_input_tokens"] // 3072
    assert hits == int(np.sum(gaps <= 300))  # a hit exactly when the last use is recent


def test_overflow_to_a_second_provider_is_billed_at_its_price() -> None:
    """The model's price is 0.9 / 3.3; the second provider charges 2.0 / 4.0."""
    primary = {"name": "primary", "kind": "serverless", "rate_limit": {"requests_per_min": 30}}
    second = {"name": "second", "kind": "serverless", "price": {"input": 2.0, "output": 4.0}}
    workload = {**BASE["workloads"][0], "arrivals": {"process": "poisson", "rate": "2/s"}}
    workload["route"] = ["primary", "second"]
    result = run_checked(
        make_scenario(horizon="10m", workloads=[workload], deployments=[primary, second])
    )
    r = result.runs[0].records
    on_second = r.deployment == 1
    on_primary = r.deployment == 0
    assert on_second.sum() > 100 and on_primary.sum() > 100
    n_in, n_out = r.input_tokens, r.output_tokens
    assert r.cost[on_second] == pytest.approx((n_in * 2.0 + n_out * 4.0)[on_second] / 1e6)
    assert r.cost[on_primary] == pytest.approx((n_in * 0.9 + n_out * 3.3)[on_primary] / 1e6)


def test_the_catalog_s_cached_input_price_reaches_the_model() -> None:
    from simulator import load_scenario
    from simulator.catalog import bundled_catalog

    entry = next(e for e in bundled_catalog().entries.values() if e.cached_input_usd_per_1m)
    scenario = load_scenario(
        {**BASE, "models": {"m": {"id": entry.id}}, "workloads": [{**BASE["workloads"][0]}]}
    )
    assert scenario.models["m"].serverless_price.cached_input == entry.cached_input_usd_per_1m
