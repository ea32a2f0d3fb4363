"""The compiled pool (deployments/compiled) against the Python engine it mirrors: the same
records (times within 1e-9 relative, counts and outcomes equal) and the same deployment
figures, on every bundled scenario, the step-by-step reference cases and random fleets."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from simulator import load_scenario
from simulator.deployments import compiled
from simulator.engine import RunResult, simulate
from simulator.scenario.format import Scenario
from tests.strategies import fleet_scenarios

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml"))


def _run(scenario: Scenario, engine: str, monkeypatch: pytest.MonkeyPatch) -> tuple[RunResult, int]:
    """One run with `engine` forced; returns it and how many pools ran compiled."""
    calls = []
    real = compiled.run_pool

    def counting(*args: Any, **kwargs: Any) -> Any:
        admitted = real(*args, **kwargs)
        calls.append(admitted is not None)
        return admitted

    monkeypatch.setenv("CAPSIM_ENGINE", engine)
    monkeypatch.setattr(compiled, "run_pool", counting)
    result = simulate(scenario)
    return result, sum(calls)


def _same(reference: RunResult, other: RunResult) -> None:
    a, b = reference.records, other.records
    for column in ("workload", "deployment", "outcome", "reason", "spills", "cost"):
        assert np.array_equal(getattr(a, column), getattr(b, column)), column
    for column in ("start", "first_token", "finish"):
        x, y = getattr(a, column), getattr(b, column)
        assert np.array_equal(np.isnan(x), np.isnan(y)), column
        both = ~np.isnan(x)
        assert np.allclose(x[both], y[both], rtol=1e-9, atol=0), column
    assert reference.end_time == pytest.approx(other.end_time, rel=1e-9)
    assert reference.spilled == other.spilled
    for left, right in zip(reference.summaries, other.summaries, strict=True):
        for key in ("gpu_hours", "fixed_cost_usd", "utilization"):
            _close(getattr(left, key), getattr(right, key), key)
        assert left.extra.keys() == right.extra.keys()
        for key, value in left.extra.items():
            _close(value, right.extra[key], key)


def _close(x: Any, y: Any, what: str) -> None:
    """Equal, floats within 1e-9 relative (None and NaN only as themselves)."""
    if isinstance(x, float) and isinstance(y, float) and not math.isnan(x):
        assert x == pytest.approx(y, rel=1e-9), what
    else:
        assert x == y or (x != x and y != y), what


def _may_compile(spec: Any) -> bool:
    """Whether a deployment's configuration lets it run compiled (`compiled.eligible` then
    decides on the built pool: routes, the step model)."""
    return (
        spec.kind in ("dedicated", "gpu_cluster")
        and isinstance(getattr(spec, "replicas", 1), int)
        and not spec.chunked_prefill
        and spec.kv_admission == "reserve"
        and not spec.prefix_caching
        and getattr(spec, "disaggregation", None) is None
        and spec.failures is None
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_bundled_scenarios_give_the_same_records_compiled(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = load_scenario(path)
    if not any(_may_compile(d) for d in scenario.deployments):
        return  # nothing to compare: the Python engine runs it either way (test_cli runs it)
    result, ran = _run(scenario, "compiled", monkeypatch)
    if not ran:
        return  # no pool of it can run compiled: the engine was the Python one throughout
    reference, none = _run(scenario, "python", monkeypatch)
    assert none == 0
    _same(reference, result)
    assert np.any(result.records.deployment >= 0)


def test_the_compiled_path_is_taken_where_the_design_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reserved pool fed open-loop arrivals runs compiled; autoscaled, chunked, optimistic
    and prefix-caching pools, and pools offered spills, stay in Python."""
    path = Path(__file__).parent.parent / "scenarios/dedicated_h100_spillover.yaml"
    base = load_scenario({**yaml.safe_load(path.read_text()), "horizon": "2h"})
    _, ran = _run(base, "compiled", monkeypatch)
    assert ran == 1
    _, ran = _run(base, "python", monkeypatch)
    assert ran == 0
    for change in (
        {"kv_admission": "optimistic"},
        {"chunked_prefill": True},
        {"replicas": {"min": 1, "max": 3}},
    ):
        data = {**yaml.safe_load(path.read_text()), "horizon": "2h"}
        pool = next(d for d in data["deployments"] if d["kind"] == "dedicated")
        pool.update(change)
        _, ran = _run(load_scenario(data), "compiled", monkeypatch)
        assert ran == 0, change


def test_a_run_that_outgrows_the_compiled_event_heap_falls_back_to_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event heap is sized for a pool; when it fills, the Python engine runs the pool
    from the start and the records are its own."""
    scenario = load_scenario(Path(__file__).parent.parent / "scenarios/dedicated_overloaded.yaml")
    reference, _ = _run(scenario, "python", monkeypatch)
    monkeypatch.setattr(compiled, "event_capacity", lambda replicas, width: 0)
    result, ran = _run(scenario, "compiled", monkeypatch)
    assert ran == 0  # tried (the queue needed events), handed back
    _same(reference, result)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet_scenarios())
def test_random_fleets_give_the_same_records_compiled(data: dict) -> None:
    scenario = load_scenario({**data, "replications": 1})
    with pytest.MonkeyPatch.context() as monkeypatch:
        reference, _ = _run(scenario, "python", monkeypatch)
        result, _ = _run(scenario, "compiled", monkeypatch)
    _same(reference, result)
