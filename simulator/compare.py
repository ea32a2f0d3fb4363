"""Studies side by side: the same report for several scenarios or traffic profiles."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table

from simulator.render import fmt_seconds, fmt_share, fmt_usd
from simulator.runner import run
from simulator.scenario import Scenario


@dataclass(frozen=True)
class Variant:
    label: str
    scenario: Scenario


def compare(
    variants: list[Variant],
    replications: int | None = None,
    seed: int | None = None,
    progress: Callable[[float], None] | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Run every variant (same seed, same replications); one entry each, with its report."""
    results = []
    for k, variant in enumerate(variants):

        def step(fraction: float, k: int = k) -> None:
            if progress is not None:
                progress((k + fraction) / len(variants))

        result = run(
            variant.scenario, seed=seed, replications=replications, progress=step, force=force
        )
        results.append(
            {"label": variant.label, "scenario": variant.scenario.name, "report": result.report}
        )
    return results


Row = tuple[str, list[Any], Callable[[Any], str]]


def comparison_rows(results: list[dict[str, Any]]) -> list[Row]:
    """(metric, one value per variant, formatter): costs, latency, SLOs, utilization."""
    reports = [r["report"] for r in results]
    rows: list[Row] = [
        ("monthly cost", [r["totals"]["monthly_cost_usd"] for r in reports], fmt_usd),
        (
            "$ per 1M tokens",
            [r["totals"]["usd_per_1m_tokens"] for r in reports],
            lambda v: fmt_usd(v, True),
        ),
        ("rejected", [r["totals"]["rejected"] for r in reports], lambda v: f"{v:,.0f}"),
    ]
    for w, workload in enumerate(reports[0]["workloads"]):
        name = workload["name"]
        for metric in ("ttft_s", "e2e_s"):
            for q in ("p95", "p99"):
                values = [r["workloads"][w]["latency"][metric][q] for r in reports]
                rows.append((f"{name} {metric[:-2].upper()} {q}", values, fmt_seconds))
        for e, entry in enumerate(workload["slo"]):
            values = [r["workloads"][w]["slo"][e] for r in reports]
            rows.append(
                (
                    f"{name} SLO {entry['key']} <= {fmt_seconds(entry['target_s'])}",
                    values,
                    _slo_cell,
                )
            )
    for d, deployment in enumerate(reports[0]["deployments"]):
        name = deployment["name"]
        rows.append(
            (
                f"{name} monthly cost",
                [r["deployments"][d]["monthly_cost_usd"] for r in reports],
                fmt_usd,
            )
        )
        if deployment.get("utilization") is not None:
            rows.append(
                (
                    f"{name} utilization",
                    [r["deployments"][d]["utilization"] for r in reports],
                    fmt_share,
                )
            )
        if deployment.get("throughput_utilization") is not None:
            rows.append(
                (
                    f"{name} throughput vs max",
                    [r["deployments"][d].get("throughput_utilization") for r in reports],
                    fmt_share,
                )
            )
        if any(r["deployments"][d].get("prefix_cache_hit_rate") is not None for r in reports):
            rows.append(
                (
                    f"{name} prefix cache hits",
                    [r["deployments"][d].get("prefix_cache_hit_rate") for r in reports],
                    fmt_share,
                )
            )
        if any(r["deployments"][d].get("overloaded") for r in reports):
            rows.append(
                (
                    f"{name} overloaded",
                    [r["deployments"][d].get("overloaded") for r in reports],
                    lambda v: "YES" if v else "no",
                )
            )
        if any(r["deployments"][d]["spilled"] for r in reports):
            rows.append(
                (
                    f"{name} spilled",
                    [r["deployments"][d]["spilled"] for r in reports],
                    lambda v: f"{v:,.0f}",
                )
            )
    return rows


def _slo_cell(entry: dict[str, Any]) -> str:
    if entry["attainment"] is None:
        return "-"
    mark = "met" if entry["met"] else "MISSED"
    return f"{entry['attainment'] * 100:.1f}% {mark}"


def comparison_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="Comparison", title_justify="left", box=box.SIMPLE_HEAD, title_style="bold")
    table.add_column("")
    for result in results:
        table.add_column(result["label"], justify="right")
    for label, values, fmt in comparison_rows(results):
        table.add_row(label, *["-" if v is None else fmt(v) for v in values])
    return table


def comparison_csv(results: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", *[r["label"] for r in results]])
    for label, values, _ in comparison_rows(results):
        cells = []
        for v in values:
            if isinstance(v, dict):
                v = v.get("attainment")
            cells.append("" if v is None else v)
        writer.writerow([label, *cells])
    return out.getvalue()
