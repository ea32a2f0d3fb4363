"""Studies side by side: the same report for several scenarios or traffic profiles."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table

from simulator.report.tables import fmt_seconds, fmt_share, fmt_usd, slo_figures
from simulator.scenario.format import Scenario
from simulator.studies.run import run


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
    dask: str | None = None,
) -> list[dict[str, Any]]:
    """Run every variant (same seed, same replications); one entry each, with its report.
    With `dask` (a scheduler's address) the variants run on that cluster at once."""
    if dask is not None:
        return _on_cluster(variants, replications, seed, progress, force, dask)
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


def report_of(
    scenario: Scenario, seed: int | None, replications: int | None, force: bool
) -> dict[str, Any]:
    """One variant's report (what travels back from a cluster's worker: not the records)."""
    return run(scenario, seed=seed, replications=replications, force=force).report


def _on_cluster(
    variants: list[Variant],
    replications: int | None,
    seed: int | None,
    progress: Callable[[float], None] | None,
    force: bool,
    address: str,
) -> list[dict[str, Any]]:
    from simulator.studies.cluster import executor

    results = []
    with executor(1, address) as pool:
        futures = [
            pool.submit(report_of, v.scenario, seed, replications, force) for v in variants
        ]
        for k, (variant, future) in enumerate(zip(variants, futures, strict=True)):
            report = future.result()
            results.append(
                {"label": variant.label, "scenario": variant.scenario.name, "report": report}
            )
            if progress is not None:
                progress((k + 1) / len(variants))
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
    # workloads and deployments by name (the variants may be different scenarios): the
    # names of every variant in order of appearance, "-" where a variant has none
    workloads = _aligned(reports, "workloads")
    for name, rows_w in workloads.items():
        for metric in ("ttft_s", "e2e_s"):
            for q in ("p95", "p99"):
                values = [w["latency"][metric][q] if w else None for w in rows_w]
                rows.append((f"{name} {metric[:-2].upper()} {q}", values, fmt_seconds))
        keys: dict[str, str] = {}
        for w in rows_w:
            for entry in w["slo"] if w else []:
                target = slo_figures(entry)[0]
                keys.setdefault(
                    entry["key"],
                    f">= {target}" if entry["metric"] == "availability" else f"<= {target}",
                )
        for key, bound in keys.items():
            values = [
                next((e for e in w["slo"] if e["key"] == key), None) if w else None for w in rows_w
            ]
            rows.append((f"{name} SLO {key} {bound}", values, _slo_cell))
    for name, rows_d in _aligned(reports, "deployments").items():
        present = [d for d in rows_d if d]

        def column(key: str, rows_d: list[dict[str, Any] | None] = rows_d) -> list[Any]:
            return [d.get(key) if d else None for d in rows_d]

        rows.append((f"{name} monthly cost", column("monthly_cost_usd"), fmt_usd))
        if any(d.get("utilization") is not None for d in present):
            rows.append((f"{name} utilization", column("utilization"), fmt_share))
        if any(d.get("throughput_utilization") is not None for d in present):
            rows.append((f"{name} throughput vs max", column("throughput_utilization"), fmt_share))
        if any(d.get("prefix_cache_hit_rate") is not None for d in present):
            rows.append((f"{name} prefix cache hits", column("prefix_cache_hit_rate"), fmt_share))
        if any(d.get("overloaded") for d in present):
            rows.append(
                (f"{name} overloaded", column("overloaded"), lambda v: "YES" if v else "no")
            )
        if any(d.get("spilled") for d in present):
            rows.append((f"{name} spilled", column("spilled"), lambda v: f"{v:,.0f}"))
    return rows


def _aligned(reports: list[dict[str, Any]], section: str) -> dict[str, list[dict[str, Any] | None]]:
    """Each name of `section` (workloads, deployments) in any report, with its row in each
    report (None where that report has none), in order of first appearance."""
    names: dict[str, None] = {}
    for report in reports:
        for row in report[section]:
            names.setdefault(row["name"], None)
    return {
        name: [next((row for row in r[section] if row["name"] == name), None) for r in reports]
        for name in names
    }


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
