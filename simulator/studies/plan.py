"""Planning a reservation: the smallest fleet that meets every SLO, the cheapest mix with
serverless overflow, what serverless and batch would cost, and the break-even."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.engine import RunResult
from simulator.errors import CapsimError
from simulator.report.result import Result
from simulator.scenario.deployments import AnyDeploymentSpec, DedicatedSpec
from simulator.scenario.format import Scenario
from simulator.studies.cluster import evaluate_all
from simulator.studies.run import check_size, result_of, simulate_replications


@dataclass
class PlanPoint:
    """A fleet size tried: the replications run so far (replication 0 screens it, the
    others confirm it) and their combined result."""

    replicas: int
    spillover: bool
    runs: list[RunResult]
    result: Result

    @property
    def replications(self) -> int:
        return len(self.runs)

    def row(self, deployment: str, workloads: list[str]) -> dict[str, Any]:
        report = self.result.report
        entries = [e for w in report["workloads"] if w["name"] in workloads for e in w["slo"]]
        attainments = [e["attainment"] for e in entries if e["attainment"] is not None]
        pool = next((d for d in report["deployments"] if d["name"] == deployment), None)
        return {
            "replicas": self.replicas,
            "spillover": self.spillover,
            "replications": self.replications,
            "monthly_cost_usd": report["totals"]["monthly_cost_usd"],
            "slo_met": slo_met(report, workloads),
            "overloaded": bool(pool and pool.get("overloaded")),
            "offered_load": pool.get("offered_load") if pool else None,
            "min_attainment": min(attainments) if attainments else None,
            "spilled": pool["spilled"] if pool else 0,
            "overflowed": pool["spilled"] if pool and self.spillover else 0,
            **refusals(report, workloads),
            "utilization": pool["utilization"] if pool else None,
        }


def refused(workload: dict[str, Any]) -> float:
    """Requests of a workload's report row turned away for want of room (a full queue, no
    capacity anywhere on its route): every rejection but a prompt too long for the model,
    which no fleet can serve. A mean over replications when there are several."""
    return float(workload["rejected"] - workload.get("rejected_context_length", 0))


def refusals(report: dict[str, Any], workloads: list[str]) -> dict[str, Any]:
    """What these workloads had refused: requests in the run, a month, and their share."""
    rows = [w for w in report["workloads"] if w["name"] in workloads]
    count = sum(refused(w) for w in rows)
    arrived = sum(w["requests"] for w in rows)
    return {
        "refused": count,
        "refused_monthly": count * report["month_s"] / report["horizon_s"],
        "refused_share": count / arrived if arrived else 0.0,
    }


def slo_met(report: dict[str, Any], workloads: list[str]) -> bool:
    """Every SLO of these workloads met, in every replication when there are several.

    A refused request is a failed one: a workload with an `availability` SLO is judged by
    it (an entry of its `slo` list); one without may have none refused (docs/model.md)."""
    for w in report["workloads"]:
        if w["name"] not in workloads:
            continue
        for entry in w["slo"]:
            if not entry["met"] or entry.get("met_share", 1.0) < 1.0:
                return False
        if refused(w) > 0 and not any(e["metric"] == "availability" for e in w["slo"]):
            return False
    return True


def holds(report: dict[str, Any], deployment: str, workloads: list[str]) -> bool:
    """A fleet a plan may choose: every SLO met, and the deployment not overloaded in any
    replication (an overloaded queue grows without bound: a run's SLOs then say how long
    the run was, not how the fleet does in steady state)."""
    pool = next((d for d in report["deployments"] if d["name"] == deployment), None)
    return slo_met(report, workloads) and not (pool and pool.get("overloaded"))


MIN_TAIL_SAMPLES = 10
"""Requests beyond an SLO's quantile below which the observed quantile means little."""


def sample_warnings(report: dict[str, Any], workloads: list[str]) -> list[str]:
    """SLO quantiles that rest on too few requests beyond them (p99 of 300 requests: 3)."""
    warnings = []
    for w in report["workloads"]:
        if w["name"] not in workloads:
            continue
        for entry in w["slo"]:
            q = entry["quantile"]
            if q is None:  # availability: a share of all requests, not a tail
                continue
            total = entry["samples"] + entry["rejected"]
            tail = total * (1 - q)
            if q < 1 and tail < MIN_TAIL_SAMPLES:
                needed = math.ceil(MIN_TAIL_SAMPLES / (1 - q))
                warnings.append(
                    f"{w['name']} {entry['key']} rests on {total:,.0f} measured requests, "
                    f"{tail:.1f} of them beyond the quantile: too few for it to mean much. "
                    f"Lengthen the horizon to hold at least {needed:,} requests."
                )
    return warnings


