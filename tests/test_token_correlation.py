"""Input-output length correlation: a Gaussian copula, or observed pairs kept together."""

import math

import numpy as np
import pytest
from scipy import stats

from tests.helpers import BASE, make_scenario, run_checked


@pytest.mark.parametrize("rho", [-0.6, 0.0, 0.5, 0.9])
def test_copula_gives_the_rank_correlation_and_keeps_the_marginals(rho: float) -> None:
    workload = {
        **BASE["workloads"][0],
        "arrivals": {"process": "poisson", "rate": "50/s"},
        "input_tokens": {"dist": "lognormal", "mean": 2000, "cv": 1.0},
        "output_tokens": {"dist": "exponential", "mean": 300},
        "token_correlation": rho,
    }
    r = run_checked(make_scenario(horizon="1h", workloads=[workload])).runs[0].records
    n = len(r)
    spearman = stats.spearmanr(r.input_tokens, r.output_tokens).statistic
    # a Gaussian copula with correlation rho has Spearman correlation (6/pi) asin(rho/2)
    expected = 6 / math.pi * math.asin(rho / 2)
    assert abs(spearman - expected) <= 5 * (1 - expected**2) / math.sqrt(n - 3) + 0.01
    # the marginals are untouched by the copula
    assert abs(r.input_tokens.mean() - 2000) <= 5 * 2000 / math.sqrt(n) + 0.5
    assert abs(r.output_tokens.mean() - 300) <= 5 * 300 / math.sqrt(n) + 0.5


def test_token_pairs_are_drawn_together() -> None:
    pairs = [[100, 10], [1000, 100], [10000, 1000]]
    workload = {**BASE["workloads"][0], "token_pairs": {"pairs": pairs, "weights": [1, 2, 1]}}
    del workload["input_tokens"], workload["output_tokens"]
    r = run_checked(make_scenario(horizon="1h", workloads=[workload])).runs[0].records
    assert np.all(r.input_tokens == 10 * r.output_tokens)
    share = np.mean(r.input_tokens == 1000)
    assert abs(share - 0.5) <= 5 * math.sqrt(0.25 / len(r))


def test_token_pairs_exclude_separate_lengths() -> None:
    from simulator import ScenarioError

    workload = {**BASE["workloads"][0], "token_pairs": {"pairs": [[1, 1]]}}
    with pytest.raises(ScenarioError, match="token_pairs gives both lengths"):
        make_scenario(workloads=[workload])
