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
    from simulator.serving.catalog import bundled_catalog

    entry = next(e for e in bundled_catalog().entries.values() if e.cached_input_usd_per_1m)
    scenario = load_scenario(
        {**BASE, "models": {"m": {"id": entry.id}}, "workloads": [{**BASE["workloads"][0]}]}
    )
    assert scenario.models["m"].serverless_price.cached_input == entry.cached_input_usd_per_1m


def test_a_deprecated_catalog_id_warns_and_a_misspelt_one_gets_suggestions(
    tmp_path: object,
) -> None:
    """LiteLLM's `deprecation_date`: a scenario priced from a deprecated id warns (on the
    command line as `capsim: warning:`), one that gives its own price does not; a wrong id
    is refused with the closest ids; `capsim prices` shows provider, cached input and the
    deprecation date."""
    import json
    import warnings
    from pathlib import Path

    from simulator.errors import DeprecatedModelWarning, ScenarioError
    from simulator.serving.catalog import parse_litellm
    from tests.adversary import assert_refused, capsim_here

    entry = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
             "litellm_provider": "acme", "cache_read_input_token_cost": 5e-7}  # fmt: skip
    catalog = {
        "acme/old-model": {
            **entry,
            "deprecation_date": "2020-01-01",
            "successor_model": "acme/new-model",
        },
        "acme/new-model": {**entry, "deprecation_date": "2999-01-01"},
    }
    folder = Path(str(tmp_path))
    (folder / "prices.json").write_text(json.dumps(catalog))
    parsed = parse_litellm(catalog, "prices.json")
    old = parsed.lookup("acme/old-model")
    assert old is not None and old.provider == "acme" and old.successor == "acme/new-model"
    assert old.deprecation_notice("2026-11-27", "x") is not None
    assert parsed.lookup("acme/new-model").deprecation_notice("2026-11-27", "x") is None  # type: ignore[union-attr]

    def scenario(model: dict) -> dict:
        return {
            "name": "dep", "horizon": "1m", "catalog": "prices.json",
            "models": {"m": model},
            "workloads": [{**BASE["workloads"][0], "model": "m", "route": ["s"]}],
            "deployments": [{"name": "s", "kind": "serverless"}],
        }  # fmt: skip

    from simulator.scenario.loader import scenario_from_data

    with pytest.warns(DeprecatedModelWarning, match="deprecated since 2020-01-01.*new-model"):
        scenario_from_data(scenario({"id": "acme/old-model"}), "s.yaml", folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecatedModelWarning)
        scenario_from_data(scenario({"id": "acme/new-model"}), "s.yaml", folder)
        scenario_from_data(
            scenario({"id": "acme/old-model", "price": {"input": 1, "output": 1}}), "s.yaml", folder
        )
    with pytest.raises(ScenarioError, match="Did you mean 'acme/new-model'"):
        scenario_from_data(scenario({"id": "acme/new-modle"}), "s.yaml", folder)
    import yaml

    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(scenario({"id": "acme/old-model"})))
    out = capsim_here("validate", str(path))
    assert out.code == 0 and "capsim: warning: model id 'acme/old-model'" in out.stderr
    shown = capsim_here("prices", "--catalog", str(folder / "prices.json"), "--format", "table")
    assert shown.code == 0
    assert "acme" in shown.stdout and "2020-01-01" in shown.stdout and "0.500" in shown.stdout
    assert_refused(
        capsim_here("prices", "new-modle", "--catalog", str(folder / "prices.json")),
        "Did you mean acme/new-model",
    )


LONG = {
    "input": 1.25,
    "output": 10.0,
    "cached_input": 0.125,
    "tiers": [{"above_input_tokens": 200_000, "input": 2.5, "output": 15.0}],
}


def _long_prompts(route: list[str], deployments: list[dict]) -> object:
    return make_scenario(
        horizon="30m",
        models={"m": {"price": LONG, "context_length": 1_000_000}},
        workloads=[
            {
                **BASE["workloads"][0],
                "route": route,
                "arrivals": {"process": "poisson", "rate": "0.5/s"},
                "input_tokens": {"dist": "lognormal", "mean": 180_000, "cv": 0.5, "max": 900_000},
                "output_tokens": {"dist": "fixed", "value": 500},
            }
        ],
        deployments=deployments,
    )


