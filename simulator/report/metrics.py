"""Metrics of one run: costs, $/1M tokens, latency quantiles, SLO attainment, utilization.

Plain functions from a `RunResult` to plain dicts (the report's stable keys). Counts, tokens
and costs cover the whole horizon; latency and SLO figures skip arrivals before `warmup`;
latency quantiles are over completed requests, SLO attainment counts rejections as misses.
A deployment's fixed spend (GPU-hours) is shared among the workloads it served in proportion
to their tokens there, so workload costs add up to the total.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.engine import RunResult
from simulator.records import Outcome, Reason, Records
from simulator.scenario.format import SLOTarget

QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def cost_figures(cost: float, tokens: float, horizon_s: float, month_s: float) -> dict[str, Any]:
    """cost_usd, monthly_cost_usd (scaled by month / horizon) and usd_per_1m_tokens."""
    return {
        "cost_usd": cost,
        "monthly_cost_usd": cost * month_s / horizon_s,
        "usd_per_1m_tokens": cost / tokens * 1e6 if tokens > 0 else None,
    }


def latency_summary(values: np.ndarray, in_place: bool = False) -> dict[str, float | None]:
    """mean, p50, p90, p95, p99 of `values` (None when there are none); `in_place`: the
    quantiles may reorder `values` instead of a copy (the same figures, less memory)."""
    if len(values) == 0:
        return {"mean": None, **dict.fromkeys(QUANTILES)}
    mean = float(values.mean())  # before any reordering: the same sum, to the last bit
    qs = np.quantile(values, list(QUANTILES.values()), overwrite_input=in_place)
    return {
        "mean": mean,
        **{k: float(v) for k, v in zip(QUANTILES, qs, strict=True)},
    }


METRICS = ("ttft", "tpot", "e2e", "queue")
_BLOCK = 1 << 20  # rows at a time when a latency column is gathered


def latency_column(records: Records, mask: np.ndarray, metric: str) -> np.ndarray:
    """One latency of the masked requests, NaN-free (tpot only where defined). One metric
    at a time: a month's pool holds millions of requests, and every metric's arrays at once
    made the report the run's peak of memory."""
    if metric == "tpot":
        has = mask & np.isfinite(records.first_token) & (records.output_tokens > 1)
        tpot = np.empty(int(np.count_nonzero(has)))
        done = 0
        for lo in range(0, len(has), _BLOCK):  # as the others: block by block
            part = has[lo : lo + _BLOCK]
            block = records.finish[lo : lo + _BLOCK][part]
            block -= records.first_token[lo : lo + _BLOCK][part]
            steps = records.output_tokens[lo : lo + _BLOCK][part]
            steps -= 1
            block /= steps
            tpot[done : done + len(block)] = block
            done += len(block)
        return tpot
    if metric == "ttft":
        mask = mask & np.isfinite(records.first_token)
    end = {"ttft": records.first_token, "e2e": records.finish, "queue": records.start}[metric]
    values = np.empty(int(np.count_nonzero(mask)))
    done = 0
    for lo in range(0, len(mask), _BLOCK):  # no second column-sized temporary
        part = mask[lo : lo + _BLOCK]
        block = end[lo : lo + _BLOCK][part]
        block -= records.arrival[lo : lo + _BLOCK][part]
        values[done : done + len(block)] = block
        done += len(block)
    return values


def quantile_with_misses(
    values: np.ndarray, misses: int, q: float, in_place: bool = False
) -> float:
    """The q-quantile (linear, as numpy's default) of `values` plus `misses` infinite ones
    (`in_place`: `values` sorted itself rather than a copy)."""
    if in_place:
        values.sort()
    ordered = values if in_place else np.sort(values)
    total = len(ordered) + misses
    position = q * (total - 1)
    low, high = int(np.floor(position)), int(np.ceil(position))
    if high >= len(ordered):
        return math.inf
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def slo_entry(
    target: SLOTarget, values: np.ndarray, rejected: int, in_place: bool = False
) -> dict[str, Any]:
    """Observed quantile against the target, and attainment = share of requests within it.

    A rejected request never met its target: it counts as a miss in the attainment and as an
    infinitely slow request in the observed quantile (reported as null when that is where the
    quantile falls). `met` is False whenever the observed quantile is over the target.
    `values`: the target's metric (e2e for completion) of the requests measured.
    """
    entry: dict[str, Any] = {
        "key": target.key,
        "metric": target.metric,
        "quantile": target.quantile,
        "target_s": target.target_s,
        "observed_s": None,
        "attainment": None,
        "met": None,
        "samples": len(values),
        "rejected": rejected,
    }
    total = len(values) + rejected
    if total:
        if target.quantile >= 1:
            observed = math.inf if rejected else float(values.max())
        else:
            observed = quantile_with_misses(values, rejected, target.quantile, in_place)
        entry["observed_s"] = observed if math.isfinite(observed) else None
        entry["attainment"] = float(np.sum(values <= target.target_s)) / total
        entry["met"] = bool(observed <= target.target_s)
    return entry


