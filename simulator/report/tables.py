"""Showing a report: a rich terminal table, or CSV rows (the JSON is `report.to_json`)."""

from __future__ import annotations

import csv
import io
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from simulator.report.build import TOTAL_KEYS


def fmt_seconds(value: float | None) -> str:
    """A duration the way a person reads it: 850 ms, 2.40 s, 12.5 min, 3.2 h."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.3g} d"


def fmt_usd(value: float | None, cents: bool = False) -> str:
    if value is None:
        return "-"
    if cents or abs(value) < 100:
        return f"${value:,.2f}"
    return f"${value:,.0f}"


def fmt_count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}"


def fmt_hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def fmt_share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def slo_figures(entry: dict[str, Any]) -> tuple[str, str]:
    """An SLO entry's target and observed value as shown: seconds for a latency target, a
    share of requests (to 0.01%) for availability."""
    if entry["metric"] == "availability":
        shown = [
            "-" if v is None else f"{v * 100:.2f}%" for v in (entry["target"], entry["observed"])
        ]
        return shown[0], shown[1]
    return fmt_seconds(entry["target_s"]), fmt_seconds(entry["observed_s"])


def _ci(row: dict[str, Any], key: str, fmt: Any) -> str:
    text = str(fmt(row.get(key)))
    interval = row.get(f"{key}_ci95")
    if interval:
        text += f" ±{fmt((interval[1] - interval[0]) / 2)}"
    return text


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, title_style="bold")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def report_tables(report: dict[str, Any]) -> Group:
    """The report as rich tables: totals, workloads, SLOs, deployments, breakdowns."""
    t = report["totals"]
    head = Text.assemble(
        ("capsim ", "bold"),
        (report["scenario"], "bold cyan"),
        f"  horizon {fmt_seconds(report['horizon_s'])} · month {fmt_seconds(report['month_s'])}"
        f" · seed {report['seed']} · replications {report['replications']}",
    )
    totals = Table(
        title="Totals",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        title_style="bold",
        show_header=False,
    )
    totals.add_column("figure")
    totals.add_column("value", justify="right")
    figures = [
        ("requests", fmt_count(t["requests"])),
        ("completed / rejected", f"{fmt_count(t['completed'])} / {fmt_count(t['rejected'])}"),
        (
            "input / output tokens",
            f"{fmt_count(t['input_tokens'])} / {fmt_count(t['output_tokens'])}",
        ),
        (f"cost over {fmt_seconds(report['horizon_s'])}", fmt_usd(t["cost_usd"], True)),
        ("monthly cost", _ci(t, "monthly_cost_usd", fmt_usd)),
        ("$ per 1M tokens", fmt_usd(t["usd_per_1m_tokens"], True)),
    ]
    images = sum(w.get("image_tokens") or 0 for w in report["workloads"])
    if images:  # of the input tokens, those images became
        figures.insert(3, ("  of them from images", fmt_count(images)))
    for label, value in figures:
        totals.add_row(label, value)

    workloads = _table(
        "Workloads",
        [
            "workload",
            "model",
            "requests",
            "rejected",
            "monthly cost",
            "$/1M tokens",
            "TTFT p95",
            "TPOT p95",
            "E2E p99",
        ],
    )
    slos = _table("SLOs", ["workload", "SLO", "target", "observed", "attainment", "met"])
    for w in report["workloads"]:
        lat = w["latency"]
        workloads.add_row(
            w["name"],
            w["model"],
            fmt_count(w["requests"]),
            fmt_count(w["rejected"]),
            _ci(w, "monthly_cost_usd", fmt_usd),
            fmt_usd(w["usd_per_1m_tokens"], True),
            fmt_seconds(lat["ttft_s"]["p95"]),
            fmt_seconds(lat["tpot_s"]["p95"]),
            fmt_seconds(lat["e2e_s"]["p99"]),
        )
        for s in w["slo"]:
            met = s["met"]
            mark = (
                Text("-")
                if met is None
                else (Text("yes", style="green") if met else Text("NO", style="bold red"))
            )
            slos.add_row(w["name"], s["key"], *slo_figures(s), fmt_share(s["attainment"]), mark)

    deployments = _table(
        "Deployments",
        [
            "deployment",
            "kind",
            "requests",
            "spilled",
            "monthly cost",
            "$/1M tokens",
            "busy",
            "throughput vs max",
            "replicas (mean)",
            "GPU-hours",
        ],
    )
    overloaded = []
    for d in report["deployments"]:
        replicas = d.get("replicas_mean")
        if d.get("overloaded"):
            overloaded.append(d)
        deployments.add_row(
            d["name"],
            d["kind"],
            fmt_count(d["requests"]),
            fmt_count(d["spilled"]),
            _ci(d, "monthly_cost_usd", fmt_usd),
            fmt_usd(d["usd_per_1m_tokens"], True),
            fmt_share(d["utilization"]),
            fmt_share(d.get("throughput_utilization")),
            "-" if replicas is None else f"{replicas:.2f}",
            fmt_hours(d["gpu_hours"]),
            style="bold red" if d.get("overloaded") else None,
        )
    modeled = [
        f"{d['name']}: {d['gpus_per_replica']} x {d['gpu']}, {performance_label(d)}"
        for d in report["deployments"]
        if d.get("performance_model")
    ]
    if modeled:
        deployments.caption = "speed modeled by: " + "; ".join(modeled)
        deployments.caption_justify = "left"
    parts: list[Any] = [head, totals, workloads]
    if slos.row_count:
        parts.append(slos)
    parts.append(deployments)
    for d in overloaded:
        parts.append(Text(overload_warning(d, report["horizon_s"]), style="bold red"))
    for d in report["deployments"]:
        if d.get("replica_availability") is not None:
            parts.append(Text(failure_line(d)))
    for key, rows in report["breakdowns"].items():
        table = _table(
            f"By {key}",
            [key, "requests", "input tokens", "output tokens", "monthly cost", "$/1M tokens"],
        )
        for row in rows:
            table.add_row(
                row["value"],
                fmt_count(row["requests"]),
                fmt_count(row["input_tokens"]),
                fmt_count(row["output_tokens"]),
                fmt_usd(row["monthly_cost_usd"]),
                fmt_usd(row["usd_per_1m_tokens"], True),
            )
        parts.append(table)
    return Group(*parts)


def failure_line(d: dict[str, Any]) -> str:
    """A deployment's replica failures, in a sentence."""
    plural = "" if d["failures"] == 1 else "s"
    return (
        f"{d['name']}: {fmt_count(d['failures'])} replica failure{plural}, replicas up "
        f"{d['replica_availability']:.2%} of the time; {fmt_count(d['requests_retried'])} "
        f"requests retried, {fmt_count(d['requests_lost'])} lost"
    )


