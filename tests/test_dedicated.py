"""Dedicated endpoints: the replica model against queueing theory and a step-by-step
reference, the fleet's bill, spillover, autoscaling and clusters."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from simulator import engine
from simulator.deployments import batch as batch_queue
from simulator.records import Outcome
from tests.helpers import BASE, make_scenario, run_checked
from tests.reference_replica import simulate_steps

ARCH = {"like": "llama-3.1-8b"}
MODELS = {"m": {"price": {"input": 0.18, "output": 0.18}, "architecture": ARCH}}


def _pool(**extra: object) -> dict:
    return {"name": "pool", "kind": "dedicated", "model": "m", "gpu": "H100-SXM", **extra}


def _fixed(tpot: float = 0.01) -> dict:
    return {"model": "fixed", "prefill_tokens_per_s": 1e9, "tpot": tpot}


def _erlang_c_wait(arrival_rate: float, service_mean: float, servers: int) -> float:
    """Mean wait in queue of M/M/c (Erlang C)."""
    a = arrival_rate * service_mean
    top = a**servers / math.factorial(servers) * servers / (servers - a)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
    return p_wait * service_mean / (servers - a)


def _batch_means_tolerance(values: np.ndarray, batches: int = 20) -> float:
    means = np.array([b.mean() for b in np.array_split(values, batches)])
    return float(stats.t.ppf(1 - 0.5e-5, batches - 1) * means.std(ddof=1) / math.sqrt(batches))


def _mmc_scenario(servers: int, rho: float, seed: int, customers: float = 100_000) -> tuple:
    tpot, mean_out = 0.01, 200.0
    service = mean_out * tpot  # output tokens ~ exponential: service ~ exponential
    rate = rho * servers / service
    horizon = customers / rate
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "fixed", "value": 1},
        "output_tokens": {"dist": "exponential", "mean": mean_out},
    }
    scenario = make_scenario(
        seed=seed,
        horizon=horizon,
        warmup=horizon / 10,
        models=MODELS,
        workloads=[workload],
        deployments=[_pool(replicas=servers, max_batch=1, performance=_fixed(tpot))],
    )
    return scenario, rate


@pytest.mark.parametrize(("servers", "rho", "seed"), [(1, 0.7, 1), (3, 0.8, 2), (8, 0.85, 3)])
def test_pool_of_single_batch_replicas_matches_erlang_c(
    servers: int, rho: float, seed: int
) -> None:
    scenario, rate = _mmc_scenario(servers, rho, seed)
    r = run_checked(scenario).runs[0].records
    measured = r.arrival >= scenario.warmup
    service = (r.finish - r.start)[measured]
    # the service law is exponential up to whole tokens: check its CV first
    assert abs(service.std() / service.mean() - 1) < 0.02
    expected = _erlang_c_wait(rate, float(service.mean()), servers)
    waits = (r.start - r.arrival)[measured]
    assert abs(waits.mean() - expected) <= _batch_means_tolerance(waits)


def test_littles_law_for_the_pools_queue_and_system() -> None:
    scenario, _ = _mmc_scenario(3, 0.85, 7, customers=50_000)
    result = run_checked(scenario)
    r = result.runs[0].records
    pool = result.report["deployments"][0]
    end = max(float(r.finish.max()), scenario.horizon)
    # the pool accounts each request's wait and time in the system as it admits and
    # finishes it; Little's law says the time averages it reports are the arrival rate x
    # the mean times in the final records
    rate = len(r) / end
    assert pool["mean_queue_length"] == pytest.approx(rate * (r.start - r.arrival).mean(), rel=1e-9)
    assert pool["mean_in_system"] == pytest.approx(rate * (r.finish - r.arrival).mean(), rel=1e-9)
    assert pool["mean_queue_length"] > 0.5


def test_unbounded_batch_with_fixed_speed_is_m_m_infinity() -> None:
    tpot, rate = 0.02, 20.0
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "fixed", "value": 1},
        "output_tokens": {"dist": "exponential", "mean": 300},
    }
    scenario = make_scenario(
        horizon=4_000,
        models=MODELS,
        workloads=[workload],
        # the batch pauses for each admission's 1 ns prefill (fused, the decode step taken
        # along would add a tpot to each first token)
        deployments=[_pool(max_batch=100_000, prefill="separate", performance=_fixed(tpot))],
    )
    result = run_checked(scenario)
    r = result.runs[0].records
    service = (r.output_tokens - 1) * tpot + 1 / 1e9  # each request's own service time
    # nobody queues for capacity: a request only waits for the step under way to end
    assert np.all(r.start - r.arrival <= tpot + 1e-9)
    # (each later admission pauses decoding for its 1 ns prefill: microseconds at most)
    assert np.allclose(r.finish - r.start, service, rtol=1e-9, atol=1e-5)
    # M/M/inf: mean time in system = mean service (+ that wait, under one step)
    e2e = r.finish - r.arrival
    mean_service = (r.output_tokens.mean() - 1) * tpot
    tolerance = 5 * e2e.std() / math.sqrt(len(e2e))
    assert -tolerance <= e2e.mean() - mean_service <= tpot + tolerance
    # ... and the number in system is Poisson: its variance equals its mean
    grid = np.arange(600.0, 4000.0, 5.0)
    in_system = ((r.arrival[None, :] <= grid[:, None]) & (r.finish[None, :] > grid[:, None])).sum(
        axis=1
    )
    expected = rate * e2e.mean()
    assert abs(in_system.mean() / expected - 1) < 0.1
    assert abs(in_system.var() / in_system.mean() - 1) < 0.35


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("max_batch", [1, 4, 32])
@pytest.mark.parametrize("prefill", ["separate", "fused"])
@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_event_by_event_replica_matches_the_step_by_step_reference(
    seed: int, max_batch: int, prefill: str, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both engines: the Python one and the compiled pool (deployments/compiled)."""
    from simulator.deployments import compiled

    monkeypatch.setenv("CAPSIM_ENGINE", engine)
    taken: list[bool] = []
    real = compiled.run_pool
    monkeypatch.setattr(
        compiled, "run_pool", lambda *a, **k: taken.append(True) or real(*a, **k)
    )
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": 3},
        "input_tokens": {"dist": "lognormal", "mean": 800, "cv": 1.0, "max": 8000},
        "output_tokens": {"dist": "lognormal", "mean": 120, "cv": 1.0, "max": 2000},
    }
    performance = {"model": "roofline", "precision": "fp8", "memory_fraction": 0.025}
    scenario = make_scenario(
        seed=seed,
        horizon=300,
        models=MODELS,
        workloads=[workload],
        deployments=[_pool(max_batch=max_batch, prefill=prefill, performance=performance)],
    )
    result = run_checked(scenario)
    r = result.runs[0].records
    from simulator.serving.performance import build_step_model

    model = build_step_model(
        scenario.deployments[0], scenario.models["m"].resolved_architecture("m")
    )
    assert model.kv_capacity_tokens < 60_000  # small enough that KV memory binds too
    start, first, finish = simulate_steps(
        model, max_batch, r.arrival, r.input_tokens, r.output_tokens, fused=prefill == "fused"
    )
    assert np.allclose(r.start, start, rtol=1e-9, atol=1e-6)
    assert np.allclose(r.first_token, first, rtol=1e-9, atol=1e-6)
    assert np.allclose(r.finish, finish, rtol=1e-9, atol=1e-6)
    assert result.report["deployments"][0]["peak_batch"] <= max_batch
    assert taken == ([True] if engine == "compiled" else [])