def availability_entry(target: float, completed: int, rejected: int) -> dict[str, Any]:
    """The availability SLO: the share of the requests that arrived (after the warm-up) that
    completed, against `target`. A refused request (no capacity, too long, lost) counts
    against it; `met` when the observed share is at least the target."""
    arrived = completed + rejected
    observed = completed / arrived if arrived else None
    return {
        "key": "availability",
        "metric": "availability",
        "quantile": None,
        "target": target,
        "observed": observed,
        "attainment": observed,
        "met": None if observed is None else bool(observed >= target),
        "samples": completed,
        "rejected": rejected,
    }


def _fixed_cost_shares(result: RunResult) -> np.ndarray:
    """Fixed spend of each deployment split over workloads, shape (workloads, deployments)."""
    scenario, r = result.scenario, result.records
    n_w, n_d = len(scenario.workloads), len(scenario.deployments)
    # tokens served by workload and deployment, a block of rows at a time (a month's
    # records are millions of rows); integer counts, so the sums are exact in any order
    cells = np.zeros(n_w * n_d)
    for lo in range(0, len(r), 1 << 20):
        block = slice(lo, lo + (1 << 20))
        deployment = r.deployment[block]
        served = deployment >= 0
        cell = r.workload[block][served].astype(np.int64) * n_d + deployment[served]
        served_tokens = r.input_tokens[block][served] + r.output_tokens[block][served]
        cells += np.bincount(cell, served_tokens.astype(np.float64), minlength=n_w * n_d)
    tokens = cells.reshape(n_w, n_d)
    shares = np.zeros((n_w, n_d))
    for j, summary in enumerate(result.summaries):
        if summary.fixed_cost_usd == 0:
            continue
        column = tokens[:, j]
        if column.sum() > 0:
            weights = column / column.sum()
        else:
            routed = np.array([scenario.deployments[j].name in w.route for w in scenario.workloads])
            weights = routed / max(routed.sum(), 1)
        shares[:, j] = weights * summary.fixed_cost_usd
    return shares


UNATTRIBUTED = "(unattributed)"
"""The row that carries the spend of reserved capacity no workload routes to."""


def unattributed_row(result: RunResult, tag_keys: list[str]) -> dict[str, Any] | None:
    """The fixed spend no workload carries (reserved deployments no route uses), as a row
    of its own, so that workloads, models and every tag breakdown add up to the total."""
    scenario = result.scenario
    unused = [
        (spec.name, summary.fixed_cost_usd)
        for spec, summary in zip(scenario.deployments, result.summaries, strict=True)
        if summary.fixed_cost_usd > 0 and not any(spec.name in w.route for w in scenario.workloads)
    ]
    if not unused:
        return None
    cost = sum(c for _, c in unused)
    return {
        "name": UNATTRIBUTED,
        "model": UNATTRIBUTED,
        "tags": dict.fromkeys(tag_keys, UNATTRIBUTED),
        "unattributed": True,
        "deployments": [name for name, _ in unused],
        "requests": 0,
        "completed": 0,
        "rejected": 0,
        "rejected_context_length": 0,
        "rejected_no_capacity": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        **cost_figures(cost, 0, scenario.horizon, scenario.month),
        "latency": {
            f"{k}_s": latency_summary(np.empty(0)) for k in ("ttft", "tpot", "e2e", "queue")
        },
        "slo": [],
    }


def list_cost(price: Any, records: Records, rows: np.ndarray) -> float:
    """USD of the requests `rows` (a mask) at serverless `price`, each at the highest
    long-context tier its prompt exceeds (the base price below every tier). Per request,
    one token column at a time: a month's workload has millions of rows."""
    from simulator.deployments.base import apply_tiers, price_tiers

    tokens = np.empty(int(np.count_nonzero(rows)))
    done = 0
    for lo in range(0, len(rows), _BLOCK):  # each request's figure as before, block by block
        part = rows[lo : lo + _BLOCK]
        block = records.input_tokens[lo : lo + _BLOCK][part] * price.input
        block += records.output_tokens[lo : lo + _BLOCK][part] * price.output
        tokens[done : done + len(block)] = block
        done += len(block)
    tiers = price_tiers(price)
    if not tiers:
        return float(tokens.sum() / 1e6)
    n_in, n_out = records.input_tokens[rows], records.output_tokens[rows]
    costs = apply_tiers(tokens / 1e6, [tiers], np.zeros(len(n_in), np.int64), n_in, n_out)
    return float(costs.sum())