@pytest.mark.parametrize("rate_limited", [False, True])
def test_long_prompts_are_billed_at_the_long_context_tier(rate_limited: bool) -> None:
    """Gemini-style pricing: a prompt over 200,000 tokens has all its tokens billed at the
    tier's prices, its cached-input price staying the base one (none given for the tier);
    the same in bulk (no rate limit) and one by one (a rate limit far above the load)."""
    provider: dict = {"name": "serverless", "kind": "serverless"}
    if rate_limited:
        provider["rate_limit"] = {"requests_per_min": 100_000}
    r = run_checked(_long_prompts(["serverless"], [provider])).runs[0].records
    long = r.input_tokens > 200_000
    assert long.any() and (~long).any()
    expected = np.where(
        long,
        (r.input_tokens * 2.5 + r.output_tokens * 15.0) / 1e6,
        (r.input_tokens * 1.25 + r.output_tokens * 10.0) / 1e6,
    )
    assert r.cost == pytest.approx(expected, rel=1e-12)


def test_batch_discounts_the_long_context_tier_too() -> None:
    r = run_checked(
        _long_prompts(["batch"], [{"name": "batch", "kind": "batch", "discount": 0.5}])
    ).runs[0].records
    long = r.input_tokens > 200_000
    expected = np.where(
        long,
        (r.input_tokens * 2.5 + r.output_tokens * 15.0) / 2e6,
        (r.input_tokens * 1.25 + r.output_tokens * 10.0) / 2e6,
    )
    assert long.any() and r.cost == pytest.approx(expected, rel=1e-12)


def test_the_litellm_map_s_long_context_prices_become_tiers(tmp_path: object) -> None:
    """`input_cost_per_token_above_200k_tokens` and its output and cache-read partners (as
    the LiteLLM map lists Claude's and Gemini's long-context prices) give the model a tier
    at 200,000 prompt tokens."""
    import json
    from pathlib import Path

    from simulator import load_scenario

    catalog = Path(str(tmp_path)) / "prices.json"
    catalog.write_text(
        json.dumps(
            {
                "vertex_ai/gemini-long": {
                    "litellm_provider": "vertex_ai",
                    "mode": "chat",
                    "input_cost_per_token": 1.25e-6,
                    "output_cost_per_token": 1e-5,
                    "cache_read_input_token_cost": 1.25e-7,
                    "input_cost_per_token_above_200k_tokens": 2.5e-6,
                    "output_cost_per_token_above_200k_tokens": 1.5e-5,
                    "cache_read_input_token_cost_above_200k_tokens": 2.5e-7,
                }
            }
        )
    )
    data = {**BASE, "catalog": str(catalog), "models": {"m": {"id": "vertex_ai/gemini-long"}}}
    from simulator.deployments.base import price_tiers, tiered_cost

    price = load_scenario(data).models["m"].serverless_price
    assert (price.input, price.output, price.cached_input) == pytest.approx((1.25, 10.0, 0.125))
    tiers = price_tiers(price)
    assert tiered_cost(tiers, 200_000, 1000) is None  # at the threshold: the base price
    cost = tiered_cost(tiers, 200_001, 1000, cached=100_000)
    assert cost == pytest.approx((200_001 * 2.5 + 1000 * 15.0 + 100_000 * (0.25 - 2.5)) / 1e6)


def test_tiers_must_ascend() -> None:
    from simulator import ScenarioError

    tiers = [
        {"above_input_tokens": 200_000, "input": 2, "output": 3},
        {"above_input_tokens": 128_000, "input": 3, "output": 4},
    ]
    with pytest.raises(ScenarioError, match="tiers"):
        make_scenario(models={"m": {"price": {"input": 1, "output": 2, "tiers": tiers}}})


def test_a_reservation_is_compared_with_serverless_at_its_long_context_tiers() -> None:
    """What plan and the volume chart set a reservation against: each workload's completed
    tokens at its model's serverless price, request by request at the tier its prompt
    reaches (on serverless itself, exactly the bill; summed token totals at the base price
    would miss the tier)."""
    from simulator.studies.plan import _serverless_and_batch

    scenario = _long_prompts(["serverless"], [{"name": "serverless", "kind": "serverless"}])
    report = run_checked(scenario).report
    row = report["workloads"][0]
    assert row["serverless_list_cost_usd"] == pytest.approx(row["cost_usd"], rel=1e-12)
    base = (row["input_tokens"] * 1.25 + row["output_tokens"] * 10.0) / 1e6
    assert row["serverless_list_cost_usd"] > 1.05 * base
    serverless, batch, _ = _serverless_and_batch(scenario, report, ["chat"])
    scale = scenario.month / scenario.horizon
    assert serverless == pytest.approx(row["cost_usd"] * scale, rel=1e-12)
    assert batch == pytest.approx(serverless / 2, rel=1e-12)
