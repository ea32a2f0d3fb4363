"""`--out DIR`: the JSON report, per-request records and an HTML report with plots
(matplotlib, embedded as PNG) for a run, or for the fleet a plan chose."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from simulator.files import StagedWrites
from simulator.records import Outcome
from simulator.report.build import to_json
from simulator.report.html_tables import plan_table, report_sections
from simulator.report.result import Result
from simulator.report.tables import overload_warning


def _figure_svg(fig: Any) -> str:
    """The figure as inline SVG markup: vector, searchable, the same bytes for the same run
    (fixed id salt, no creation date)."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": "capsim", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cost_plot(report: dict[str, Any]) -> str:
    """Monthly cost by deployment and by workload."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, key, label in (
        (axes[0], "deployments", "deployment"),
        (axes[1], "workloads", "workload"),
    ):
        rows = report[key]
        names = [r["name"] for r in rows]
        costs = [r["monthly_cost_usd"] for r in rows]
        ax.barh(names, costs, color="#4c72b0")
        ci = bool(rows) and all(r.get("monthly_cost_usd_ci95") for r in rows)  # replications
        if ci:
            low = [c - r["monthly_cost_usd_ci95"][0] for c, r in zip(costs, rows, strict=True)]
            high = [r["monthly_cost_usd_ci95"][1] - c for c, r in zip(costs, rows, strict=True)]
            ax.errorbar(
                costs,
                names,
                xerr=[np.maximum(low, 0.0), np.maximum(high, 0.0)],
                fmt="none",
                ecolor="black",
                capsize=4,
                gid=f"{key}-ci95",
            )
        ax.set_xlabel("USD per month")
        ax.set_title(f"Monthly cost by {label}" + (" (whiskers: 95% CI)" if ci else ""))
    fig.tight_layout()
    return _figure_svg(fig)


def crossover_plot(result: Result) -> str:
    """Monthly cost against monthly volume: serverless and batch grow with tokens, a
    reservation is flat (the fleet of this run); the crossover is the break-even."""
    plt = _plt()
    report = result.report
    scenario = result.scenario
    scale = scenario.month / scenario.horizon
    tokens = (report["totals"]["input_tokens"] + report["totals"]["output_tokens"]) * scale
    serverless = batch = 0.0
    for w in report["workloads"]:
        if w.get("unattributed"):
            continue
        spec = scenario.workload(w["name"])
        batch_price = scenario.models[spec.model].batch_price
        n_in, n_out = w["input_tokens"] * scale, w["output_tokens"] * scale
        listed = w["serverless_list_cost_usd"]  # long-context tiers per request
        serverless += listed * scale
        if batch_price is not None:
            batch += (n_in * batch_price.input + n_out * batch_price.output) / 1e6
        else:
            batch += listed * scale / 2
    reserved = sum(
        d["monthly_cost_usd"] for d in report["deployments"] if d.get("gpu_hours") is not None
    )
    capacity = fleet_capacity_tokens(report, scenario.month)
    top = max(tokens, 1.0) * 3
    if capacity is not None:
        top = max(top, capacity * 1.2)
    volumes = np.linspace(0, top, 60)
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    if tokens > 0:
        ax.plot(volumes / 1e9, serverless / tokens * volumes, label="serverless")
        ax.plot(volumes / 1e9, batch / tokens * volumes, label="batch (if latency allows)")
    if reserved > 0:
        # the fleet serves no more than its modeled capacity: the line stops there
        end = capacity if capacity is not None else top
        ax.plot([0, end / 1e9], [reserved, reserved], label="dedicated (this fleet)")
        if capacity is not None:
            ax.plot([end / 1e9], [reserved], "x", color="C2", label="its modeled capacity")
    ax.axvline(tokens / 1e9, color="grey", linestyle=":", label="this scenario")
    ax.set_xlabel("billion tokens per month")
    ax.set_ylabel("USD per month")
    ax.set_title("Cost against monthly volume")
    ax.legend()
    return _figure_svg(fig)


def fleet_capacity_tokens(report: dict[str, Any], month: float) -> float | None:
    """Tokens a month the run's dedicated fleets can serve at most: each one's mean
    replicas x one replica's modeled saturated output tokens/s, scaled to input + output
    tokens by its own traffic's ratio (None without a dedicated fleet that served tokens)."""
    total = 0.0
    for d in report["deployments"]:
        peak = d.get("modeled_max_output_tokens_per_s_per_replica")
        if not peak or not d.get("output_tokens"):
            continue
        ratio = (d["input_tokens"] + d["output_tokens"]) / d["output_tokens"]
        total += d["replicas_mean"] * peak * ratio * month
    return total or None


