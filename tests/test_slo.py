"""SLO entries: observed quantile, attainment, and rejections counted as misses."""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from simulator.report.metrics import quantile_with_misses
from tests.helpers import BASE, make_scenario, run_checked


@given(
    arrays(np.float64, st.integers(1, 200), elements=st.floats(0, 1e6)),
    st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999]),
)
def test_quantile_without_misses_is_numpys(values: np.ndarray, q: float) -> None:
    assert math.isclose(
        quantile_with_misses(values, 0, q),
        float(np.quantile(values, q)),
        rel_tol=1e-12,
        abs_tol=1e-12,
    )


@given(arrays(np.float64, st.integers(1, 200), elements=st.floats(0, 1e6)), st.integers(1, 50))
def test_misses_only_push_the_quantile_up(values: np.ndarray, misses: int) -> None:
    assert quantile_with_misses(values, misses, 0.9) >= quantile_with_misses(values, 0, 0.9)


def test_rejected_requests_are_slo_misses() -> None:
    workload = {
        **BASE["workloads"][0],
        "slo": {"ttft_p50": "2s", "ttft_p95": "2s"},
        "input_tokens": {"dist": "uniform", "low": 1000, "high": 10_000},
    }
    scenario = make_scenario(
        workloads=[workload],
        models={"m": {"price": {"input": 1, "output": 1}, "context_length": 10_000}},
    )
    result = run_checked(scenario)
    r = result.runs[0].records
    rejected = int((r.input_tokens + r.output_tokens > 10_000).sum())
    share = rejected / len(r)
    assert 0.05 < share < 0.5  # ~1/9 of requests are over the context window
    p50, p95 = result.report["workloads"][0]["slo"]
    assert p50["rejected"] == p95["rejected"] == rejected
    # every served request has ttft 0.4 s < 2 s: attainment is exactly the served share
    assert p95["attainment"] == p50["attainment"] == (len(r) - rejected) / len(r)
    assert p50["met"] is True and math.isclose(p50["observed_s"], 0.4, rel_tol=1e-9)
    assert p95["met"] is False and p95["observed_s"] is None