def capacity_bound(scenario: Scenario, spec: DedicatedSpec) -> tuple[int, float | None]:
    """The fewest replicas the modeled capacity allows, and the offered output tokens/s: the
    traffic of the workloads whose route starts at the deployment (all of it reaches it)
    over one replica's saturated throughput for their mean request. Fewer replicas would be
    overloaded on the model's own numbers (their `offered_load` over 1)."""
    from simulator.deployments.capacity import spec_capacity
    from simulator.serving.performance import build_step_model
    from simulator.traffic.draw import scenario_traffic

    first = [w for w in scenario.workloads if w.route and w.route[0] == spec.name]
    if not first or any(w.arrivals.closed_loop for w in first):
        return 1, None
    arch = scenario.models[spec.model].resolved_architecture(spec.model)
    traffic = dict(
        zip([w.name for w in scenario.workloads], scenario_traffic(scenario), strict=True)
    )
    limits = {w.name: scenario.models[w.model].context_length for w in first}
    n_in = n_out = count = 0.0
    for w in first:
        t = traffic[w.name]
        fits = t.input_tokens + t.output_tokens <= (limits[w.name] or np.iinfo(np.int64).max)
        if spec.max_input_tokens is not None:  # longer prompts pass to the next entry
            fits &= t.input_tokens <= spec.max_input_tokens
        n_in += float(t.input_tokens[fits].sum())
        n_out += float(t.output_tokens[fits].sum())
        count += int(fits.sum())
    if not count:
        return 1, None
    model = build_step_model(spec, arch)
    per_replica = spec_capacity(model, spec, n_in / count, n_out / count)
    offered = n_out / scenario.horizon
    return max(1, math.ceil(offered / per_replica - 1e-9)), offered


class _Search:
    """Evaluations of fleet sizes, each replication run once: replication 0 screens a size
    (it fails if it fails there, since a plan needs every replication to hold), the others
    confirm the size that passed."""

    def __init__(
        self,
        scenario: Scenario,
        name: str,
        routed: list[str],
        replications: int,
        progress: Callable[[float], None] | None,
        expected_runs: int,
        workers: int = 1,
        dask: str | None = None,
    ) -> None:
        self.workers = workers
        self.dask = dask  # a Dask scheduler's address: replications run there
        self.scenario = scenario
        self.name = name
        self.routed = routed
        self.replications = replications
        self.progress = progress
        self.points: dict[tuple[int, bool], PlanPoint] = {}
        self.order: list[PlanPoint] = []
        self.runs = 0
        self.expected = expected_runs

    def _step(self, fraction: float) -> None:
        if self.progress is not None:
            self.progress(min(0.99, (self.runs + fraction) / max(self.expected, self.runs + 1)))

    def _ran(self, _share: float) -> None:
        self._step(0.0)  # a run done on another process (counted in `runs` already)

    def missing(self, n: int, spillover: bool, replications: int) -> range:
        """Size `n`'s replications below `replications` not run yet."""
        point = self.points.get((n, spillover))
        return range(len(point.runs) if point else 0, replications)

    def variant(self, n: int, spillover: bool) -> Scenario:
        return _variant(self.scenario, self.name, n, spillover)

    def store(self, n: int, spillover: bool, variant: Scenario, new: list[RunResult]) -> PlanPoint:
        """Size `n` with the runs it had and `new` (the next replications, in order)."""
        key = (n, spillover)
        old = self.points.get(key)
        runs = (old.runs if old else []) + new
        point = PlanPoint(n, spillover, runs, result_of(variant, runs))
        if old is None:
            self.order.append(point)
        else:
            self.order[self.order.index(old)] = point
        self.points[key] = point
        return point

    def evaluate(self, n: int, spillover: bool, replications: int) -> PlanPoint:
        """Size `n` with its first `replications` replications (those not run yet now)."""
        if self.workers > 1 or self.dask:  # independent replications, run elsewhere at once
            evaluate_all([(self, n, spillover)], replications, self.workers, self._ran, self.dask)
        todo = self.missing(n, spillover, replications)
        if not todo:
            return self.points[(n, spillover)]
        variant = self.variant(n, spillover)
        new: list[RunResult] = []
        for rep in todo:
            new += simulate_replications(variant, range(rep, rep + 1), self._step)
            self.runs += 1
        return self.store(n, spillover, variant, new)

    def passes(self, n: int, spillover: bool, confirm: bool) -> bool:
        """Whether size `n` holds on replication 0 (a screen) or on all (`confirm`). Run one
        at a time, a confirmation stops at the first replication that fails (a size fails
        if any does: `slo_met`); run elsewhere in parallel, all are run at once."""
        if confirm and self.workers <= 1 and not self.dask:
            for k in range(2, self.replications + 1):
                if not holds(self.evaluate(n, spillover, k).result.report, self.name, self.routed):
                    return False
        point = self.evaluate(n, spillover, self.replications if confirm else 1)
        return holds(point.result.report, self.name, self.routed)

    def smallest(self, low: int, high: int, spillover: bool) -> int | None:
        """The fewest replicas in [low, high] that hold in every replication, assuming more
        replicas never hold less: screen up from `low` in doubling steps, bisect the bracket,
        then confirm (and screen again above a size that fails its confirmation)."""
        while low <= high:
            fail, step, n = low - 1, 1, low
            found = None
            while n <= high:  # bracket on screens
                if self.passes(n, spillover, confirm=False):
                    found = n
                    break
                fail, n, step = n, min(high, n + step) if n < high else high + 1, step * 2
            if found is None:
                return None
            while found - fail > 1:  # bisect on screens
                mid = (fail + found) // 2
                if self.passes(mid, spillover, confirm=False):
                    found = mid
                else:
                    fail = mid
            if self.passes(found, spillover, confirm=True):
                return found
            low = found + 1  # a later replication failed it: look higher
        return None


