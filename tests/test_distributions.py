"""Sampled token lengths match their analytic mean and CV within sample-size tolerances."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from simulator.traffic.distributions import TokenDist
from tests.stats_helpers import batch_tolerance, cv, mean_tolerance
from tests.strategies import token_distributions

ADAPTER: TypeAdapter[object] = TypeAdapter(TokenDist)
N = 200_000


def _build(spec: dict) -> object:
    return ADAPTER.validate_python(spec)


@settings(max_examples=60, deadline=None)
@given(token_distributions(), st.integers(0, 2**32))
def test_sample_mean_matches_analytic_mean(spec: dict, seed: int) -> None:
    dist = _build(spec)
    sample = dist.sample(np.random.default_rng(seed), N)  # type: ignore[attr-defined]
    assert sample.dtype == np.int64
    assert sample.min() >= 1
    if spec.get("max") is not None:
        assert sample.max() <= spec["max"]
    # whole-token rounding moves the mean by < 0.5; flooring at 1 adds at most P(X < 0.5)
    expected = dist.mean()  # type: ignore[attr-defined]
    assert abs(sample.mean() - expected) <= mean_tolerance(sample, slack=0.5 + 0.01 * expected)


@settings(max_examples=40, deadline=None)
@given(token_distributions(with_max=False), st.integers(0, 2**32))
def test_sample_cv_matches_analytic_cv(spec: dict, seed: int) -> None:
    dist = _build(spec)
    sample = dist.sample(np.random.default_rng(seed), N).astype(float)  # type: ignore[attr-defined]
    expected = dist.cv()  # type: ignore[attr-defined]
    # rounding adds variance of at most 1/12 token^2: allow for it in the slack
    slack = 0.5 / sample.mean() + 0.02 * expected
    if expected == 0:
        assert cv(sample) == 0
        return
    assert abs(cv(sample) - expected) <= batch_tolerance(sample, cv) + slack


def test_lognormal_capped_mean_is_the_truncated_integral() -> None:
    dist = _build({"dist": "lognormal", "mean": 3000, "cv": 0.6, "max": 4000})
    sample = dist.sample(np.random.default_rng(3), 1_000_000)  # type: ignore[attr-defined]
    assert dist.mean() < 3000  # type: ignore[attr-defined]
    assert abs(sample.mean() - dist.mean()) <= mean_tolerance(sample, 0.5)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "spec",
    [
        {"dist": "fixed", "value": 0},
        {"dist": "lognormal", "mean": 100},
        {"dist": "lognormal", "mean": 100, "cv": -1},
        {"dist": "uniform", "low": 10, "high": 5},
        {"dist": "empirical", "values": [1, 2], "weights": [1]},
        {"dist": "empirical", "values": [0, 2]},
        {"dist": "empirical", "values": [1, 2], "weights": [0, 0]},
        {"dist": "exponential", "mean": 5, "max": 0},
        {"dist": "gaussian", "mean": 5},
        {"dist": "fixed", "value": 5, "typo": 1},
    ],
)
def test_bad_distributions_are_refused(spec: dict) -> None:
    with pytest.raises(ValidationError):
        _build(spec)
