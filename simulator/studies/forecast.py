"""A reservation decided a year ahead (`capsim plan --months N --growth G`): traffic growing
month by month, the fleet each month needs, and what each way of buying costs over the term.

Month m (m = 1..N) carries the scenario's traffic x (1 + G)^(m - 1): every workload's rate
scaled (`ArrivalProcess.scaled`), its shape kept. A month is the scenario's horizon
simulated at that traffic and priced per month as every run is (the horizon is the
representative window; see docs/model.md, "Time"). Month 1 is the plain plan.

Strategies, each priced month by month from simulated runs:

- `serverless`: the deployment left out, its traffic served by the rest of its route (when
  the route has nothing else: the model's serverless price, not simulated);
- `reserve-R`: R replicas committed for the whole forecast (the deployment's `billing` rate
  and monthly minimum when it has them), what they cannot take overflowing to the rest of
  the route;
- `on-demand`: each month the fleet that month needs (`replicas_needed`) at the list price,
  no commitment (resized month by month, not within a month).

The recommendation is the cheapest strategy whose SLOs hold in every month (with
serverless: wherever they are simulated). With `--growth-sd S`, each month's growth is
uncertain, drawn per path from a normal law of mean G and standard deviation S; a
strategy's monthly cost at any traffic is interpolated between runs at a grid of traffic
levels that covers the paths (linear in traffic between them), and
`p_reservation_costs_more` is the share of paths where the recommended reservation (or
the cheapest one, when serverless is recommended) costs more than serverless over the term.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from simulator.errors import CapsimError
from simulator.scenario.deployments import DedicatedSpec
from simulator.scenario.format import Scenario
from simulator.studies.cluster import evaluate_all
from simulator.studies.plan import (
    _Search,
    _serverless_and_batch,
    capacity_bound,
    holds,
    plan,
    planned_deployment,
)

MAX_MONTHS = 120
PATHS = 2000  # growth paths drawn with --growth-sd
GRID_POINTS = 7  # traffic levels simulated for the paths, besides the months'
EXHAUSTIVE = 12  # reserve every R up to this many replicas; beyond, a ternary search


def scaled_scenario(scenario: Scenario, factor: float) -> Scenario:
    """The scenario with every workload's traffic x `factor` (CapsimError naming a workload
    whose arrivals have no rate to scale)."""
    if factor == 1.0:
        return scenario
    workloads = []
    for w in scenario.workloads:
        try:
            arrivals = w.arrivals.scaled(factor)
        except ValueError as exc:
            raise CapsimError(f"workloads.{w.name}.arrivals: {exc}") from None
        workloads.append(w.model_copy(update={"arrivals": arrivals}))
    return scenario.model_copy(update={"workloads": workloads})


def growth_factors(months: int, growth: float) -> list[float]:
    """Traffic of month 1..months against month 1: compounding growth."""
    return [(1.0 + growth) ** k for k in range(months)]


class _Month:
    """One traffic level: the plan's search over fleet sizes on the scaled scenario."""

    def __init__(
        self,
        scenario: Scenario,
        spec: DedicatedSpec,
        routed: list[str],
        factor: float,
        replications: int,
        workers: int = 1,
        dask: str | None = None,
    ) -> None:
        self.factor = factor
        self.scenario = scaled_scenario(scenario, factor)
        self.spec = spec
        self.routed = routed
        self.search = _Search(
            self.scenario, spec.name, routed, replications, None, 1, workers, dask
        )
        self.needed: int | None = None
        self._listed: _Search | None = None

    @property
    def runs(self) -> int:
        return self.search.runs + (self._listed.runs if self._listed is not None else 0)

    def listed(self) -> _Search:
        """The month's search at the deployment's list price (its commitment left out)."""
        if self._listed is None:
            spec = self.spec.model_copy(update={"billing": None})
            deployments = [spec if d.name == spec.name else d for d in self.scenario.deployments]
            variant = self.scenario.model_copy(update={"deployments": deployments})
            search = self.search
            self._listed = _Search(
                variant, spec.name, self.routed, search.replications, None, 1, search.workers,
                search.dask,
            )  # fmt: skip
        return self._listed

    def size(self, low: int, max_replicas: int) -> int | None:
        bound, _ = capacity_bound(self.scenario, self.spec)
        start = min(max(low, bound), max_replicas)
        self.needed = self.search.smallest(start, max_replicas, spillover=False)
        return self.needed

    def cost(self, replicas: int, spillover: bool) -> tuple[float, bool]:
        """Monthly cost and whether the SLOs hold, with `replicas` reserved replicas."""
        point = self.search.evaluate(replicas, spillover, self.search.replications)
        report = point.result.report
        return float(report["totals"]["monthly_cost_usd"]), holds(
            report, self.spec.name, self.routed
        )

    def serverless(self, can_spill: bool) -> tuple[float, bool | None]:
        """All of the deployment's traffic on the rest of its route (simulated), or at the
        model's serverless price when the route has nothing else (not simulated: None)."""
        if can_spill:
            return self.cost(0, True)
        point = self.search.evaluate(max(self.needed or 1, 1), False, 1)
        report = point.result.report
        name = self.spec.name
        others = float(report["totals"]["monthly_cost_usd"]) - sum(
            float(d["monthly_cost_usd"]) for d in report["deployments"] if d["name"] == name
        )
        priced, _, _ = _serverless_and_batch(self.scenario, report, self.routed)
        return others + priced, None

    def on_demand_size(self, max_replicas: int) -> int:
        return self.needed if self.needed is not None else max_replicas

    def on_demand(self, max_replicas: int) -> tuple[float, bool]:
        """The month's own fleet at the list price (no commitment, no minimum)."""
        n = self.on_demand_size(max_replicas)
        if self.spec.billing is None:
            cost, ok = self.cost(n, False)
            return cost, ok and self.needed is not None
        point = self.listed().evaluate(n, False, self.search.replications)
        report = point.result.report
        ok = holds(report, self.spec.name, self.routed) and self.needed is not None
        return float(report["totals"]["monthly_cost_usd"]), ok