def workload_rows(result: RunResult) -> list[dict[str, Any]]:
    """Per-workload counts, tokens, costs, latency and SLO entries."""
    scenario, r = result.scenario, result.records
    horizon, month = scenario.horizon, scenario.month
    fixed = _fixed_cost_shares(result).sum(axis=1)
    measured_period = r.arrival >= scenario.warmup
    completed = r.outcome == Outcome.COMPLETED
    rows = []
    for w, workload in enumerate(scenario.workloads):
        mine = r.workload == w
        done = mine & completed
        # integer sums: exact in any order, so summed in place rather than over copies
        n_in = int(r.input_tokens.sum(where=done))
        n_out = int(r.output_tokens.sum(where=done))
        cost = float(r.cost[done].sum()) + float(fixed[w])
        # its completed tokens at its model's serverless price (long-context tiers per
        # request): what plan and the volume chart compare a reservation with
        serverless = list_cost(scenario.models[workload.model].serverless_price, r, done)
        rejected = int(np.sum(mine & measured_period & (r.outcome == Outcome.REJECTED)))
        measured = done & measured_period
        targets = workload.slo_targets()
        latency, slo = {}, {}
        for metric in METRICS:
            values = latency_column(r, measured, metric)  # ours: reordered in place
            latency[f"{metric}_s"] = latency_summary(values, in_place=True)
            for t in targets:
                if ("e2e" if t.metric == "completion" else t.metric) == metric:
                    slo[t.key] = slo_entry(t, values, rejected, in_place=True)
            del values
        slo_list = [slo[t.key] for t in targets]
        if workload.availability_target is not None:
            slo_list.append(
                availability_entry(workload.availability_target, int(measured.sum()), rejected)
            )
        rows.append(
            {
                "name": workload.name,
                "model": workload.model,
                "tags": dict(workload.tags),
                "requests": int(mine.sum()),
                "completed": int(done.sum()),
                "rejected": int((mine & (r.outcome == Outcome.REJECTED)).sum()),
                "rejected_context_length": int((mine & (r.reason == Reason.CONTEXT_LENGTH)).sum()),
                "rejected_no_capacity": int((mine & (r.reason == Reason.NO_CAPACITY)).sum()),
                "rejected_replica_failure": int(
                    (mine & (r.reason == Reason.REPLICA_FAILURE)).sum()
                ),
                "input_tokens": n_in,
                "image_tokens": (
                    int(r.image_tokens.sum(where=done, dtype=np.int64))
                    if r.image_tokens is not None
                    else 0
                ),
                "output_tokens": n_out,
                **cost_figures(cost, n_in + n_out, horizon, month),
                "serverless_list_cost_usd": serverless,
                "latency": latency,
                "slo": slo_list,
            }
        )
    return rows


def deployment_rows(result: RunResult) -> list[dict[str, Any]]:
    """Per-deployment requests served, tokens, spend (fixed included), utilization, spills."""
    scenario, r = result.scenario, result.records
    rows = []
    for j, spec in enumerate(scenario.deployments):
        mine = r.deployment == j
        n_in = int(r.input_tokens.sum(where=mine))
        n_out = int(r.output_tokens.sum(where=mine))
        summary = result.summaries[j]
        cost = float(r.cost[mine].sum()) + summary.fixed_cost_usd
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "requests": int(mine.sum()),
                "input_tokens": n_in,
                "output_tokens": n_out,
                **cost_figures(cost, n_in + n_out, scenario.horizon, scenario.month),
                "utilization": summary.utilization,
                "gpu_hours": summary.gpu_hours,
                "spilled": result.spilled[j],
                **summary.extra,
            }
        )
    return rows


def grouped_rows(
    rows: list[dict[str, Any]], key: str, values: list[str], horizon: float, month: float
) -> list[dict[str, Any]]:
    """Sum requests, tokens and cost of `rows` by `values` (one per row), in first-seen order."""
    groups: dict[str, dict[str, float]] = {}
    for row, value in zip(rows, values, strict=True):
        g = groups.setdefault(
            value, {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        )
        for k in g:
            g[k] += row[k]
    return [
        {
            key: value,
            "requests": int(g["requests"]),
            "input_tokens": int(g["input_tokens"]),
            "output_tokens": int(g["output_tokens"]),
            **cost_figures(g["cost_usd"], g["input_tokens"] + g["output_tokens"], horizon, month),
        }
        for value, g in groups.items()
    ]


def time_average_in_system(start: np.ndarray, end: np.ndarray, t0: float, t1: float) -> float:
    """Time-weighted mean number of intervals [start, end) open during [t0, t1).

    The integral of the count over the window is the sum of each interval's overlap with it,
    so this is exact, with no per-event averaging.
    """
    if t1 <= t0:
        raise ValueError("empty window")
    overlap = np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0.0, None)
    return float(overlap.sum() / (t1 - t0))
