"""Costs: the per-request formula exactly, monthly extrapolation, batch discount, catalog."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from simulator import load_scenario
from simulator.records import Outcome
from tests.helpers import BASE, make_scenario, run_checked, scenario_dict


def test_pricing_guide_request_costs_six_tenths_of_a_cent() -> None:
    result = run_checked(make_scenario())
    r = result.runs[0].records
    assert len(r) > 0
    # 3,000 x $0.90/1M + 1,000 x $3.30/1M = $0.0027 + $0.0033
    assert np.allclose(r.cost, 0.0060, rtol=0, atol=1e-15)


def test_per_request_cost_formula_exactly_for_random_lengths() -> None:
    scenario = make_scenario(
        workloads=[
            {
                **BASE["workloads"][0],
                "input_tokens": {"dist": "lognormal", "mean": 2000, "cv": 1.0},
                "output_tokens": {"dist": "exponential", "mean": 300},
            }
        ]
    )
    r = run_checked(scenario).runs[0].records
    expected = (r.input_tokens * 0.9 + r.output_tokens * 3.3) / 1e6
    assert np.array_equal(r.cost, expected)


def test_monthly_cost_scales_the_horizon_cost_by_month_over_horizon() -> None:
    scenario = make_scenario(horizon="2d", month="31d")
    report = run_checked(scenario).report
    totals = report["totals"]
    assert math.isclose(totals["monthly_cost_usd"], totals["cost_usd"] * 31 / 2, rel_tol=1e-12)
    tokens = totals["input_tokens"] + totals["output_tokens"]
    assert math.isclose(totals["usd_per_1m_tokens"], totals["cost_usd"] / tokens * 1e6)


def test_two_million_requests_a_month_cost_about_twelve_thousand() -> None:
    scenario = make_scenario(
        horizon="7d",
        workloads=[
            {**BASE["workloads"][0], "arrivals": {"process": "poisson", "rate": "2000000/month"}}
        ],
    )
    monthly = run_checked(scenario).report["totals"]["monthly_cost_usd"]
    # requests over 7 days are Poisson: monthly cost = 0.006 x N x 30/7, N ~ Poisson(466,667)
    expected_n = 2e6 * 7 / 30
    tolerance = 5 * math.sqrt(expected_n) * 0.006 * 30 / 7
    assert abs(monthly - 12_000) <= tolerance


def test_batch_costs_half_unless_the_model_sets_batch_prices() -> None:
    batch = {"name": "batch", "kind": "batch"}
    workload = {**BASE["workloads"][0], "route": ["batch"]}
    half = run_checked(make_scenario(deployments=[batch], workloads=[workload]))
    assert np.allclose(half.runs[0].records.cost, 0.0030, atol=1e-15)
    models = {
        "m": {"price": {"input": 0.9, "output": 3.3}, "batch_price": {"input": 0.6, "output": 2.0}}
    }
    own = run_checked(make_scenario(deployments=[batch], workloads=[workload], models=models))
    assert np.allclose(own.runs[0].records.cost, 3000 * 0.6e-6 + 1000 * 2.0e-6, atol=1e-15)
    deeper = {"name": "batch", "kind": "batch", "discount": 0.3}
    seventy = run_checked(make_scenario(deployments=[deeper], workloads=[workload]))
    assert np.allclose(seventy.runs[0].records.cost, 0.0060 * 0.7, atol=1e-15)


def test_price_and_context_come_from_the_bundled_catalog() -> None:
    from simulator.errors import DeprecatedModelWarning

    # the catalog marks this id deprecated (2026-02-25): its price is still read, with a warning
    with pytest.warns(DeprecatedModelWarning, match="deprecated since 2026-02-25"):
        scenario = make_scenario(
            models={"m": {"id": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"}}
        )
    model = scenario.models["m"]
    assert model.price is not None
    assert (model.price.input, model.price.output) == (0.88, 0.88)
    assert model.context_length == 131072


def test_a_litellm_price_map_replaces_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "prices.json").write_text(
        json.dumps(
            {
                "sample_spec": {"input_cost_per_token": 0},
                "acme/model-x": {
                    "input_cost_per_token": 1e-6,
                    "output_cost_per_token": 4e-6,
                    "input_cost_per_token_batches": 4e-7,
                    "output_cost_per_token_batches": 1.5e-6,
                    "max_input_tokens": 8192,
                    "litellm_provider": "acme",
                },
            }
        )
    )
    data = scenario_dict(catalog="prices.json", models={"m": {"id": "acme/model-x"}})
    (tmp_path / "s.json").write_text(json.dumps(data))
    scenario = load_scenario(tmp_path / "s.json")
    model = scenario.models["m"]
    assert model.price is not None and model.batch_price is not None
    assert (model.price.input, model.price.output) == pytest.approx((1.0, 4.0))
    assert (model.batch_price.input, model.batch_price.output) == pytest.approx((0.4, 1.5))
    assert model.context_length == 8192


def test_requests_over_the_context_length_are_rejected_and_counted() -> None:
    scenario = make_scenario(
        models={"m": {"price": {"input": 1, "output": 1}, "context_length": 5000}},
        workloads=[
            {**BASE["workloads"][0], "input_tokens": {"dist": "uniform", "low": 1000, "high": 6000}}
        ],
    )
    result = run_checked(scenario)
    r = result.runs[0].records
    too_long = r.input_tokens + r.output_tokens > 5000
    assert too_long.any() and (~too_long).any()
    assert np.all(r.outcome[too_long] == Outcome.REJECTED)
    assert np.all(r.cost[too_long] == 0)
    workload = result.report["workloads"][0]
    assert workload["rejected_context_length"] == int(too_long.sum())