def test_reserved_replicas_are_billed_for_the_horizon_busy_or_idle() -> None:
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": "10/h"},
    }
    scenario = make_scenario(
        horizon="1d",
        models=MODELS,
        workloads=[workload],
        deployments=[_pool(gpus_per_replica=2, replicas=3, price_per_gpu_hour=4.0)],
    )
    report = run_checked(scenario).report
    pool = report["deployments"][0]
    assert pool["gpu_hours"] == pytest.approx(3 * 2 * 24)
    assert pool["cost_usd"] == pytest.approx(3 * 2 * 24 * 4.0)
    assert pool["monthly_cost_usd"] == pytest.approx(3 * 2 * 24 * 4.0 * 30)
    assert pool["utilization"] < 0.05  # mostly idle, billed all the same
    tokens = pool["input_tokens"] + pool["output_tokens"]
    assert pool["usd_per_1m_tokens"] == pytest.approx(pool["cost_usd"] / tokens * 1e6)
    # the fleet's cost is carried by the workload that used it
    assert report["workloads"][0]["cost_usd"] == pytest.approx(pool["cost_usd"])


def test_the_default_gpu_price_comes_from_the_catalog() -> None:
    scenario = make_scenario(
        models=MODELS,
        workloads=[{**BASE["workloads"][0], "route": ["pool"]}],
        deployments=[_pool(gpu="H200", replicas=1)],
        horizon="1h",
    )
    pool = run_checked(scenario).report["deployments"][0]
    # billed for the hour and the drain of the requests in flight at its end
    assert 0 <= pool["drain_s"] < 120 and not pool["overloaded"]
    assert pool["gpu_hours"] == pytest.approx(1 + pool["drain_s"] / 3600)
    assert pool["price_per_gpu_hour"] == 6.65
    assert pool["cost_usd"] == pytest.approx(6.65 * pool["gpu_hours"])