def overload_warning(d: dict[str, Any], horizon_s: float) -> str:
    """Why an overloaded deployment's figures are not a steady state, in a sentence."""
    load = d.get("offered_load")
    text = f"{d['name']} is overloaded: "
    if load is not None and load > 1:
        text += f"it was offered {load:.0%} of the work its replicas can serve (modeled)"
    else:
        text += "requests piled up over the run's second half"
    return (
        text + f"; {fmt_count(d.get('backlog_at_horizon'))} requests were still waiting or running"
        f" at the end of the {fmt_seconds(horizon_s)} horizon and took"
        f" {fmt_seconds(d.get('drain_s'))} more (billed). Its queue grows without bound:"
        " latency and cost describe this run's length, not a steady state. Add replicas,"
        " set max_queue to spill, or route less traffic to it."
    )


def performance_label(d: dict[str, Any]) -> str:
    """What priced a deployment's replicas: `measured kernels (trtllm 1.3.0rc20)`, or the
    model and why the kernels did not."""
    if d.get("engine"):
        return f"measured kernels ({d['engine']} {d['engine_version']})"
    note = d.get("performance_note")
    model = str(d.get("performance_model") or "-")
    return f"{model} ({note})" if note else model


def console_for_tables() -> Console:
    """Standard output; 120 columns wide when it is not a terminal (files, pipes)."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=120)


def print_table(report: dict[str, Any]) -> None:
    console_for_tables().print(report_tables(report))


# what priced a dedicated/cluster row (empty for the others), after the totals
CSV_COLUMNS = [
    "scope", "name", "kind", *TOTAL_KEYS, "performance_model", "engine", "engine_version",
    "failures", "replica_availability", "requests_retried", "requests_lost", "image_tokens",
]  # fmt: skip


def to_csv(report: dict[str, Any]) -> str:
    """One row for the total, each deployment, workload, model and tag value."""
    rows: list[dict[str, Any]] = [
        {"scope": "total", "name": report["scenario"], **report["totals"]}
    ]
    rows += [{"scope": "deployment", **d} for d in report["deployments"]]
    rows += [{"scope": "workload", "kind": w["model"], **w} for w in report["workloads"]]
    rows += [{"scope": "model", "name": m["model"], **m} for m in report["models"]]
    for key, values in report["breakdowns"].items():
        rows += [{"scope": f"tag:{key}", "name": v["value"], **v} for v in values]
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()