def plan(
    scenario: Scenario,
    deployment: str | None = None,
    max_replicas: int = 16,
    replications: int | None = None,
    progress: Callable[[float], None] | None = None,
    force: bool = False,
    workers: int = 1,
    dask: str | None = None,
    spare: int = 0,
) -> dict[str, Any]:
    """Size a dedicated deployment: the fewest reserved replicas that hold every SLO of the
    workloads routed to it, not overloaded, in every replication; then the cheapest size
    with overflow to the rest of the route. The search starts at the capacity bound (fewer
    replicas are overloaded on the model's numbers), brackets and bisects on one
    replication a size, and confirms only the answer with the others."""
    spec = planned_deployment(scenario, deployment)
    routed = [w.name for w in scenario.workloads if spec.name in w.route]
    if not routed:
        raise CapsimError(f"no workload routes to {spec.name!r}")
    reps = replications or max(scenario.replications, 3)
    check_size(scenario, reps, force)
    can_spill = any(
        w.route.index(spec.name) < len(w.route) - 1
        for w in scenario.workloads
        if spec.name in w.route
    )
    bound, offered = capacity_bound(scenario, spec)
    search = _Search(scenario, spec.name, routed, reps, progress, reps + 3, workers, dask)
    chosen_n = search.smallest(min(bound, max_replicas), max_replicas, spillover=False)
    chosen = search.points[(chosen_n, False)] if chosen_n is not None else None
    if spare and chosen_n is not None:  # N hold the SLOs: N + K hold them with K down
        chosen = search.evaluate(chosen_n + spare, False, reps)
    mix = _cheapest_mix(search, chosen_n or max_replicas) if can_spill else None
    if progress is not None:
        progress(1.0)
    curve = sorted(search.order, key=lambda p: (p.spillover, p.replicas))
    answer = summarize(scenario, spec, routed, chosen, mix, curve, reps, max_replicas)
    reference = chosen or (curve[-1] if curve else None)
    warnings = sample_warnings(reference.result.report, routed) if reference else []
    answer["capacity_bound"] = {"replicas": bound, "offered_output_tokens_per_s": offered}
    answer["search"] = {"runs": search.runs, "sizes_tried": len(search.order)}
    answer["warnings"] = warnings
    answer["spare"] = spare
    answer["verdict"] = verdict(answer, max_replicas)
    if spare and chosen_n is not None:
        answer["verdict"] += (
            f" With {spare} spare: {chosen_n} replicas meet the SLOs, so {chosen_n + spare} "
            f"still do with {spare} down."
        )
    if warnings:
        answer["verdict"] += " Caution: " + " ".join(warnings)
    return answer