def forecast(
    scenario: Scenario,
    months: int,
    growth: float,
    growth_sd: float | None = None,
    deployment: str | None = None,
    max_replicas: int = 16,
    replications: int | None = None,
    progress: Callable[[float], None] | None = None,
    force: bool = False,
    workers: int = 1,
    paths: int = PATHS,
    dask: str | None = None,
) -> dict[str, Any]:
    """The plan for month 1, with a `forecast` of `months` months of `growth` a month."""
    if not 1 <= months <= MAX_MONTHS:
        raise CapsimError(f"--months: expected 1 to {MAX_MONTHS}, got {months}")
    if not -0.5 <= growth <= 2.0:
        raise CapsimError(f"--growth: expected -50% to 200% a month, got {growth:.0%}")
    if growth_sd is not None and not 0 <= growth_sd <= 1.0:
        raise CapsimError(f"--growth-sd: expected 0 to 100% a month, got {growth_sd:.0%}")
    spec = planned_deployment(scenario, deployment)
    factors = growth_factors(months, growth)
    if months > 1:  # refuse unscalable traffic (a closed loop) before any run
        scaled_scenario(scenario, 2.0)

    shown = 0.0  # progress only goes forward (runs done ahead are counted once)

    def step(share: float, low: float, high: float) -> None:
        nonlocal shown
        shown = max(shown, min(0.99, low + (high - low) * share))
        if progress is not None:
            progress(shown)

    answer = plan(
        scenario, spec.name, max_replicas, replications, lambda s: step(s, 0.0, 0.2), force,
        workers, dask,
    )  # fmt: skip
    routed = answer["workloads"]
    can_spill = any(
        w.route.index(spec.name) < len(w.route) - 1
        for w in scenario.workloads
        if spec.name in w.route
    )
    reps = scenario.replications
    levels: dict[float, _Month] = {}

    def level(factor: float) -> _Month:
        key = round(factor, 12)
        if key not in levels:
            levels[key] = _Month(scenario, spec, routed, factor, reps, workers, dask)
        return levels[key]

    # the fleet each month needs: never fewer than the month before while traffic grows
    needed: list[int | None] = []
    low = answer["replicas"] or 1
    for k, f in enumerate(factors):
        month = level(f)
        n = answer["replicas"] if k == 0 else month.size(low if growth >= 0 else 1, max_replicas)
        month.needed = n
        needed.append(n)
        if n is not None and growth >= 0:
            low = n
        step((k + 1) / months, 0.2, 0.5)
    top = max([n for n in needed if n is not None] or [max_replicas])

    def run_all(sizes: list[tuple[float, int]], low: float, high: float) -> None:
        """Every month's runs at these (traffic, replicas), on `workers` processes at once."""
        wanted = [(level(f).search, r, can_spill) for f, r in sizes]
        evaluate_all(wanted, reps, workers, lambda s: step(s, low, high), dask)

    if can_spill:
        run_all([(f, 0) for f in factors], 0.5, 0.6)
    serverless = [level(f).serverless(can_spill) for f in factors]
    if spec.billing is not None:  # on demand: each month's fleet at the list price
        months_listed = [level(f) for f in factors]
        wanted = [(m.listed(), m.on_demand_size(max_replicas), False) for m in months_listed]
        evaluate_all(wanted, reps, workers, lambda s: step(s, 0.5, 0.6), dask)
    on_demand = [level(f).on_demand(max_replicas) for f in factors]
    step(1.0, 0.5, 0.6)

    def reserve(r: int) -> list[tuple[float, bool]]:
        return [level(f).cost(r, can_spill) for f in factors]

    reserves: dict[int, list[tuple[float, bool]]] = {}

    def total(r: int) -> float:
        if r not in reserves:
            reserves[r] = reserve(r)
            step(len(reserves) / min(top, EXHAUSTIVE), 0.6, 0.9)
        costs = reserves[r]
        return math.inf if not all(ok for _, ok in costs) else sum(c for c, _ in costs)

    if top <= EXHAUSTIVE:
        run_all([(f, r) for r in range(1, top + 1) for f in factors], 0.6, 0.9)
        for r in range(1, top + 1):
            total(r)
    else:  # the term's cost in R: the fleet's grows linearly, the overflow's shrinks
        lo, hi = 1, top
        while hi - lo > 2:
            a, b = lo + (hi - lo) // 3, hi - (hi - lo) // 3
            run_all([(f, r) for r in (a, b) if r not in reserves for f in factors], 0.6, 0.9)
            if total(a) == total(b) == math.inf:
                lo = b + 1
            elif total(a) <= total(b):
                hi = b - 1 if total(a) < total(b) else b
            else:
                lo = a + 1
        for r in {*range(lo, hi + 1), needed[0] or 1, top}:
            total(r)
    reserves = dict(sorted(reserves.items()))

    strategies = [_strategy("serverless", 0, serverless)]
    strategies += [_strategy(f"reserve-{r}", r, costs) for r, costs in reserves.items()]
    strategies.append(_strategy("on-demand", None, on_demand, needed))
    feasible = [s for s in strategies if s["slo_met_all_months"] is not False]
    best = min(feasible or strategies, key=lambda s: (s["total_usd"], s["name"]))
    serverless_total = strategies[0]["total_usd"]
    rows = []
    for k, f in enumerate(factors):
        row: dict[str, Any] = {
            "month": k + 1,
            "traffic_factor": f,
            "replicas_needed": needed[k],
            "serverless_usd": serverless[k][0],
        }
        for s in strategies[1:]:
            row[f"{s['name']}_usd"] = s["monthly_usd"][k]
        rows.append(row)
    result: dict[str, Any] = {
        "months": months,
        "growth": growth,
        "growth_sd": growth_sd,
        "deployment": spec.name,
        "replications": reps,
        "rows": rows,
        "strategies": strategies,
        "recommendation": {
            "name": best["name"],
            "replicas": best["replicas"],
            "total_usd": best["total_usd"],
            "saving_vs_serverless_usd": serverless_total - best["total_usd"],
            "break_even_month": _break_even(best, strategies[0]),
            "slo_met_all_months": best["slo_met_all_months"],
        },
        "p_reservation_costs_more": None,
    }
    if growth_sd is not None and growth_sd > 0:
        reserved = best if best["name"].startswith("reserve-") else min(
            (s for s in strategies if s["name"].startswith("reserve-")),
            key=lambda s: s["total_usd"],
        )
        result["uncertainty"] = _uncertain(
            scenario, months, growth, growth_sd, paths, reserved, level, can_spill,
            lambda s: step(s, 0.9, 1.0), lambda sizes: run_all(sizes, 0.9, 0.95),
        )  # fmt: skip
        result["p_reservation_costs_more"] = result["uncertainty"]["p_reservation_costs_more"]
    result["runs"] = sum(m.runs for m in levels.values())
    result["verdict"] = forecast_verdict(result)
    if progress is not None:
        progress(1.0)
    answer["forecast"] = result
    return answer


