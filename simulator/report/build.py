"""The report of a run: the stable JSON keys of DESIGN.md, built from one run's results,
and the combination of several replications into means with 95% intervals."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from simulator.engine import RunResult
from simulator.records import Outcome
from simulator.report.metrics import (
    cost_figures,
    deployment_rows,
    grouped_rows,
    unattributed_row,
    workload_rows,
)
from simulator.serving.catalog import BUNDLED_SOURCE
from simulator.serving.hardware import find_gpu
from simulator.version import __version__

UNTAGGED = "(untagged)"
TOTAL_KEYS = (
    "requests",
    "completed",
    "rejected",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "monthly_cost_usd",
    "usd_per_1m_tokens",
)
"""The stable `totals` keys every run reports (DESIGN.md), in report order."""


def build_report(result: RunResult) -> dict[str, Any]:
    """One run's report (a plain dict; see the README for every key)."""
    scenario, r = result.scenario, result.records
    horizon, month = scenario.horizon, scenario.month
    tag_keys = sorted({k for w in scenario.workloads for k in w.tags})
    workloads = workload_rows(result)
    idle = unattributed_row(result, tag_keys)
    if idle is not None:
        workloads.append(idle)
    deployments = deployment_rows(result)
    completed = r.outcome == Outcome.COMPLETED
    n_in = int(r.input_tokens.sum(where=completed))
    n_out = int(r.output_tokens.sum(where=completed))
    total_cost = sum(d["cost_usd"] for d in deployments)
    in_flight = int(np.sum((r.arrival < horizon) & completed & (r.finish > horizon)))
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "replication": result.replication,
        "horizon_s": horizon,
        "month_s": month,
        "warmup_s": scenario.warmup,
        "replications": 1,
        "totals": {
            "requests": len(r),
            "completed": int(completed.sum()),
            "rejected": int((r.outcome == Outcome.REJECTED).sum()),
            "in_flight_at_horizon": in_flight,
            "input_tokens": n_in,
            "output_tokens": n_out,
            **cost_figures(total_cost, n_in + n_out, horizon, month),
        },
        "deployments": deployments,
        "workloads": workloads,
        "models": grouped_rows(workloads, "model", [w["model"] for w in workloads], horizon, month),
        "modes": grouped_rows(
            deployments, "kind", [d["kind"] for d in deployments], horizon, month
        ),
        "breakdowns": {
            key: grouped_rows(
                workloads,
                "value",
                [w["tags"].get(key, UNTAGGED) for w in workloads],
                horizon,
                month,
            )
            for key in tag_keys
        },
        "provenance": provenance(scenario, deployments),
    }


def provenance(scenario: Any, deployments: list[dict[str, Any]]) -> dict[str, Any]:
    """What the figures rest on beyond the scenario: the software, the price catalog, and
    where each GPU price came from (text only, so replications keep it as is)."""

    gpu_prices = {}
    for d in deployments:
        if not d.get("gpu"):
            continue
        spec = next((x for x in scenario.deployments if x.name == d["name"]), None)
        given = spec.gpu_hour_price() if spec is not None else None
        gpu = find_gpu(d["gpu"])
        if given is not None or gpu is None or gpu.usd_per_gpu_hour is None:
            source = "the scenario"
        else:
            source = f"{gpu.price_source} ({gpu.price_date})"
        price = f"{d['price_per_gpu_hour']:g} USD per GPU-hour for {d['gpu']}"
        gpu_prices[d["name"]] = f"{price}: {source}"
    return {
        "capsim_version": __version__,
        "price_catalog": scenario.catalog or BUNDLED_SOURCE,
        "gpu_prices": gpu_prices,
    }


def _interval(values: list[float]) -> list[float]:
    """Student-t 95% interval of the mean of independent replications."""
    if len(values) < 2 or all(v == values[0] for v in values):
        return [float(values[0]), float(values[0])]
    mean = float(np.mean(values))
    sem = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    from scipy.special import stdtrit

    half = float(stdtrit(len(values) - 1, 0.975)) * sem
    return [mean - half, mean + half]


_NOT_AVERAGED = {
    "replicas_timeline",  # each replication's own: the first one's is kept
    "seed",
    "replication",
    "horizon_s",
    "month_s",
    "warmup_s",
    "replications",
    "target_s",
    "target",
    "quantile",
}


def _combine(values: list[Any], key: str | None) -> tuple[Any, list[float] | None]:
    first = values[0]
    if isinstance(first, dict):
        merged: dict[str, Any] = {}
        for k in first:
            value, ci = _combine([v[k] for v in values], k)
            merged[k] = value
            if ci is not None:
                merged[f"{k}_ci95"] = ci
        if isinstance(first.get("met"), bool) and merged.get("observed_s") is not None:
            merged["met_share"] = merged["met"]
            merged["met"] = bool(merged["observed_s"] <= merged["target_s"])
        elif isinstance(first.get("met"), bool) and merged.get("observed") is not None:
            merged["met_share"] = merged["met"]  # availability: the mean share against it
            merged["met"] = bool(merged["observed"] >= merged["target"])
        if isinstance(first.get("overloaded"), bool):  # overloaded in any replication
            merged["overloaded_share"] = merged["overloaded"]
            merged["overloaded"] = bool(merged["overloaded"] > 0)
        return merged, None
    if isinstance(first, list):
        if key in _NOT_AVERAGED or any(len(v) != len(first) for v in values):
            return first, None  # per-run data (a timeline): the first replication's
        return [_combine(list(items), None)[0] for items in zip(*values, strict=True)], None
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if key in _NOT_AVERAGED or not numbers or len(numbers) != len(values):
        if isinstance(first, bool) or first is None:
            present = [v for v in values if v is not None]
            return (sum(present) / len(present) if present else None), None
        return first, None
    return float(np.mean(numbers)), _interval(numbers)


def combine_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Replications into one report: every figure's mean with a sibling `<key>_ci95`.

    Quantiles are taken per replication, then averaged. A boolean such as an SLO's `met`
    becomes the share of replications in which it held.
    """
    if len(reports) == 1:
        return reports[0]
    combined, _ = _combine(reports, None)
    combined["replications"] = len(reports)
    combined.pop("replication", None)
    return dict(combined)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def to_json(report: dict[str, Any] | list[Any]) -> str:
    """The report as JSON text: stable key order, no NaN (null instead)."""
    return json.dumps(_clean(report), indent=2)