def latency_plot(result: Result) -> str:
    """Latency CDFs per workload, with the SLO targets as vertical lines."""
    plt = _plt()
    run = result.runs[0]
    r = run.records
    scenario = result.scenario
    metrics = ("ttft", "tpot", "e2e")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    done = (r.outcome == Outcome.COMPLETED) & (r.arrival >= scenario.warmup)
    for w, workload in enumerate(scenario.workloads):
        mine = done & (r.workload == w)
        values = {
            "ttft": (r.first_token - r.arrival)[mine],
            "e2e": (r.finish - r.arrival)[mine],
        }
        out = r.output_tokens[mine]
        first, finish = r.first_token[mine], r.finish[mine]
        has = np.isfinite(first) & (out > 1)
        values["tpot"] = (finish[has] - first[has]) / (out[has] - 1)
        for ax, metric in zip(axes, metrics, strict=True):
            v = np.sort(values[metric][np.isfinite(values[metric])])
            if len(v):
                ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=workload.name)
            for target in workload.slo_targets():
                if target.metric == metric:
                    ax.axvline(target.target_s, linestyle="--", color="red", alpha=0.6)
                    ax.axhline(target.quantile, linestyle=":", color="red", alpha=0.4)
    # with replications: each SLO's observed quantile, averaged over them, and its 95% CI
    for row in result.report["workloads"]:
        for entry in row.get("slo", []):
            ci = entry.get("observed_s_ci95")
            observed = entry.get("observed_s")
            if not ci or observed is None or entry["metric"] not in metrics:
                continue
            ax = axes[metrics.index(entry["metric"])]
            ax.errorbar(
                [observed],
                [entry["quantile"]],
                xerr=[[max(0.0, observed - ci[0])], [max(0.0, ci[1] - observed)]],
                fmt="o",
                color="black",
                markersize=3,
                capsize=4,
                gid=f"slo-ci95-{row['name']}-{entry['key']}",
            )
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set_xlabel(f"{metric.upper()} (s)")
        ax.set_title(f"{metric.upper()} CDF (dashed: SLO)")
        if metric != "tpot":
            ax.set_xscale("log")
    axes[0].set_ylabel("share of requests")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _figure_svg(fig)


def fleet_plot(result: Result) -> str | None:
    """Replicas, queue length and busy share over time for dedicated deployments."""
    plt = _plt()
    report = result.report
    run = result.runs[0]
    r = run.records
    horizon = result.scenario.horizon
    pools = [(j, d) for j, d in enumerate(report["deployments"]) if d.get("gpu_hours") is not None]
    if not pools:
        return None
    grid = np.linspace(0, horizon, 241)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for j, d in pools:
        timeline = np.asarray(d["replicas_timeline"], dtype=np.float64)
        steps = np.searchsorted(timeline[:, 0], grid, side="right") - 1
        replicas = timeline[np.maximum(steps, 0), 1]
        axes[0].step(grid / 3600, replicas, where="post", label=d["name"])
        mine = r.deployment == j
        arrived = _count_until(r.arrival[mine], grid)
        started = _count_until(r.start[mine], grid)
        waiting = arrived - started  # arrival <= start: those in between are waiting
        axes[1].plot(grid / 3600, waiting, label=d["name"])
        running = started - _count_until(r.finish[mine], grid)
        capacity = np.maximum(replicas, 1) * result.scenario.deployments[j].max_batch  # type: ignore[union-attr]
        axes[2].plot(grid / 3600, running / capacity, label=d["name"])
    for ax, title in zip(
        axes, ("replicas up", "requests waiting", "batch slots in use"), strict=True
    ):
        ax.set_xlabel("hours")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _figure_svg(fig)