def _strategy(
    name: str,
    replicas: int | None,
    months: Sequence[tuple[float, bool | None]],
    needed: list[int | None] | None = None,
) -> dict[str, Any]:
    checked = [ok for _, ok in months if ok is not None]
    entry: dict[str, Any] = {
        "name": name,
        "replicas": replicas,
        "total_usd": float(sum(cost for cost, _ in months)),
        "slo_met_all_months": all(checked) if checked else None,
        "monthly_usd": [cost for cost, _ in months],
    }
    if needed is not None:
        entry["replicas_by_month"] = needed
    return entry


def _break_even(strategy: dict[str, Any], serverless: dict[str, Any]) -> int | None:
    """The first month from which the strategy's cumulative cost stays at or below
    serverless's (None: never within the forecast)."""
    if strategy is serverless:
        return None
    mine = np.cumsum(strategy["monthly_usd"])
    theirs = np.cumsum(serverless["monthly_usd"])
    ahead = mine <= theirs + 1e-9
    for k in range(len(ahead)):
        if ahead[k:].all():
            return k + 1
    return None


def _uncertain(
    scenario: Scenario,
    months: int,
    growth: float,
    sd: float,
    paths: int,
    reserved: dict[str, Any],
    level: Callable[[float], _Month],
    can_spill: bool,
    progress: Callable[[float], None],
    run_all: Callable[[list[tuple[float, int]]], None],
) -> dict[str, Any]:
    """Growth drawn per path and month; each strategy's monthly cost interpolated in traffic
    between simulated levels that cover the paths (their runs made at once by `run_all`)."""
    rng = np.random.default_rng([scenario.seed, 0xF07E])
    draws = np.maximum(rng.normal(growth, sd, size=(paths, max(months - 1, 0))), -0.99)
    factors = np.ones((paths, months))
    if months > 1:
        factors[:, 1:] = np.cumprod(1.0 + draws, axis=1)
    lo, hi = np.quantile(factors, [0.005, 0.995])
    spread = np.geomspace(max(lo, 1e-3), max(hi, lo * 1.0001), GRID_POINTS)
    grid = sorted(
        {round(float(f), 12) for f in spread}
        | {round(f, 12) for f in growth_factors(months, growth)}
    )
    r = reserved["replicas"]
    run_all([(f, 0) for f in grid if can_spill] + [(f, r) for f in grid])
    serverless_at, reserve_at = [], []
    for i, f in enumerate(grid):
        month = level(f)
        serverless_at.append(month.serverless(can_spill)[0])
        reserve_at.append(month.cost(r, can_spill)[0])
        progress((i + 1) / len(grid))
    serverless_paths = np.interp(factors, grid, serverless_at).sum(axis=1)
    reserve_paths = np.interp(factors, grid, reserve_at).sum(axis=1)
    saving = serverless_paths - reserve_paths
    return {
        "paths": paths,
        "reservation": reserved["name"],
        "traffic_levels": grid,
        "p_reservation_costs_more": float((saving < 0).mean()),
        "saving_vs_serverless_usd": {
            "p5": float(np.quantile(saving, 0.05)),
            "p50": float(np.quantile(saving, 0.5)),
            "p95": float(np.quantile(saving, 0.95)),
        },
        "final_traffic_factor": {
            "p5": float(np.quantile(factors[:, -1], 0.05)),
            "p50": float(np.quantile(factors[:, -1], 0.5)),
            "p95": float(np.quantile(factors[:, -1], 0.95)),
        },
    }