def _cheapest_mix(search: _Search, top: int) -> PlanPoint | None:
    """The cheapest size in [0, top] with overflow to the rest of the route that holds every
    SLO: none at all, and a ternary search of [1, top] on screens (the fleet's cost grows
    linearly with its size, the overflow's shrinks with diminishing returns, so their sum
    has one minimum; sizes too small to hold come first), then the best screened sizes
    confirmed in order."""

    def cost(n: int) -> float:
        point = search.evaluate(n, True, 1)
        if not holds(point.result.report, search.name, search.routed):
            return math.inf
        return float(point.result.report["totals"]["monthly_cost_usd"])

    cost(0)  # no reservation, all of it overflowing: feasible apart from the rest
    low, high = min(1, top), top
    while high - low > 2:
        a = low + (high - low) // 3
        b = high - (high - low) // 3
        if cost(a) == cost(b) == math.inf:  # too small to hold: more replicas are needed
            low = b + 1
        elif cost(a) < cost(b):
            high = b - 1
        elif cost(a) > cost(b):
            low = a + 1
        else:
            low, high = a, b
    for n in range(low, high + 1):
        cost(n)
    screened = sorted(
        (p for p in search.order if p.spillover),
        key=lambda p: (cost(p.replicas), p.replicas),
    )
    for point in screened:
        if cost(point.replicas) == math.inf:
            break
        if search.passes(point.replicas, True, confirm=True):
            return search.points[(point.replicas, True)]
    return None