def test_a_full_queue_spills_to_serverless() -> None:
    workload = {
        **BASE["workloads"][0],
        "route": ["pool", "serverless"],
        "arrivals": {"process": "poisson", "rate": 4},
        "output_tokens": {"dist": "fixed", "value": 300},
    }
    scenario = make_scenario(
        horizon="30m",
        models=MODELS,
        workloads=[workload],
        deployments=[
            _pool(max_batch=4, max_queue=2, performance=_fixed(0.01)),
            {"name": "serverless", "kind": "serverless"},
        ],
    )
    result = run_checked(scenario)
    pool, serverless = result.report["deployments"]
    assert pool["spilled"] > 0 and pool["spilled"] == serverless["requests"]
    assert pool["refused_queue_full"] == pool["spilled"]
    r = result.runs[0].records
    # with 4 in service and at most 2 waiting, nobody waits longer than 2 service times
    on_pool = r.deployment == 0
    assert (r.start - r.arrival)[on_pool].max() <= 2 * 300 * 0.01 + 1e-6
    assert result.report["totals"]["rejected"] == 0


def test_a_request_larger_than_the_kv_cache_is_refused() -> None:
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "input_tokens": {"dist": "fixed", "value": 5000},
    }
    performance = {
        "model": "fixed",
        "prefill_tokens_per_s": 1e4,
        "tpot": 0.01,
        "kv_capacity_tokens": 4000,
    }
    result = run_checked(
        make_scenario(
            horizon="10m",
            models=MODELS,
            workloads=[workload],
            deployments=[_pool(performance=performance)],
        )
    )
    pool = result.report["deployments"][0]
    assert pool["refused_too_long"] == result.report["totals"]["rejected"] > 0
    assert np.all(result.runs[0].records.outcome == Outcome.REJECTED)


def test_autoscaling_follows_the_load_and_bills_only_while_up() -> None:
    arrivals = {
        "process": "mmpp",
        "states": [{"rate": 4, "mean_duration": "2h"}, {"rate": 0.2, "mean_duration": "2h"}],
    }
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": arrivals,
        "output_tokens": {"dist": "fixed", "value": 500},
    }
    autoscale = {
        "min": 1,
        "max": 6,
        "target_utilization": 0.7,
        "scale_up_delay": "5m",
        "scale_down_delay": "20m",
        "interval": "1m",
    }
    scenario = make_scenario(
        seed=5,
        horizon="1d",
        models=MODELS,
        workloads=[workload],
        deployments=[_pool(replicas=autoscale, max_batch=8, performance=_fixed(0.02))],
    )
    result = run_checked(scenario)
    pool = result.report["deployments"][0]
    counts = [n for _, n in pool["replicas_timeline"]]
    assert min(counts) >= 1 and max(counts) <= 6
    assert max(counts) >= 3  # up for the bursts ...
    assert any(b < a for a, b in itertools.pairwise(counts))  # ... down after
    assert pool["gpu_hours"] < 6 * 24 and pool["gpu_hours"] > 24
    # billed per started minute of each replica's life within the horizon
    assert pool["gpu_hours"] * 60 == pytest.approx(round(pool["gpu_hours"] * 60))
    assert pool["gpu_hours"] >= pool["replicas_mean"] * 24 - 1e-9


def test_a_gpu_cluster_bills_every_gpu_plus_its_extras() -> None:
    workload = {
        **BASE["workloads"][0],
        "route": ["cluster"],
        "arrivals": {"process": "batch_jobs", "every": "6h", "requests": 2000},
    }
    cluster = {
        "name": "cluster",
        "kind": "gpu_cluster",
        "model": "m",
        "gpu": "H100-SXM",
        "gpus": 8,
        "gpus_per_replica": 2,
        "price_per_gpu_hour": 3.0,
        "extras_per_month": 3000,
    }
    result = run_checked(
        make_scenario(horizon="1d", models=MODELS, workloads=[workload], deployments=[cluster])
    )
    pool = result.report["deployments"][0]
    assert pool["gpu_hours"] == pytest.approx(8 * 24)
    assert pool["cost_usd"] == pytest.approx(8 * 24 * 3.0 + 3000 / 30)
    assert pool["replicas_peak"] == 4
    assert result.report["totals"]["completed"] == 8000