def _count_until(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """How many of `times` are <= each grid point."""
    counts: np.ndarray = np.searchsorted(np.sort(times), grid, side="right")
    return counts


def search_plot(plan: dict[str, Any]) -> str:
    """The plan's search: monthly cost and SLO attainment against replicas."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for spill, style in ((False, "o-"), (True, "s--")):
        rows = [row for row in plan["curve"] if row["spillover"] == spill]
        if rows:
            ax.plot(
                [row["replicas"] for row in rows],
                [row["monthly_cost_usd"] for row in rows],
                style,
                label="monthly cost" + (" with overflow" if spill else ""),
            )
    ax.set_xlabel("reserved replicas")
    ax.set_ylabel("USD per month")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    twin = ax.twinx()
    for spill, style in ((False, "o:"), (True, "s:")):
        rows = [row for row in plan["curve"] if row["spillover"] == spill]
        if rows:
            twin.plot(
                [row["replicas"] for row in rows],
                [row["min_attainment"] or 0 for row in rows],
                style,
                color="green",
                alpha=0.6,
            )
    twin.set_ylabel("lowest SLO attainment", color="green")
    ax.set_title("Plan search: cost and SLO attainment")
    ax.legend(fontsize=8)
    return _figure_svg(fig)


def forecast_plot(f: dict[str, Any]) -> str:
    """A forecast: each strategy's monthly cost, and the fleet needed against the fleet
    reserved, with the month the recommendation breaks even."""
    from simulator.report.html_tables import forecast_shown

    plt = _plt()
    fig, (cost, fleet) = plt.subplots(1, 2, figsize=(11, 3.6))
    months = [row["month"] for row in f["rows"]]
    strategies = {s["name"]: s for s in f["strategies"]}
    for name in forecast_shown(f):
        cost.plot(months, strategies[name]["monthly_usd"], "o-", label=name, markersize=3)
    rec = f["recommendation"]
    if rec["break_even_month"]:
        cost.axvline(rec["break_even_month"], color="grey", linestyle=":",
                     label=f"{rec['name']} ahead from here")  # fmt: skip
    cost.set_xlabel("month")
    cost.set_ylabel("USD per month")
    cost.set_title("Monthly cost by strategy")
    cost.legend(fontsize=8)
    needed = [row["replicas_needed"] for row in f["rows"]]
    fleet.step(months, [n if n is not None else float("nan") for n in needed], where="mid",
               label="replicas needed")  # fmt: skip
    if rec["name"].startswith("reserve-"):
        fleet.axhline(rec["replicas"], color="C1", linestyle="--",
                      label=f"reserved ({rec['replicas']})")  # fmt: skip
    fleet.set_xlabel("month")
    fleet.set_ylabel("replicas")
    fleet.set_title("Fleet needed against fleet reserved")
    fleet.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    for ax in (cost, fleet):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fleet.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _figure_svg(fig)


def html_page(
    title: str,
    summary: str,
    images: list[tuple[str, str]],
    data: dict[str, Any],
    warnings: list[str] | None = None,
    sections: str = "",
) -> str:
    """A self-contained page: the summary, its warnings, the data as a table (or the
    report's own tables, `sections`), the plots."""
    alerts = "\n".join(f'<p class="warning">{html.escape(text)}</p>' for text in warnings or [])
    figures = "\n".join(
        f'<figure role="img" aria-label="{html.escape(caption)}">{svg}'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, svg in images
    )
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_short(v))}</td></tr>"
        for k, v in data.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1250px;margin:2em auto;color:#222}}
