"""Planning a reservation: the smallest fleet that meets every SLO, the cheapest mix with
serverless overflow, what serverless and batch would cost, and the break-even."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.deployment_specs import DedicatedSpec
from simulator.errors import CapsimError
from simulator.runner import Result, run
from simulator.scenario import Scenario


@dataclass
class PlanPoint:
    replicas: int
    spillover: bool
    result: Result

    def row(self, deployment: str, workloads: list[str]) -> dict[str, Any]:
        report = self.result.report
        entries = [e for w in report["workloads"] if w["name"] in workloads for e in w["slo"]]
        attainments = [e["attainment"] for e in entries if e["attainment"] is not None]
        pool = next((d for d in report["deployments"] if d["name"] == deployment), None)
        return {
            "replicas": self.replicas,
            "spillover": self.spillover,
            "monthly_cost_usd": report["totals"]["monthly_cost_usd"],
            "slo_met": slo_met(report, workloads),
            "min_attainment": min(attainments) if attainments else None,
            "spilled": pool["spilled"] if pool else 0,
            "utilization": pool["utilization"] if pool else None,
        }


def slo_met(report: dict[str, Any], workloads: list[str]) -> bool:
    """Every SLO of these workloads met, in every replication when there are several."""
    for w in report["workloads"]:
        if w["name"] not in workloads:
            continue
        for entry in w["slo"]:
            if not entry["met"] or entry.get("met_share", 1.0) < 1.0:
                return False
    return True


def _variant(scenario: Scenario, name: str, replicas: int, spillover: bool) -> Scenario:
    """The scenario with `replicas` reserved replicas of `name` (0: none, traffic routed
    around it); without spillover, routes end at the deployment."""
    deployments = []
    for d in scenario.deployments:
        if d.name == name and replicas > 0:
            deployments.append(d.model_copy(update={"replicas": replicas}))
        elif d.name != name:
            deployments.append(d)
    workloads = []
    for w in scenario.workloads:
        route = list(w.route)
        if name in route:
            at = route.index(name)
            if not spillover:
                route = route[: at + 1]
            if replicas == 0:
                route.remove(name)
        workloads.append(w.model_copy(update={"route": route}))
    return scenario.model_copy(update={"deployments": deployments, "workloads": workloads})


def planned_deployment(scenario: Scenario, deployment: str | None) -> DedicatedSpec:
    """The dedicated deployment to size: the one named, or the scenario's first."""
    dedicated = [d for d in scenario.deployments if isinstance(d, DedicatedSpec)]
    if not dedicated:
        raise CapsimError(f"scenario {scenario.name!r} has no dedicated deployment to plan")
    if deployment is None:
        return dedicated[0]
    found = [d for d in dedicated if d.name == deployment]
    if not found:
        raise CapsimError(
            f"--deployment: no dedicated deployment named {deployment!r} "
            f"(dedicated: {', '.join(d.name for d in dedicated)})"
        )
    return found[0]