def test_serving_errors_name_the_field() -> None:
    from simulator import ScenarioError

    with pytest.raises(
        ScenarioError, match=r"deployments.pool: m \(llama-3.1-405b\) in bf16 needs"
    ):
        make_scenario(
            models={
                "m": {
                    "price": {"input": 1, "output": 1},
                    "architecture": {"like": "llama-3.1-405b"},
                }
            },
            deployments=[_pool(performance={"model": "roofline", "precision": "bf16"})],
            workloads=[{**BASE["workloads"][0], "route": ["pool"]}],
        )
    with pytest.raises(ScenarioError, match="price_per_gpu_hour: no bundled price for L40S"):
        make_scenario(
            models=MODELS,
            deployments=[_pool(gpu="L40S")],
            workloads=[{**BASE["workloads"][0], "route": ["pool"]}],
        )
    with pytest.raises(ScenarioError, match="unknown GPU 'H900'"):
        make_scenario(models=MODELS, deployments=[_pool(gpu="H900")])
    with pytest.raises(ScenarioError, match=r"needed by deployments\.pool"):
        make_scenario(
            deployments=[_pool()], workloads=[{**BASE["workloads"][0], "route": ["pool"]}]
        )


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("max_batch", "budget"), [(4, 512), (32, 2048)])
def test_chunked_prefill_matches_its_step_by_step_reference(
    seed: int, max_batch: int, budget: int
) -> None:
    from tests.reference_replica import simulate_chunked_steps

    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": 3},
        "input_tokens": {"dist": "lognormal", "mean": 800, "cv": 1.0, "max": 8000},
        "output_tokens": {"dist": "lognormal", "mean": 120, "cv": 1.0, "max": 2000},
    }
    performance = {"model": "roofline", "precision": "fp8", "memory_fraction": 0.025}
    pool = _pool(
        max_batch=max_batch, performance=performance, chunked_prefill=True, step_token_budget=budget
    )
    scenario = make_scenario(
        seed=seed, horizon=300, models=MODELS, workloads=[workload], deployments=[pool]
    )
    r = run_checked(scenario).runs[0].records
    from simulator.serving.performance import build_step_model

    model = build_step_model(
        scenario.deployments[0], scenario.models["m"].resolved_architecture("m")
    )
    start, first, finish = simulate_chunked_steps(
        model, max_batch, budget, r.arrival, r.input_tokens, r.output_tokens
    )
    assert np.allclose(r.start, start, rtol=1e-9, atol=1e-6)
    assert np.allclose(r.first_token, first, rtol=1e-9, atol=1e-6)
    assert np.allclose(r.finish, finish, rtol=1e-9, atol=1e-6)


def test_chunked_prefill_keeps_decoding_through_long_prompts() -> None:
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": 2},
        "input_tokens": {"dist": "lognormal", "mean": 6000, "cv": 1.0, "max": 60000},
        "output_tokens": {"dist": "fixed", "value": 200},
    }
    tpot = {}
    for chunked in (False, True):
        scenario = make_scenario(
            horizon="20m",
            models=MODELS,
            workloads=[workload],
            deployments=[_pool(chunked_prefill=chunked)],
        )
        report = run_checked(scenario).report
        tpot[chunked] = report["workloads"][0]["latency"]["tpot_s"]["p99"]
    # without chunking, every admitted prompt stalls the whole batch's decoding
    assert tpot[True] < tpot[False]


def _records_equal(a: object, b: object) -> None:
    for column in ("deployment", "outcome", "reason", "spills", "start", "first_token", "finish"):
        left, right = getattr(a, column), getattr(b, column)
        assert np.array_equal(left, right, equal_nan=True), column


def _busy_pool_scenario(seed: int, max_queue: int | None) -> object:
    return make_scenario(**_busy_pool_data(seed, max_queue))


def _busy_pool_data(seed: int, max_queue: int | None) -> dict:
    """Replicas with room now and then: bursty chat (a few one-token answers), a batch job
    whose requests arrive at one instant, a queue that fills and spills."""
    chat = {
        **BASE["workloads"][0],
        "name": "chat",
        "route": ["pool", "serverless"],
        "arrivals": {
            "process": "mmpp",
            "states": [
                {"rate": 1.0, "mean_duration": "2m"},
                {"rate": 12.0, "mean_duration": "30s"},
            ],
        },
        "input_tokens": {"dist": "lognormal", "mean": 800, "cv": 1.0, "max": 8000},
        "output_tokens": {"dist": "empirical", "values": [1, 40, 200, 600]},
    }
    job = {
        **chat,
        "name": "job",
        "arrivals": {"process": "batch_jobs", "every": "20m", "requests": 150, "start": "5m"},
    }
    return {
        "seed": seed,
        "horizon": "1h",
        "models": MODELS,
        "workloads": [chat, job],
        "deployments": [
            _pool(replicas=3, max_batch=16, max_queue=max_queue),
            {"name": "serverless", "kind": "serverless"},
        ],
    }


