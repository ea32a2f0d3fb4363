"""Hypothesis strategies for scenario pieces, shared by the property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

whole = st.integers(min_value=1, max_value=20_000)


@st.composite
def token_distributions(draw: st.DrawFn, with_max: bool = True) -> dict[str, Any]:
    """A token-length distribution as a scenario writes it."""
    kind = draw(st.sampled_from(["fixed", "exponential", "lognormal", "uniform", "empirical"]))
    spec: dict[str, Any]
    if kind == "fixed":
        spec = {"dist": "fixed", "value": draw(whole)}
    elif kind == "exponential":
        spec = {"dist": "exponential", "mean": draw(st.floats(20, 5000))}
    elif kind == "lognormal":
        spec = {
            "dist": "lognormal",
            "mean": draw(st.floats(20, 5000)),
            "cv": draw(st.floats(0.05, 2.0)),
        }
    elif kind == "uniform":
        low = draw(whole)
        spec = {"dist": "uniform", "low": low, "high": low + draw(st.integers(0, 5000))}
    else:
        values = draw(st.lists(whole, min_size=1, max_size=8))
        spec = {"dist": "empirical", "values": values}
        if draw(st.booleans()):
            spec["weights"] = draw(
                st.lists(st.floats(0.1, 10), min_size=len(values), max_size=len(values))
            )
    if with_max and draw(st.booleans()):
        spec["max"] = draw(st.integers(1, 30_000))
    return spec


@st.composite
def deployments(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """A serverless (maybe rate-limited) or batch deployment."""
    if draw(st.booleans()):
        spec: dict[str, Any] = {
            "name": name,
            "kind": "serverless",
            "ttft": draw(st.floats(0, 2)),
            "output_tokens_per_s": draw(st.floats(5, 500)),
        }
        if draw(st.booleans()):
            spec["rate_limit"] = {"requests_per_min": draw(st.floats(1, 600))}
            spec["on_limit"] = draw(st.sampled_from(["spill", "retry"]))
        return spec
    return {
        "name": name,
        "kind": "batch",
        "tokens_per_s": draw(st.floats(1e3, 1e6)),
        "max_enqueued_tokens": draw(st.floats(1e4, 1e8)),
    }


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Small random scenarios: 1-3 workloads over 1-3 deployments, routes of any order."""
    n_deploy = draw(st.integers(1, 3))
    names = [f"d{i}" for i in range(n_deploy)]
    workloads = []
    for w in range(draw(st.integers(1, 3))):
        route = draw(st.lists(st.sampled_from(names), min_size=1, max_size=n_deploy, unique=True))
        workloads.append(
            {
                "name": f"w{w}",
                "model": draw(st.sampled_from(["a", "b"])),
                "tags": {"tenant": draw(st.sampled_from(["x", "y"]))},
                "arrivals": {"process": "poisson", "rate": draw(st.floats(0.05, 3))},
                "input_tokens": draw(token_distributions()),
                "output_tokens": draw(token_distributions()),
                "slo": {"ttft_p95": 2.0, "e2e_p99": 60.0},
                "route": route,
            }
        )
        if draw(st.booleans()):  # images: input tokens of their own stream
            workloads[-1]["images"] = {
                "per_request": draw(st.one_of(st.integers(0, 4), token_distributions(False))),
                "tokens_per_image": draw(st.integers(1, 2000)),
            }
            workloads[-1]["slo"]["availability"] = draw(st.floats(0.5, 1.0))
    return {
        "name": "property",
        "seed": draw(st.integers(0, 2**32)),
        "horizon": draw(st.floats(60, 1800)),
        "warmup": 0,
        "models": {
            "a": {
                "price": {"input": draw(st.floats(0, 5)), "output": draw(st.floats(0, 15))},
                "context_length": draw(st.integers(2, 40_000)),
            },
            "b": {"price": {"input": 0.2, "output": 0.2}},
        },
        "workloads": workloads,
        "deployments": [draw(deployments(n)) for n in names],
    }


@st.composite
def fleets(draw: st.DrawFn, name: str, routed: bool) -> dict[str, Any]:
    """A dedicated pool (reserved or autoscaled) or a GPU cluster of Llama-3.1-8B replicas,
    with fixed or roofline speeds; `routed` says whether some route will use it."""
    performance = draw(
        st.sampled_from(
            [
                {"model": "fixed", "prefill_tokens_per_s": 20_000, "tpot": 0.02},
                {"model": "roofline", "precision": "fp8"},
                # a KV cache of ~11,000 tokens: admission and preemption bind
                {"model": "roofline", "precision": "fp8", "memory_fraction": 0.01},
            ]
        )
    )
    spec: dict[str, Any] = {
        "name": name,
        "model": "a",
        "gpu": "H100-SXM",
        "price_per_gpu_hour": draw(st.floats(0.5, 10)),
        "max_batch": draw(st.integers(1, 64)),
        "performance": performance,
        "kv_admission": draw(st.sampled_from(["reserve", "optimistic"])),
        "prefill": draw(st.sampled_from(["separate", "fused"])),
    }
    if draw(st.booleans()):
        spec["max_queue"] = draw(st.integers(0, 16))
    failing = draw(st.booleans())
    if failing:  # replicas fail and come back, often within a short horizon
        spec["failures"] = {
            "mtbf": draw(st.floats(10, 600)),
            "repair": draw(st.floats(0, 120)),
            "retries": draw(st.integers(0, 2)),
        }
    kind = draw(st.sampled_from(["reserved", "autoscaled", "cluster"]))
    if kind == "cluster":
        return {
            **spec,
            "kind": "gpu_cluster",
            "gpus": draw(st.integers(1, 3)),
            "extras_per_month": 100.0,
        }
    if kind == "autoscaled":
        low = draw(st.integers(0, 2))
        spec["replicas"] = {
            "min": low,
            "max": low + draw(st.integers(1, 3)),
            "interval": draw(st.floats(10, 120)),
            "scale_up_delay": draw(st.floats(0, 120)),
            "scale_down_delay": draw(st.floats(0, 300)),
        }
    else:
        spec["replicas"] = draw(st.integers(1, 3))
        if spec["kv_admission"] == "reserve" and not failing and draw(st.booleans()):
            # prefill/decode disaggregation: prompts on replicas of their own
            spec["disaggregation"] = {
                "prefill_replicas": draw(st.integers(1, 2)),
                "prefill_max_batch": draw(st.integers(1, 16)),
                "prefill_gpu": draw(st.sampled_from(["H100-SXM", "H200"])),
                "kv_transfer_gb_per_s": draw(st.floats(0.01, 100)),
            }
    return {**spec, "kind": "dedicated"}


@st.composite
def fleet_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Scenarios with dedicated capacity: pools that take traffic and spill to serverless,
    and sometimes a reserved pool no route uses (its idle spend must still be carried)."""
    data = draw(scenarios())
    data["horizon"] = draw(st.floats(60, 600))
    data["models"]["a"] = {**data["models"]["a"], "architecture": {"like": "llama-3.1-8b"}}
    data["models"]["a"]["context_length"] = 40_000
    fleet = draw(fleets("pool", routed=True))
    deployments = [fleet, *data["deployments"]]
    if draw(st.booleans()):
        deployments.append(draw(fleets("spare", routed=False)))
    for workload in data["workloads"]:
        workload["model"] = "a"
        if draw(st.booleans()):
            workload["route"] = ["pool", *workload["route"]]
    data["deployments"] = deployments
    data["replications"] = draw(st.integers(1, 3))
    return data