def plan(
    scenario: Scenario,
    deployment: str | None = None,
    max_replicas: int = 16,
    replications: int | None = None,
    progress: Callable[[float], None] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Search replica counts of a dedicated deployment; see the module docstring."""
    spec = planned_deployment(scenario, deployment)
    routed = [w.name for w in scenario.workloads if spec.name in w.route]
    if not routed:
        raise CapsimError(f"no workload routes to {spec.name!r}")
    reps = replications or max(scenario.replications, 3)
    can_spill = any(
        w.route.index(spec.name) < len(w.route) - 1
        for w in scenario.workloads
        if spec.name in w.route
    )
    total_runs = max_replicas * (2 if can_spill else 1) + 1
    done = 0

    def evaluate(n: int, spillover: bool) -> PlanPoint:
        nonlocal done

        def step(fraction: float) -> None:
            if progress is not None:
                progress(min(1.0, (done + fraction) / total_runs))

        result = run(
            _variant(scenario, spec.name, n, spillover),
            replications=reps,
            progress=step,
            force=force,
        )
        done += 1
        return PlanPoint(n, spillover, result)

    curve: list[PlanPoint] = []
    chosen: PlanPoint | None = None
    for n in range(1, max_replicas + 1):
        point = evaluate(n, False)
        curve.append(point)
        if slo_met(point.result.report, routed):
            chosen = point
            break
    mix: PlanPoint | None = None
    if can_spill:
        top = chosen.replicas if chosen else max_replicas
        for n in range(0, top + 1):
            point = evaluate(n, True)
            curve.append(point)
            if slo_met(point.result.report, routed) and (
                mix is None
                or point.result.report["totals"]["monthly_cost_usd"]
                < mix.result.report["totals"]["monthly_cost_usd"]
            ):
                mix = point
    if progress is not None:
        progress(1.0)
    return summarize(scenario, spec, routed, chosen, mix, curve, reps, max_replicas)


def _serverless_and_batch(
    scenario: Scenario, report: dict[str, Any], routed: list[str]
) -> tuple[float, float | None, float]:
    """Monthly cost of the routed workloads' tokens on serverless and on batch (None when a
    latency SLO rules batch out), and their monthly tokens."""
    scale = scenario.month / scenario.horizon
    serverless = batch = tokens = 0.0
    batch_allowed = True
    for w in report["workloads"]:
        if w["name"] not in routed:
            continue
        spec = scenario.workload(w["name"])
        model = scenario.models[spec.model]
        price = model.serverless_price
        batch_price = model.batch_price
        n_in, n_out = w["input_tokens"] * scale, w["output_tokens"] * scale
        tokens += n_in + n_out
        serverless += (n_in * price.input + n_out * price.output) / 1e6
        if batch_price is None:
            batch += (n_in * price.input + n_out * price.output) / 1e6 * 0.5
        else:
            batch += (n_in * batch_price.input + n_out * batch_price.output) / 1e6
        if any(key != "completion" for key in spec.slo):
            batch_allowed = False
    return serverless, (batch if batch_allowed else None), tokens


def summarize(
    scenario: Scenario,
    spec: DedicatedSpec,
    routed: list[str],
    chosen: PlanPoint | None,
    mix: PlanPoint | None,
    curve: list[PlanPoint],
    replications: int,
    max_replicas: int,
) -> dict[str, Any]:
    """The plan as the stable JSON of `capsim plan --format json`, with its verdict."""
    reference = (chosen or curve[-1]).result.report
    serverless, batch, tokens = _serverless_and_batch(scenario, reference, routed)
    pool = next(d for d in reference["deployments"] if d["name"] == spec.name)
    answer: dict[str, Any] = {
        "scenario": scenario.name,
        "deployment": spec.name,
        "gpu": pool.get("gpu"),
        "gpus_per_replica": spec.gpus_per_replica,
        "price_per_gpu_hour": pool.get("price_per_gpu_hour"),
        "replications": replications,
        "workloads": routed,
        "replicas": chosen.replicas if chosen else None,
        "monthly_cost_usd": chosen.result.report["totals"]["monthly_cost_usd"] if chosen else None,
        "slo_met": chosen is not None,
        "serverless_monthly_cost_usd": serverless,
        "batch_monthly_cost_usd": batch,
        "monthly_tokens": tokens,
        "break_even": None,
        "cheapest_mix": None,
        "curve": [p.row(spec.name, routed) for p in curve],
    }
    if chosen is not None:
        n = chosen.replicas
        hours = scenario.month / 3600
        fleet_monthly = n * spec.gpus_per_replica * float(pool["price_per_gpu_hour"]) * hours
        per_token = serverless / tokens if tokens else math.inf
        volume = fleet_monthly / per_token if per_token > 0 else math.inf
        peak = pool.get("modeled_max_output_tokens_per_s_per_replica")
        capacity = None
        if peak and pool["output_tokens"]:
            ratio = (pool["input_tokens"] + pool["output_tokens"]) / pool["output_tokens"]
            capacity = n * peak * ratio * scenario.month
        answer["break_even"] = {
            "reserved_monthly_cost_usd": fleet_monthly,
            "serverless_usd_per_1m_tokens": per_token * 1e6,
            "monthly_tokens": volume,
            "utilization": volume / capacity if capacity else None,
            "current_utilization": tokens / capacity if capacity else None,
        }
    if mix is not None:
        report = mix.result.report
        mix_pool = next((d for d in report["deployments"] if d["name"] == spec.name), None)
        answer["cheapest_mix"] = {
            "replicas": mix.replicas,
            "monthly_cost_usd": report["totals"]["monthly_cost_usd"],
            "spilled_share": (
                mix_pool["spilled"] / report["totals"]["requests"]
                if mix_pool and report["totals"]["requests"]
                else (1.0 if mix.replicas == 0 else 0.0)
            ),
        }
    answer["verdict"] = verdict(answer, max_replicas)
    answer["_results"] = chosen.result if chosen else (mix.result if mix else None)
    return answer


def _tokens(count: float) -> str:
    return f"{count / 1e9:,.1f}B" if count >= 1e9 else f"{count / 1e6:,.0f}M"


def verdict(a: dict[str, Any], max_replicas: int) -> str:
    """One paragraph a manager can read."""
    fleet = f"{a['gpus_per_replica']} x {a['gpu']}"
    names = ", ".join(a["workloads"])
    serverless = a["serverless_monthly_cost_usd"]
    if a["replicas"] is None:
        text = (
            f"No reservation of up to {max_replicas} replicas of {fleet} meets every SLO of "
            f"{names} on its own. Serverless would cost ${serverless:,.0f} a month."
        )
    else:
        cost = a["monthly_cost_usd"]
        be = a["break_even"]
        text = (
            f"Reserving {a['replicas']} replica{'s' if a['replicas'] > 1 else ''} of {fleet} "
            f"for {a['deployment']} meets every SLO of {names} in all "
            f"{a['replications']} replications, for ${cost:,.0f} a month"
            f"{'; one fewer does not' if a['replicas'] > 1 else ''}. The same traffic "
            f"({_tokens(a['monthly_tokens'])} tokens a month) "
            f"would cost ${serverless:,.0f} on serverless"
        )
        if a["batch_monthly_cost_usd"] is not None:
            text += f" and ${a['batch_monthly_cost_usd']:,.0f} on batch"
        text += (
            f". The reservation breaks even with serverless at "
            f"{_tokens(be['monthly_tokens'])} tokens a month"
        )
        if be["utilization"] is not None:
            text += (
                f" ({be['utilization']:.0%} of the fleet's modeled capacity; today "
                f"{be['current_utilization']:.0%})"
            )
        text += ". "
        text += (
            "It is justified: it costs less than serverless at this volume."
            if cost < serverless
            else f"It is not justified on cost: serverless is ${cost - serverless:,.0f} a month "
            "cheaper at this volume."
        )
    mix = a["cheapest_mix"]
    if mix is not None:
        text += (
            f" Cheapest mix that meets the SLOs: {mix['replicas']} reserved "
            f"replica{'s' if mix['replicas'] != 1 else ''} with "
            f"{mix['spilled_share']:.0%} of requests overflowing to the next route "
            f"entry, ${mix['monthly_cost_usd']:,.0f} a month."
        )
    return text


def plan_gpu_types(
    scenario: Scenario,
    gpus: list[str],
    deployment: str | None = None,
    max_replicas: int = 16,
    replications: int | None = None,
    progress: Callable[[float], None] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """`plan` for each GPU type; the answer is the cheapest that meets the SLOs, with every
    option listed in `gpu_options`. Another GPU keeps the deployment's settings and takes
    its bundled price (the scenario's own price stays with the scenario's own GPU)."""
    from pydantic import ValidationError

    from simulator.hardware import find_gpu
    from simulator.loader import format_validation_error

    name = planned_deployment(scenario, deployment).name
    plans: list[tuple[str, dict[str, Any] | None, str | None]] = []
    for k, gpu in enumerate(gpus):
        if find_gpu(gpu) is None:
            raise CapsimError(f"--gpus: unknown GPU {gpu!r}")
        data = scenario.model_dump(by_alias=True, exclude_none=True)
        for d in data["deployments"]:
            if d["name"] == name and find_gpu(d["gpu"]) != find_gpu(gpu):
                d["gpu"] = gpu
                d.pop("price_per_gpu_hour", None)
        try:
            variant = Scenario.model_validate(data, context={"month_s": scenario.month})
        except ValidationError as exc:
            plans.append((gpu, None, "; ".join(format_validation_error(exc, data))))
            continue

        def step(fraction: float, k: int = k) -> None:
            if progress is not None:
                progress((k + fraction) / len(gpus))

        plans.append((gpu, plan(variant, name, max_replicas, replications, step, force), None))
    options = [
        {
            "gpu": gpu,
            "replicas": p["replicas"] if p else None,
            "monthly_cost_usd": p["monthly_cost_usd"] if p else None,
            "slo_met": bool(p and p["slo_met"]),
            "error": error,
        }
        for gpu, p, error in plans
    ]
    feasible = [p for _, p, _ in plans if p is not None and p["slo_met"]]
    candidates = feasible or [p for _, p, _ in plans if p is not None]
    if not candidates:
        raise CapsimError(
            "no GPU type could be planned: "
            + "; ".join(f"{o['gpu']}: {o['error']}" for o in options)
        )
    best = min(candidates, key=lambda p: p["monthly_cost_usd"] or math.inf)
    best["gpu_options"] = options
    cheaper = ", ".join(
        f"{o['gpu']} ${o['monthly_cost_usd']:,.0f} ({o['replicas']})"
        for o in options
        if o["slo_met"] and o["monthly_cost_usd"] is not None
    )
    if cheaper:
        best["verdict"] += f" GPU types that meet the SLOs, monthly cost (replicas): {cheaper}."
    return best