@pytest.mark.parametrize(("seed", "max_queue"), [(1, None), (2, 10), (3, 0)])
def test_run_ends_reached_lazily_match_run_ends_as_events(
    seed: int, max_queue: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = _busy_pool_scenario(seed, max_queue)
    lazy = run_checked(scenario)
    monkeypatch.setattr(
        "simulator.deployments.dedicated.lazy_run_ends", lambda *args, **kwargs: False
    )
    events = run_checked(scenario)
    _records_equal(lazy.runs[0].records, events.runs[0].records)
    pool_lazy, pool_events = lazy.report["deployments"][0], events.report["deployments"][0]
    assert pool_lazy["requests"] == pool_events["requests"] > 0
    assert pool_lazy["spilled"] == pool_events["spilled"]
    assert pool_lazy["mean_in_system"] == pytest.approx(pool_events["mean_in_system"], rel=1e-9)
    assert pool_lazy["utilization"] == pytest.approx(pool_events["utilization"], rel=1e-9)
    # the scenario exercises what it is meant to: waits, spills, whole batches at one instant
    r = lazy.runs[0].records
    on_pool = r.deployment == 0
    assert (r.start - r.arrival)[on_pool].max() > 0
    if max_queue is not None:
        assert pool_lazy["spilled"] > 0


def test_serverless_and_batch_routed_in_bulk_match_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _busy_pool_data(4, 5)
    direct = {**BASE["workloads"][0], "name": "direct", "route": ["serverless"]}
    offline = {
        **BASE["workloads"][0],
        "name": "offline",
        "arrivals": {"process": "batch_jobs", "every": "10m", "requests": 2000},
        "route": ["batch", "serverless"],
    }
    data["workloads"] += [direct, offline]
    # a small enqueued-token cap, so that some batch requests are refused and spill over
    data["deployments"].append({"name": "batch", "kind": "batch", "max_enqueued_tokens": 2e6})
    scenario = make_scenario(**data)
    chosen: list[list[int]] = []
    original = engine._bulk_workloads
    monkeypatch.setattr(
        engine, "_bulk_workloads", lambda routes: chosen.append(original(routes)) or chosen[-1]
    )
    # the batch queue takes its requests a block at a time: small blocks, so that the
    # queue's state crosses many block boundaries
    monkeypatch.setattr(batch_queue, "_BLOCK", 7)
    monkeypatch.setattr(engine, "_BULK_BLOCK", 11)  # and the bulk router, a block at a time
    bulk = run_checked(scenario)
    assert chosen == [[2, 3]]  # direct and offline; chat and job go through the pool
    monkeypatch.setattr(engine, "_bulk_workloads", lambda routes: [])
    one_by_one = run_checked(scenario)
    _records_equal(bulk.runs[0].records, one_by_one.runs[0].records)
    assert np.array_equal(bulk.runs[0].records.cost, one_by_one.runs[0].records.cost)
    batch = bulk.report["deployments"][2]
    assert batch["spilled"] > 0 and batch["requests"] > 0
    assert batch == one_by_one.report["deployments"][2]


@pytest.mark.parametrize("lengths", ["fixed", "lognormal"])
def test_a_bigger_pool_at_the_same_load_per_replica_waits_no_longer(lengths: str) -> None:
    """Pooled servers wait less, not more: at 12.5 requests/s per replica, TTFT and the wait
    before admission must not grow from 1 to 8 replicas (a router balancing on running
    requests alone herded bursts onto one replica, where they queued behind each other's
    prefill: p99 TTFT 0.14 s at 1 replica, 1.07 s at 8)."""
    if lengths == "fixed":
        tokens = {"dist": "fixed", "value": 1000}, {"dist": "fixed", "value": 250}
    else:
        tokens = (
            {"dist": "lognormal", "mean": 1000, "cv": 0.5, "max": 8000},
            {"dist": "lognormal", "mean": 250, "cv": 0.5, "max": 2000},
        )
    ttft_p99, wait = {}, {}
    for n in (1, 2, 4, 8):
        workload = {
            **BASE["workloads"][0],
            "route": ["pool"],
            "arrivals": {"process": "poisson", "rate": 12.5 * n},
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
        }
        scenario = make_scenario(
            seed=3,
            horizon=300,
            warmup=30,
            models=MODELS,
            workloads=[workload],
            deployments=[
                _pool(
                    replicas=n,
                    max_batch=232,
                    price_per_gpu_hour=2.0,
                    performance={"model": "roofline", "precision": "bf16"},
                )
            ],
        )
        latency = run_checked(scenario).report["workloads"][0]["latency"]
        ttft_p99[n] = latency["ttft_s"]["p99"]
        wait[n] = latency["queue_s"]["mean"]
    for n in (2, 4, 8):
        assert ttft_p99[n] <= ttft_p99[1] * 1.05, ttft_p99
        assert wait[n] <= wait[1] * 1.05, wait
    assert ttft_p99[8] <= ttft_p99[2] * 1.05, ttft_p99


def _overload_scenario(rate: float, horizon: float = 600) -> object:
    """Two replicas of 4 slots, 1 s a request (100 tokens at 10 ms): they serve 8/s."""
    workload = {
        **BASE["workloads"][0],
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "fixed", "value": 10},
        "output_tokens": {"dist": "fixed", "value": 101},
    }
    return make_scenario(
        horizon=horizon,
        models=MODELS,
        workloads=[workload],
        deployments=[
            _pool(replicas=2, max_batch=4, price_per_gpu_hour=3.6, performance=_fixed(0.01))
        ],
    )