def forecast_verdict(f: dict[str, Any]) -> str:
    rec = f["recommendation"]
    serverless = next(s for s in f["strategies"] if s["name"] == "serverless")
    growth = f"{f['growth']:+.0%} a month" + (
        f" (sd {f['growth_sd']:.0%})" if f.get("growth_sd") else ""
    )
    text = (
        f"Over {f['months']} months at {growth}: all serverless costs "
        f"${serverless['total_usd']:,.0f}."
    )
    if rec["slo_met_all_months"] is False:
        text += " No strategy meets the SLOs in every month;"
    if rec["name"] == "serverless":
        text += " Serverless is the cheapest: do not reserve."
    else:
        label = (
            f"reserving {rec['replicas']} replica{'s' if rec['replicas'] != 1 else ''}"
            if rec["name"].startswith("reserve-")
            else "on-demand replicas resized monthly"
        )
        text += (
            f" Cheapest: {label}, ${rec['total_usd']:,.0f}, saving "
            f"${rec['saving_vs_serverless_usd']:,.0f}"
        )
        text += (
            f"; ahead of serverless from month {rec['break_even_month']}."
            if rec["break_even_month"]
            else "."
        )
    p = f.get("p_reservation_costs_more")
    if p is not None:
        u = f["uncertainty"]
        text += (
            f" With uncertain growth, {u['reservation']} costs more than serverless in "
            f"{p:.0%} of {u['paths']:,} growth paths (saving p5..p95: "
            f"${u['saving_vs_serverless_usd']['p5']:,.0f} .. "
            f"${u['saving_vs_serverless_usd']['p95']:,.0f})."
        )
    return text