figure{{margin:1.5em 0}} figure svg{{max-width:100%;height:auto}} table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}} .summary{{font-size:1.05em}}
td+td{{text-align:right}} h2{{margin-top:1.5em;font-size:1.15em}}
.warning,.bad{{color:#b00;font-weight:bold}} .ok{{color:#070}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="summary">{html.escape(summary)}</p>
{alerts}
{sections or f"<table>{rows}</table>"}
{figures}
</body></html>
"""


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def run_images(result: Result) -> list[tuple[str, str]]:
    images = [
        ("Monthly cost by deployment and workload", cost_plot(result.report)),
        ("Cost against monthly volume: serverless, batch, dedicated", crossover_plot(result)),
        ("Latency CDFs against the SLO targets", latency_plot(result)),
    ]
    fleet = fleet_plot(result)
    if fleet is not None:
        images.append(("Replicas, queue and batch use over time", fleet))
    return images


def run_warnings(report: dict[str, Any]) -> list[str]:
    """What a reader must know before trusting the figures: overloaded deployments."""
    horizon = report["horizon_s"]
    return [overload_warning(d, horizon) for d in report["deployments"] if d.get("overloaded")]


def write_run_outputs(
    result: Result, out: Path, staging: StagedWrites | None = None
) -> list[Path]:
    """report.json, records (Parquet with pyarrow, else CSV) and report.html, renamed into
    place together (`StagedWrites`; into `staging` when given, its owner committing)."""
    if staging is None:
        with StagedWrites() as own:
            return write_run_outputs(result, out, own)
    out.mkdir(parents=True, exist_ok=True)
    frame = result.all_records  # every replication, told apart by `replication`
    metadata = to_json(records_metadata(result))
    paths = []
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        records_path = out / "records.parquet"
        table = pa.Table.from_pandas(frame, preserve_index=False)
        schema_metadata = {**(table.schema.metadata or {}), b"capsim": metadata.encode()}
        table = table.replace_schema_metadata(schema_metadata)
        staging.write(records_path, lambda tmp: pq.write_table(table, tmp))
    except ImportError:  # CSV has no metadata: it goes beside the file
        records_path = out / "records.csv"
        staging.write(records_path, lambda tmp: frame.to_csv(tmp, index=False))
        meta_path = out / "records.metadata.json"
        staging.text(meta_path, metadata + "\n")
        paths.append(meta_path)
    report_path = out / "report.json"
    staging.text(report_path, to_json(result.report) + "\n")
    totals = result.report["totals"]
    summary = (
        f"{totals['requests']:,.0f} requests over {result.scenario.horizon / 3600:g} h: "
        f"${totals['monthly_cost_usd']:,.0f} a month, "
        f"${totals['usd_per_1m_tokens'] or 0:,.2f} per 1M tokens."
    )
    page = html_page(
        f"capsim report: {result.scenario.name}",
        summary,
        run_images(result),
        {k: v for k, v in totals.items() if not k.endswith("_ci95")},
        warnings=run_warnings(result.report),
        sections=report_sections(result.report, result.scenario),
    )
    html_path = out / "report.html"
    staging.text(html_path, page)
    return [report_path, records_path, *paths, html_path]


def records_metadata(result: Result) -> dict[str, Any]:
    """What the records file carries about its run: the scenario, its seed, horizon and
    replications, the columns' units, and the report's provenance."""
    report = result.report
    return {
        "scenario": report["scenario"],
        "seed": report["seed"],
        "horizon_s": report["horizon_s"],
        "warmup_s": report["warmup_s"],
        "replications": report["replications"],
        "units": "columns ending in _s are seconds, _usd US dollars; tokens are counts",
        "provenance": report["provenance"],
    }


def write_plan_outputs(plan: dict[str, Any], out: Path) -> list[Path]:
    """plan.json, and the chosen fleet's report, records and HTML (with the search curve)."""
    with StagedWrites() as staging:
        return _write_plan_outputs(plan, out, staging)


def _write_plan_outputs(plan: dict[str, Any], out: Path, staging: StagedWrites) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    result: Result | None = plan.get("_results")
    clean = {k: v for k, v in plan.items() if k != "_results"}
    plan_path = out / "plan.json"
    staging.text(plan_path, json.dumps(json.loads(to_json(clean)), indent=2) + "\n")
    written = [plan_path]
    images = [("Plan search: cost and SLO attainment against replicas", search_plot(clean))]
    forecast = clean.get("forecast")
    if forecast is not None:
        images.insert(0, ("Forecast: cost by strategy, fleet needed", forecast_plot(forecast)))
    if result is not None:
        written += write_run_outputs(result, out, staging)[:2]
        images += run_images(result)
    summary = {
        k: v
        for k, v in clean.items()
        if k
        not in ("curve", "verdict", "workloads", "break_even", "cheapest_mix", "gpu_options",
                "capacity_bound", "search", "warnings", "forecast")
    }  # fmt: skip
    sections = plan_table(summary)
    if forecast is not None:
        from simulator.report.html_tables import forecast_table

        sections = forecast_table(forecast) + "\n" + sections
    if result is not None:  # the chosen fleet's report, as a run's
        sections += "\n" + report_sections(result.report, result.scenario)
    page = html_page(
        f"capsim plan: {clean['scenario']}",
        clean["verdict"] + (" " + forecast["verdict"] if forecast is not None else ""),
        images,
        summary,
        warnings=(run_warnings(result.report) if result is not None else []) + clean["warnings"],
        sections=sections,
    )
    html_path = out / "report.html"
    staging.text(html_path, page)
    return [*written, html_path]