def test_an_overloaded_pool_is_flagged_and_its_drain_billed() -> None:
    scenario = _overload_scenario(12.0)
    result = run_checked(scenario)
    pool = result.report["deployments"][0]
    r = result.runs[0].records
    assert pool["overloaded"] is True
    # offered 12/s against 8/s: the modeled load says so, and the queue keeps a third
    assert pool["offered_load"] == pytest.approx(1.5, rel=0.05)
    assert pool["throughput_utilization"] <= 1.0 and pool["utilization"] <= 1.0
    assert pool["backlog_at_horizon"] == int(np.sum(r.finish > scenario.horizon))
    assert pool["backlog_at_horizon"] == pytest.approx(600 * (12 - 8), rel=0.1)
    # every request is billed by the time its GPUs took: the drain after the horizon too
    last = float(r.finish.max())
    assert pool["drain_s"] == pytest.approx(last - scenario.horizon)
    assert pool["drain_s"] == pytest.approx(pool["backlog_at_horizon"] / 8, rel=0.05)
    assert pool["gpu_hours"] == pytest.approx(2 * last / 3600)
    assert pool["cost_usd"] == pytest.approx(3.6 * 2 * last / 3600)


@pytest.mark.parametrize("rate", [4.0, 7.0])
def test_a_pool_within_its_capacity_is_not_overloaded(rate: float) -> None:
    pool = run_checked(_overload_scenario(rate)).report["deployments"][0]
    assert pool["overloaded"] is False
    assert pool["offered_load"] == pytest.approx(rate / 8, rel=0.05)
    assert pool["drain_s"] < 30  # at most the requests in flight and a short queue


