"""The terminal report's tables as HTML, and the assumptions a report rests on, for a
report.html someone forwards as is."""

from __future__ import annotations

import html
from typing import Any

from simulator.report.tables import (
    failure_line,
    fmt_count,
    fmt_hours,
    fmt_seconds,
    fmt_share,
    fmt_usd,
    performance_label,
    slo_figures,
)
from simulator.scenario.format import Scenario
from simulator.serving.catalog import BUNDLED_SOURCE
from simulator.version import __version__


def _ci(row: dict[str, Any], key: str, fmt: Any) -> str:
    text = str(fmt(row.get(key)))
    interval = row.get(f"{key}_ci95")
    if interval:
        text += f" ±{fmt((interval[1] - interval[0]) / 2)}"
    return text


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; a cell given as (text, css class) is styled."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            text, css = cell if isinstance(cell, tuple) else (cell, "")
            attribute = f' class="{css}"' if css else ""
            cells.append(f"<td{attribute}>{html.escape(str(text))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<h2>{html.escape(title)}</h2>\n<table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def assumptions(report: dict[str, Any], scenario: Scenario) -> list[list[Any]]:
    """What the figures rest on: the run's settings, the software, the prices."""

    rows: list[list[Any]] = [
        ["scenario", report["scenario"]],
        ["seed", report["seed"]],
        ["horizon", fmt_seconds(report["horizon_s"])],
        ["month (basis of monthly figures)", fmt_seconds(report["month_s"])],
        ["warm-up (left out of latency)", fmt_seconds(report.get("warmup_s") or 0.0)],
        ["replications", report["replications"]],
        ["capsim version", __version__],
        ["serverless price catalog", scenario.catalog or BUNDLED_SOURCE],
    ]
    for w in scenario.workloads:  # as simulated (a plan's report may cut the routes)
        rows.append([f"{w.name}: route simulated", " -> ".join(w.route)])
    for d in report["deployments"]:
        if d.get("gpu"):
            rows.append(
                [
                    f"{d['name']}: GPUs and price",
                    f"{d['gpus_per_replica']} x {d['gpu']} a replica at "
                    f"{fmt_usd(d['price_per_gpu_hour'], True)} per GPU-hour",
                ]
            )
            rows.append([f"{d['name']}: speed modeled by", performance_label(d)])
    return rows


def report_sections(report: dict[str, Any], scenario: Scenario) -> str:
    """Totals, workloads, SLOs, deployments, every tag breakdown and the assumptions."""
    t = report["totals"]
    parts = [
        _table(
            "Totals",
            ["figure", "value"],
            [
                ["requests", fmt_count(t["requests"])],
                [
                    "completed / rejected",
                    f"{fmt_count(t['completed'])} / {fmt_count(t['rejected'])}",
                ],
                [
                    "input / output tokens",
                    f"{fmt_count(t['input_tokens'])} / {fmt_count(t['output_tokens'])}",
                ],
                [f"cost over {fmt_seconds(report['horizon_s'])}", fmt_usd(t["cost_usd"], True)],
                ["monthly cost", _ci(t, "monthly_cost_usd", fmt_usd)],
                ["$ per 1M tokens", fmt_usd(t["usd_per_1m_tokens"], True)],
            ],
        )
    ]
    workloads, slos = [], []
    for w in report["workloads"]:
        lat = w["latency"]
        workloads.append(
            [
                w["name"], w["model"], fmt_count(w["requests"]), fmt_count(w["rejected"]),
                _ci(w, "monthly_cost_usd", fmt_usd), fmt_usd(w["usd_per_1m_tokens"], True),
                fmt_seconds(lat["ttft_s"]["p95"]), fmt_seconds(lat["tpot_s"]["p95"]),
                fmt_seconds(lat["e2e_s"]["p99"]),
            ]
        )  # fmt: skip
        for s in w["slo"]:
            met = s["met"]
            mark = "-" if met is None else (("yes", "ok") if met else ("NO", "bad"))
            slos.append(
                [
                    w["name"], s["key"], *slo_figures(s), fmt_share(s["attainment"]), mark,
                ]
            )  # fmt: skip
    parts.append(
        _table(
            "Workloads",
            ["workload", "model", "requests", "rejected", "monthly cost", "$/1M tokens",
             "TTFT p95", "TPOT p95", "E2E p99"],
            workloads,
        )
    )  # fmt: skip
    if slos:
        parts.append(
            _table("SLOs", ["workload", "SLO", "target", "observed", "attainment", "met"], slos)
        )
    deployments = []
    for d in report["deployments"]:
        replicas = d.get("replicas_mean")
        overloaded = d.get("overloaded")
        deployments.append(
            [
                (d["name"], "bad") if overloaded else d["name"], d["kind"],
                fmt_count(d["requests"]), fmt_count(d["spilled"]),
                _ci(d, "monthly_cost_usd", fmt_usd), fmt_usd(d["usd_per_1m_tokens"], True),
                fmt_share(d["utilization"]), fmt_share(d.get("throughput_utilization")),
                "-" if replicas is None else f"{replicas:.2f}", fmt_hours(d["gpu_hours"]),
                ("YES", "bad") if overloaded else ("-" if overloaded is None else "no"),
            ]
        )  # fmt: skip
    parts.append(
        _table(
            "Deployments",
            ["deployment", "kind", "requests", "spilled", "monthly cost", "$/1M tokens", "busy",
             "throughput vs max", "replicas (mean)", "GPU-hours", "overloaded"],
            deployments,
        )
    )  # fmt: skip
    for d in report["deployments"]:
        if d.get("replica_availability") is not None:
            parts.append(f"<p>{html.escape(failure_line(d))}</p>")
    for key, rows in report["breakdowns"].items():
        parts.append(
            _table(
                f"By {key}",
                [key, "requests", "input tokens", "output tokens", "monthly cost", "$/1M tokens"],
                [
                    [
                        r["value"], fmt_count(r["requests"]), fmt_count(r["input_tokens"]),
                        fmt_count(r["output_tokens"]), fmt_usd(r["monthly_cost_usd"]),
                        fmt_usd(r["usd_per_1m_tokens"], True),
                    ]
                    for r in rows
                ],
            )
        )  # fmt: skip
    parts.append(_table("Assumptions", ["what", "value"], assumptions(report, scenario)))
    return "\n".join(parts)


def _tokens_a_month(value: float) -> str:
    return f"{value / 1e9:,.2f}B" if value >= 1e9 else f"{value / 1e6:,.1f}M"


# a plan's figures as the terminal shows them: a label with its unit, and a format
_PLAN_FIGURES: dict[str, tuple[str, Any]] = {
    "scenario": ("scenario", str),
    "deployment": ("deployment sized", str),
    "gpu": ("GPU", str),
    "gpus_per_replica": ("GPUs a replica", str),
    "price_per_gpu_hour": ("price per GPU-hour", lambda v: fmt_usd(v, True)),
    "replications": ("replications a size", str),
    "replicas": ("replicas reserved", str),
    "monthly_cost_usd": ("monthly cost", fmt_usd),
    "slo_met": ("meets every SLO", lambda v: "yes" if v else "no"),
    "refused_monthly": ("requests refused a month", lambda v: f"{v:,.0f}"),
    "refused_share": ("share refused", lambda v: f"{v:.2%}"),
    "serverless_monthly_cost_usd": ("the same traffic on serverless, a month", fmt_usd),
    "batch_monthly_cost_usd": ("the same traffic on batch, a month", fmt_usd),
    "monthly_tokens": ("tokens a month", _tokens_a_month),
    "simulated_route": ("route simulated in the report below", str),
}


def plan_table(summary: dict[str, Any]) -> str:
    """A plan's answer as a table of its figures, labelled and formatted as the terminal's."""
    rows = []
    for key, value in summary.items():
        label, fmt = _PLAN_FIGURES.get(key, (key.replace("_", " "), str))
        if value is None:
            shown = "-"
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        elif key in _PLAN_FIGURES:
            shown = fmt(value)
        elif isinstance(value, float):
            shown = fmt_usd(value) if key.endswith("usd") else f"{value:,.4g}"
        else:
            shown = str(value)
        rows.append([label, shown])
    return _table("Plan", ["figure", "value"], rows)


def forecast_shown(f: dict[str, Any]) -> list[str]:
    """The strategies a forecast's table and chart show: serverless, the recommendation,
    the reservations sized for the first and the last month, on-demand."""
    names = {s["name"] for s in f["strategies"]}
    rows = f["rows"]
    shown = ["serverless"]
    for name in (
        f["recommendation"]["name"],
        f"reserve-{rows[0]['replicas_needed']}",
        f"reserve-{rows[-1]['replicas_needed']}",
        "on-demand",
    ):
        if name in names and name not in shown:
            shown.append(name)
    return shown


def forecast_table(f: dict[str, Any]) -> str:
    """A forecast month by month, then every strategy's total over the term."""
    strategies = {s["name"]: s for s in f["strategies"]}
    shown = forecast_shown(f)
    rows: list[list[Any]] = []
    for row in f["rows"]:
        k = row["month"] - 1
        rows.append(
            [row["month"], f"x{row['traffic_factor']:.2f}",
             "-" if row["replicas_needed"] is None else row["replicas_needed"],
             *(fmt_usd(strategies[n]["monthly_usd"][k]) for n in shown)]
        )  # fmt: skip
    monthly = _table(
        f"Forecast: {f['months']} months at {f['growth']:+.1%} a month",
        ["month", "traffic", "replicas needed", *shown],
        rows,
    )
    best = f["recommendation"]["name"]
    totals = [
        [
            (s["name"], "ok" if s["name"] == best else ""),
            "-" if s["replicas"] is None else s["replicas"],
            fmt_usd(s["total_usd"]),
            {True: ("yes", "ok"), False: ("no", "bad"), None: "not simulated"}[
                s["slo_met_all_months"]
            ],
        ]
        for s in f["strategies"]
    ]
    return monthly + "\n" + _table(
        "Strategies over the term", ["strategy", "replicas", "total", "SLOs met every month"],
        totals,
    )