def _variant(scenario: Scenario, name: str, replicas: int, spillover: bool) -> Scenario:
    """The scenario with `replicas` reserved replicas of `name` (0: none, traffic routed
    around it); without spillover, routes end at the deployment."""
    deployments: list[AnyDeploymentSpec] = []
    for d in scenario.deployments:
        if d.name == name and replicas > 0:
            assert isinstance(d, DedicatedSpec)
            deployments.append(d.with_replicas(replicas))
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
        batch_price = scenario.models[spec.model].batch_price
        n_in, n_out = w["input_tokens"] * scale, w["output_tokens"] * scale
        tokens += n_in + n_out
        listed = w["serverless_list_cost_usd"]  # long-context tiers per request
        serverless += listed * scale
        if batch_price is None:
            batch += listed * scale * 0.5
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
    chosen_refusals = refusals(chosen.result.report, routed) if chosen else None
    answer: dict[str, Any] = {
        "scenario": scenario.name,
        "deployment": spec.name,
        "gpu": pool.get("gpu"),
        "gpus_per_replica": spec.gpus_per_replica,
        "price_per_gpu_hour": pool.get("price_per_gpu_hour"),
        "performance_model": pool.get("performance_model"),
        "engine": pool.get("engine"),
        "engine_version": pool.get("engine_version"),
        "replications": replications,
        "workloads": routed,
        "replicas": chosen.replicas if chosen else None,
        "monthly_cost_usd": chosen.result.report["totals"]["monthly_cost_usd"] if chosen else None,
        "slo_met": chosen is not None,
        "refused_monthly": chosen_refusals["refused_monthly"] if chosen_refusals else None,
        "refused_share": chosen_refusals["refused_share"] if chosen_refusals else None,
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
        if spec.billing is not None:  # a commitment's monthly minimum
            fleet_monthly = max(fleet_monthly, spec.billing.minimum_monthly_usd)
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
        spilled_share = (
            mix_pool["spilled"] / report["totals"]["requests"]
            if mix_pool and report["totals"]["requests"]
            else (1.0 if mix.replicas == 0 else 0.0)
        )
        mix_refusals = refusals(report, routed)
        answer["cheapest_mix"] = {
            "replicas": mix.replicas,
            "monthly_cost_usd": report["totals"]["monthly_cost_usd"],
            "spilled_share": spilled_share,
            "overflowed_monthly": spilled_share
            * report["totals"]["requests"]
            * report["month_s"]
            / report["horizon_s"],
            "refused_monthly": mix_refusals["refused_monthly"],
            "refused_share": mix_refusals["refused_share"],
        }
    answer["verdict"] = verdict(answer, max_replicas)
    answer["_results"] = chosen.result if chosen else (mix.result if mix else None)
    # what the report written beside the plan simulated: the fleet alone (the route cut
    # after the deployment) or the fleet with its overflow (the scenario's route)
    answer["simulated_route"] = (
        "the fleet alone: routes end at the deployment, so the rest of each route is idle"
        if chosen
        else ("the scenario's route: the fleet with its overflow" if mix else None)
    )
    return answer


def _tokens(count: float) -> str:
    return f"{count / 1e9:,.1f}B" if count >= 1e9 else f"{count / 1e6:,.0f}M"


def _fewer(a: dict[str, Any]) -> str:
    """Why no smaller fleet: tried and failed, or overloaded on the modeled capacity."""
    if a["replicas"] <= 1:
        return ""
    bound = (a.get("capacity_bound") or {}).get("replicas") or 1
    if a["replicas"] - 1 < bound:
        return "; fewer would be overloaded (offered work above their modeled capacity)"
    fewer = next(
        (r for r in a["curve"] if r["replicas"] == a["replicas"] - 1 and not r["spillover"]), None
    )
    if fewer is not None and fewer["refused"] and fewer["slo_met"] is False:
        return (
            f"; one fewer refuses {_count(fewer['refused_monthly'])} requests a month "
            f"({fewer['refused_share']:.2%})"
        )
    return "; one fewer does not"


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
            f"{_fewer(a)}. The same traffic "
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
        if a.get("refused_monthly"):
            text += (
                f"It refuses {_count(a['refused_monthly'])} requests a month "
                f"({a['refused_share']:.2%}), within the workloads' availability SLO. "
            )
        text += (
            "It is justified: it costs less than serverless at this volume."
            if cost < serverless
            else f"It is not justified on cost: serverless is ${cost - serverless:,.0f} a month "
            "cheaper at this volume."
        )
    mix = a["cheapest_mix"]
    if (
        mix is not None
        and a["monthly_cost_usd"] is not None
        and (mix["monthly_cost_usd"] >= a["monthly_cost_usd"])
    ):
        extra = mix["monthly_cost_usd"] - a["monthly_cost_usd"]
        if (a.get("refused_monthly") or 0) > (mix.get("refused_monthly") or 0):
            text += (  # like with like: the fleet alone refuses what the overflow serves
                f" For ${extra:,.0f} more a month, overflowing to the next route entry serves "
                f"the requests the fleet alone refuses: its cheapest mix, {mix['replicas']} "
                f"replica{'s' if mix['replicas'] != 1 else ''}{_overflow(mix)}, costs "
                f"${mix['monthly_cost_usd']:,.0f} a month."
            )
        else:
            text += (
                f" Overflowing to the next route entry saves nothing: its cheapest mix, "
                f"{mix['replicas']} replica{'s' if mix['replicas'] != 1 else ''}"
                f"{_overflow(mix)}, costs ${mix['monthly_cost_usd']:,.0f} a month."
            )
    elif mix is not None:
        text += (
            f" Cheapest mix that meets the SLOs: {mix['replicas']} reserved "
            f"replica{'s' if mix['replicas'] != 1 else ''}{_overflow(mix)}, "
            f"${mix['monthly_cost_usd']:,.0f} a month."
        )
    return text


def _count(requests: float) -> str:
    """A monthly request count as a person reads it: whole requests, at least one."""
    return f"{max(1.0, requests):,.0f}"


def _overflow(mix: dict[str, Any]) -> str:
    """What a mix sends on and what it still refuses, a month."""
    monthly = mix.get("overflowed_monthly")
    text = f" with {mix['spilled_share']:.1%} of requests overflowing to the next route entry"
    if monthly:
        text += f" ({_count(monthly)} a month)"
    if mix.get("refused_monthly"):
        text += (
            f", {_count(mix['refused_monthly'])} a month ({mix['refused_share']:.2%}) still refused"
        )
    return text


def gpu_variant(
    scenario: Scenario,
    name: str,
    gpu: str,
    gpu_prices: dict[str, float] | None,
    tp: int | None = None,
    engine: str | None = None,
) -> tuple[Scenario | None, str | None]:
    """The scenario with deployment `name` on `gpu` (its settings kept; its price from
    `gpu_prices`, else the bundled one; a commitment stays with the scenario's own GPU), with
    `tp` GPUs a replica and `engine`'s measured kernels when given, or None and why it is not
    valid (a GPU without a price, a model that does not fit, kernels that do not cover it)."""
    from pydantic import ValidationError

    from simulator.scenario.loader import format_validation_error
    from simulator.serving.hardware import find_gpu

    found = find_gpu(gpu)
    if found is None:
        raise CapsimError(f"--gpus: unknown GPU {gpu!r}")
    data = scenario.model_dump(by_alias=True, exclude_none=True)
    for d in data["deployments"]:
        if d["name"] != name:
            continue
        if find_gpu(d["gpu"]) != found:
            d["gpu"] = gpu
            d.pop("price_per_gpu_hour", None)
            d.pop("billing", None)  # a commitment is for the scenario's own GPU
            for key, price in (gpu_prices or {}).items():
                if find_gpu(key) == found:
                    d["price_per_gpu_hour"] = price
        if tp is not None:
            d["gpus_per_replica"] = tp
        if engine is not None:
            given = d.get("performance") or {}
            kept = {k: given[k] for k in ("precision", "kv_precision") if k in given}
            d["performance"] = {"model": "kernels", "engine": engine, **kept}
    try:
        return Scenario.model_validate(data, context={"month_s": scenario.month}), None
    except ValidationError as exc:
        problems = format_validation_error(exc, data)
        return None, "; ".join(p.split(": ", 1)[-1] if p.startswith("deployments") else p
                               for p in problems)  # fmt: skip


def plan_gpu_types(
    scenario: Scenario,
    gpus: list[str],
    deployment: str | None = None,
    max_replicas: int = 16,
    replications: int | None = None,
    progress: Callable[[float], None] | None = None,
    force: bool = False,
    workers: int = 1,
    gpu_prices: dict[str, float] | None = None,
    tps: list[int] | None = None,
    engines: list[str] | None = None,
    dask: str | None = None,
) -> dict[str, Any]:
    """`plan` for each replica shape — GPU type (`gpus`; empty: the deployment's own), GPUs
    a replica (`tps`) and engine (`engines`, measured kernels) — the answer the cheapest that
    meets the SLOs, with every option listed in `gpu_options` (a cost, or `error` saying why
    it cannot serve the model). Another GPU keeps the deployment's settings and takes its
    price from `gpu_prices` (`--gpu-prices`), else its bundled one (the scenario's own price
    stays with the scenario's own GPU)."""
    spec = planned_deployment(scenario, deployment)
    name = spec.name
    tp_options: list[int | None] = list(tps) if tps else [None]
    engine_options: list[str | None] = list(engines) if engines else [None]
    shapes = [
        (gpu, tp, engine)
        for gpu in (gpus or [spec.gpu])
        for tp in tp_options
        for engine in engine_options
    ]
    plans: list[tuple[tuple[str, int | None, str | None], dict[str, Any] | None, str | None]]
    plans = []
    for k, (gpu, tp, engine) in enumerate(shapes):
        variant, error = gpu_variant(scenario, name, gpu, gpu_prices, tp, engine)
        if variant is None:
            plans.append(((gpu, tp, engine), None, error))
            continue

        def step(fraction: float, k: int = k) -> None:
            if progress is not None:
                progress((k + fraction) / len(shapes))

        try:
            found = plan(variant, name, max_replicas, replications, step, force, workers, dask)
        except CapsimError as exc:  # e.g. a shape too slow for one request to fit a run
            plans.append(((gpu, tp, engine), None, str(exc)))
            continue
        plans.append(((gpu, tp, engine), found, None))
    options = []
    for (gpu, tp_asked, engine_asked), p, error in plans:
        pool = p or {}
        options.append(
            {
                "gpu": gpu,
                "gpus_per_replica": tp_asked if tp_asked is not None else spec.gpus_per_replica,
                "engine": pool.get("engine", engine_asked),
                "performance_model": pool.get("performance_model"),
                "replicas": p["replicas"] if p else None,
                "monthly_cost_usd": p["monthly_cost_usd"] if p else None,
                "slo_met": bool(p and p["slo_met"]),
                "error": error,
            }
        )
    feasible = [p for _, p, _ in plans if p is not None and p["slo_met"]]
    candidates = feasible or [p for _, p, _ in plans if p is not None]
    if not candidates:
        raise CapsimError(
            "no replica shape could be planned: "
            + "; ".join(f"{_shape_label(o)}: {o['error']}" for o in options)
        )
    best = min(candidates, key=lambda p: p["monthly_cost_usd"] or math.inf)
    best["gpu_options"] = options
    cheaper = ", ".join(
        f"{_shape_label(o)} ${o['monthly_cost_usd']:,.0f} ({o['replicas']})"
        for o in options
        if o["slo_met"] and o["monthly_cost_usd"] is not None
    )
    if cheaper:
        best["verdict"] += (
            f" Replica shapes that meet the SLOs, monthly cost (replicas): {cheaper}."
        )
    return best


def _shape_label(option: dict[str, Any]) -> str:
    """`2 x H100-SXM (vllm)`: a replica shape as the verdict and the table name it."""
    label = f"{option['gpus_per_replica']} x {option['gpu']}"
    return label + (f" ({option['engine']})" if option.get("engine") else "")