def test_overload_shows_in_every_format(tmp_path: Path) -> None:
    import yaml

    from simulator.report.build import combine_reports

    scenario = _overload_scenario(12.0, horizon=120)
    path = tmp_path / "over.yaml"
    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json", by_alias=True)))
    table = subprocess.run(["capsim", "run", str(path)], capture_output=True, text=True)
    assert table.returncode == 0 and "pool is overloaded" in table.stdout
    as_json = subprocess.run(
        ["capsim", "run", str(path), "--format", "json", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert as_json.returncode == 0 and "pool is overloaded" in as_json.stderr
    assert json.loads(as_json.stdout)["deployments"][0]["overloaded"] is True
    assert "pool is overloaded" in (tmp_path / "out" / "report.html").read_text()
    # with replications: overloaded when any replication is, and in how many it was
    ok = run_checked(_overload_scenario(4.0, horizon=120)).report
    bad = run_checked(scenario).report
    combined = combine_reports([ok, bad])["deployments"][0]
    assert combined["overloaded"] is True and combined["overloaded_share"] == 0.5


def test_length_based_routing_sends_long_prompts_to_the_next_pool() -> None:
    """`max_input_tokens` on a pool: every prompt longer than it passes to the next entry of
    its route (a pool for long prompts), every shorter one is served by the first pool; the
    first pool counts what it passed (`passed_by_length`), and the plan's capacity bound of
    the short pool counts only the traffic that reaches it."""
    from simulator.studies.plan import capacity_bound

    workload = {
        **BASE["workloads"][0],
        "model": "m",
        "route": ["short", "long"],
        "arrivals": {"process": "poisson", "rate": 4},
        "input_tokens": {"dist": "lognormal", "mean": 1000, "cv": 1.0},
        "output_tokens": {"dist": "fixed", "value": 50},
    }
    roofline = {"model": "roofline", "precision": "fp8"}
    scenario = make_scenario(
        horizon="5m",
        models=MODELS,
        workloads=[workload],
        deployments=[
            {**_pool(name="short", replicas=1, performance=roofline), "max_input_tokens": 1000},
            {**_pool(name="long", replicas=1, performance=roofline)},
        ],
    )
    result = run_checked(scenario)
    r = result.runs[0].records
    short, long = 0, 1  # the deployments' indices, in the scenario's order
    long_prompt = r.input_tokens > 1000
    assert long_prompt.sum() > 100 and (~long_prompt).sum() > 100
    assert np.all(r.deployment[long_prompt] == long)
    assert np.all(r.deployment[~long_prompt] == short)
    report = {d["name"]: d for d in result.report["deployments"]}
    assert report["short"]["passed_by_length"] == int(long_prompt.sum())
    assert report["long"]["passed_by_length"] == 0
    every = scenario.deployments[0].model_copy(update={"max_input_tokens": None})
    _, offered_all = capacity_bound(scenario.model_copy(update={"deployments": [every]}), every)
    _, offered_short = capacity_bound(scenario, scenario.deployments[0])
    assert offered_short is not None and offered_all is not None
    share = float((~long_prompt).mean())
    assert offered_short == pytest.approx(offered_all * share, rel=0.1)


def _pollaczek_khinchine_wait(rate: float, services: np.ndarray, weights: np.ndarray) -> float:
    """Mean wait in queue of M/G/1 for a discrete service law."""
    rho = rate * float(weights @ services)
    return rate * float(weights @ services**2) / (2 * (1 - rho))


def test_length_routing_against_pollaczek_khinchine() -> None:
    """Length routing checked exactly. Prompts of 200 tokens (90%) and 5,000 (10%), one
    token answered, at 10 requests/s. One replica prefilling 20,000 tokens/s for all (M/G/1)
    against the same capacity split by length, 10,000 tokens/s for each class (two M/D/1
    queues: Poisson arrivals thinned by length stay Poisson): every class's mean wait is
    Pollaczek-Khinchine's, within batch-means tolerances. The split cuts the short prompts'
    wait from 48 ms to 2 ms and raises the long ones' from 48 to 250 ms: what routing by
    length buys and what it costs."""
    rate, lengths, weights = 10.0, np.array([200.0, 5000.0]), np.array([0.9, 0.1])
    workload = {
        **BASE["workloads"][0],
        "model": "m",
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "empirical", "values": [200, 5000], "weights": [0.9, 0.1]},
        "output_tokens": {"dist": "fixed", "value": 1},
    }

    def pool(name: str, tokens_per_s: float) -> dict:
        perf = {"model": "fixed", "prefill_tokens_per_s": tokens_per_s, "tpot": 0.01}
        return _pool(name=name, replicas=1, max_batch=1, performance=perf)

    mixed = make_scenario(
        seed=5, horizon=10_000, warmup=1_000, models=MODELS,
        workloads=[{**workload, "route": ["all"]}], deployments=[pool("all", 20_000)],
    )  # fmt: skip
    split = make_scenario(
        seed=5, horizon=10_000, warmup=1_000, models=MODELS,
        workloads=[{**workload, "route": ["short", "long"]}],
        deployments=[{**pool("short", 10_000), "max_input_tokens": 1000}, pool("long", 10_000)],
    )  # fmt: skip
    r = run_checked(mixed).runs[0].records
    waits = (r.start - r.arrival)[r.arrival >= mixed.warmup]
    expected_mixed = _pollaczek_khinchine_wait(rate, lengths / 20_000, weights)
    assert abs(waits.mean() - expected_mixed) <= _batch_means_tolerance(waits)
    r = run_checked(split).runs[0].records
    measured = r.arrival >= split.warmup
    for pool_index, share, length in ((0, 0.9, 200.0), (1, 0.1, 5000.0)):
        mine = measured & (r.deployment == pool_index)
        assert np.all(r.input_tokens[mine] == length)
        waits = (r.start - r.arrival)[mine]
        expected = _pollaczek_khinchine_wait(
            rate * share, np.array([length / 10_000]), np.array([1.0])
        )
        assert abs(waits.mean() - expected) <= _batch_means_tolerance(waits)
    assert expected_mixed == pytest.approx(0.048, abs=0.001)


def test_a_pool_scaled_to_zero_serves_its_queue_in_the_drain() -> None:
    """Autoscaled from zero, evaluated every 61 s over a 60 s horizon: no evaluation came
    before the horizon, the requests queued on a pool with no replica and the run crashed
    ("requests left pending after the drain", found by the fleet property test). The next
    evaluation, past the horizon, now starts a replica: every request completes, the
    drain is billed and the pool is flagged overloaded."""
    workload = {
        **BASE["workloads"][0],
        "model": "m",
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": 1.0},
        "input_tokens": {"dist": "fixed", "value": 1},
        "output_tokens": {"dist": "fixed", "value": 1},
    }
    autoscale = {"min": 0, "max": 1, "interval": 61.0, "scale_up_delay": 0.0,
                 "scale_down_delay": 0.0}  # fmt: skip
    scenario = make_scenario(
        horizon=60,
        models=MODELS,
        workloads=[workload],
        deployments=[
            _pool(
                replicas=autoscale, max_batch=1, price_per_gpu_hour=1.0, performance=_fixed(0.02)
            )
        ],
    )
    result = run_checked(scenario)
    r = result.runs[0].records
    assert len(r) > 30 and np.all(r.outcome == Outcome.COMPLETED)
    assert np.all(r.start >= 61.0)  # nothing served before the first evaluation
    pool = result.report["deployments"][0]
    assert pool["overloaded"] and pool["gpu_hours"] > 0


def _kv_bound_scenario(mode: str, rate: float, memory_fraction: float = 0.05) -> object:
    workload = {
        **BASE["workloads"][0],
        "model": "m",
        "route": ["pool"],
        "arrivals": {"process": "poisson", "rate": rate},
        "input_tokens": {"dist": "lognormal", "mean": 1000, "cv": 0.5},
        "output_tokens": {"dist": "lognormal", "mean": 500, "cv": 0.8},
    }
    performance = {"model": "roofline", "precision": "fp8", "memory_fraction": memory_fraction}
    return make_scenario(
        seed=1,
        horizon=400,
        warmup=100,
        models=MODELS,
        workloads=[workload],
        deployments=[
            _pool(replicas=1, max_batch=512, kv_admission=mode, performance=performance)
        ],
    )


def test_optimistic_admission_preempts_and_serves_more_when_the_kv_cache_binds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kv_admission: optimistic (vLLM): admitted on the prompt's KV, the newest sequence
    preempted and recomputed when the next step would not fit. The KV held never exceeds
    the capacity (checked at every boundary), every request completes, a preempted one keeps
    its first token and its queue time, and with the KV cache binding the replica serves
    more than reserving each request's whole KV at admission."""
    from simulator.deployments.replica import Replica

    advance = Replica._advance
    peaks: list[float] = []

    def checked(self: Replica, steps: int, now: float) -> None:
        advance(self, steps, now)
        if self.optimistic:  # held by the batch (requests assigned for later hold none yet)
            held = self.kv_used - sum(entry[1] + 1 for entry in self.pending)
            assert held <= self.kv_capacity + 1e-9
            peaks.append(held / self.kv_capacity)

    monkeypatch.setattr(Replica, "_advance", checked)
    served = {}
    for mode in ("reserve", "optimistic"):
        result = run_checked(_kv_bound_scenario(mode, 8.0))
        r = result.runs[0].records
        assert np.all(r.outcome == Outcome.COMPLETED)
        done = (r.finish > 100) & (r.finish <= 400)
        served[mode] = done.sum() / 300
        pool = result.report["deployments"][0]
        if mode == "optimistic":
            assert pool["preemptions"] > 0
            assert np.all(r.start >= r.arrival) and np.all(r.first_token >= r.start)
            assert np.all(r.finish >= r.first_token)
        else:
            assert pool["preemptions"] == 0
    assert max(peaks) > 0.9  # the cache did fill
    assert served["optimistic"] > 1.08 * served["reserve"]


def test_optimistic_admission_changes_nothing_while_the_kv_cache_has_room() -> None:
    """With the KV cache far from full nothing is preempted and both admissions admit the
    same requests at the same boundaries: the same records."""
    runs = {
        mode: run_checked(_kv_bound_scenario(mode, 4.0, memory_fraction=0.9)).runs[0].records
        for mode in ("reserve", "optimistic")
    }
    for column in ("start", "first_token", "finish"):
        assert np.array_equal(getattr(runs["reserve"], column), getattr(runs["optimistic"], column))


def test_optimistic_admission_is_refused_with_chunked_prefill() -> None:
    from simulator import ScenarioError

    with pytest.raises(ScenarioError, match="kv_admission"):
        make_scenario(
            models=MODELS,
            deployments=[_pool(kv_admission="optimistic", chunked_prefill=True)],
            workloads=[{**BASE["workloads"][0], "model": "m", "route": ["pool"]}],
        )


def test_separate_prefill_is_refused_with_chunked_prefill() -> None:
    from simulator import ScenarioError

    with pytest.raises(ScenarioError, match="prefill"):
        make_scenario(
            models=MODELS,
            deployments=[_pool(prefill="separate", chunked_prefill=True)],
            workloads=[{**BASE["workloads"][0], "model": "m", "route": ["pool"]}],
        )


def test_fused_prefill_serves_more_when_prompts_arrive_while_the_batch_runs() -> None:
    """In-flight batching: prompts ride along the batch's step instead of pausing it, so
    the same replica at the same load gives shorter TPOT and the same answers; one request
    at a time (no batch to fuse with) times the same either way."""
    from simulator.studies.probe import probe

    roofline = {"model": "roofline"}
    args = ("llama-3.1-8b", "H100-SXM", 1, "fp8", 1000, 200, 64, 64)
    separate = probe(*args, performance=roofline, prefill="separate")
    fused = probe(*args, performance=roofline)
    assert fused.tpot_s is not None and separate.tpot_s is not None
    assert fused.tpot_s < 0.9 * separate.tpot_s
    assert fused.output_tokens_per_s > 1.1 * separate.output_tokens_per_s
    # the measured kernels too: one pass of GEMMs over the prompts and the batch's tokens
    separate = probe(*args, prefill="separate")
    fused = probe(*args)
    assert fused.performance_model == "kernels"
    assert fused.tpot_s is not None and separate.tpot_s is not None
    assert fused.tpot_s < 0.95 * separate.tpot_s
    assert fused.output_tokens_per_s > 1.05 * separate.output_tokens_per_s
    alone = [
        probe("llama-3.1-8b", "H100-SXM", 1, "fp8", 1000, 200, 1, 64, prefill=mode)
        for mode in ("separate", "fused")
    ]
    assert alone[0].ttft_s == pytest.approx(alone[1].ttft_s, rel=1e-9)
    assert alone[0].tpot_s == pytest.approx(alone[1].tpot_s, rel=1e-9)
