"""`capsim plan`: the cheapest fleet that meets every SLO, and the year-ahead forecast."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from simulator.cli.app import _naming, _progress, force_option, quiet_option, write_outputs
from simulator.errors import CapsimError
from simulator.files import check_out_dir, kind_of

if TYPE_CHECKING:
    from simulator.scenario.format import Scenario


def _gpu_price_table(text: str, path: Path) -> dict[str, Any]:
    """`{GPU: price}` from CSV text with columns `gpu` and `usd_per_gpu_hour` (the bundled
    catalog's, so a copy of simulator/data/gpus.csv works); rows with no price are skipped."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    data: dict[str, Any] = {}
    try:
        header = [name.strip() for name in next(reader, [])]
        if "gpu" not in header or "usd_per_gpu_hour" not in header:
            raise CapsimError(
                f"{path}: a CSV of GPU prices needs the columns gpu and usd_per_gpu_hour "
                f"(found: {', '.join(header) or 'none'})"
            )
        name_at, price_at = header.index("gpu"), header.index("usd_per_gpu_hour")
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(header):
                fields = f"{len(row)} field{'s' if len(row) != 1 else ''}"
                raise CapsimError(f"{where}: {fields}, the header has {len(header)}")
            gpu, price = row[name_at].strip(), row[price_at].strip()
            if not price:
                continue
            if not gpu:
                raise CapsimError(f"{where}: gpu: empty")
            if gpu in data:
                raise CapsimError(f"{where}: {gpu}: priced twice")
            try:
                data[gpu] = float(price)
            except ValueError:
                raise CapsimError(
                    f"{where}: usd_per_gpu_hour: expected a number"
                ) from None
    except csv.Error as exc:
        raise CapsimError(f"{path}: line {reader.line_num}: not readable as CSV ({exc})") from None
    return data


def _gpu_prices(path: Path) -> dict[str, float]:
    """`{GPU: USD per GPU-hour}` from a YAML mapping or a CSV (`gpu,usd_per_gpu_hour`), each
    GPU known and each price finite."""
    import math

    from simulator.files import read_text
    from simulator.scenario.limits import MAX_USD_PER_GPU_HOUR
    from simulator.scenario.loader import parse_yaml
    from simulator.serving.hardware import find_gpu, gpu_names

    text = read_text(path, "GPU price file")
    if path.suffix.lower() == ".csv":
        data: Any = _gpu_price_table(text, path)
    else:
        data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise CapsimError(
            f"{path}: expected a mapping of GPU to USD per GPU-hour (YAML such as "
            "`H100-SXM: 2.99`), or a .csv file with columns gpu,usd_per_gpu_hour"
        )
    prices = {}
    for gpu, price in data.items():
        if find_gpu(str(gpu)) is None:
            raise CapsimError(f"{path}: {gpu}: unknown GPU (known: {', '.join(gpu_names())})")
        if (
            isinstance(price, bool)
            or not isinstance(price, int | float)
            or not math.isfinite(price)
            or not 0 <= price <= MAX_USD_PER_GPU_HOUR
        ):
            raise CapsimError(
                f"{path}: {gpu}: expected USD per GPU-hour between 0 and "
                f"{MAX_USD_PER_GPU_HOUR:,.0f}, got {kind_of(price)}"
            )
        prices[str(gpu)] = float(price)
    return prices


@click.command("plan")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--deployment", help="the dedicated deployment to size (default: the first)")
@click.option("--max-replicas", default=16, show_default=True, type=click.IntRange(1, 1000))
@click.option("--gpus", help="also try these GPU types, e.g. H100-SXM,H200,B200; the cheapest wins")
@click.option(
    "--tp",
    "tps",
    help="also try these GPUs a replica (tensor parallel), e.g. 1,2,4,8; every shape a row",
)
@click.option(
    "--engines",
    help="also try these engines' measured kernels, e.g. trtllm,vllm,sglang",
)
@click.option(
    "--replications",
    type=click.IntRange(1, 1000),
    help="runs per fleet size (default: the scenario's, at least 3)",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="local processes for a fleet's replications and a forecast's months (same answer)",
)
@click.option(
    "--dask",
    "dask_address",
    help="run them on a Dask cluster instead, e.g. tcp://host:8786 (same answer)",
)
@click.option(
    "--spare",
    type=click.IntRange(0, 1000),
    default=0,
    show_default=True,
    help="replicas on top of the fleet that meets the SLOs, so it still does with that "
    "many down (N + K)",
)
@click.option(
    "--gpu-prices",
    type=click.Path(path_type=Path),
    help="YAML {GPU: USD per GPU-hour} (or a .csv with columns gpu,usd_per_gpu_hour) for "
    "--gpus: GPUs without a bundled price, or yours",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="PATH=VALUE",
    help="change the scenario before planning, e.g. deployments.pool.gpu=H200 (repeatable)",
)
@click.option(
    "--months",
    type=click.IntRange(1, 120),
    help="forecast this many months of growing traffic: the fleet each month needs and "
    "what serverless, reserving and on-demand cost over the term",
)
@click.option(
    "--growth",
    default="0",
    show_default=True,
    help="traffic growth a month for --months, e.g. 8% or 0.08",
)
@click.option(
    "--growth-sd",
    help="uncertainty of the monthly growth (standard deviation, e.g. 5%): the chance a "
    "reservation costs more than serverless",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="also write plan.json and an HTML report of the chosen fleet",
)
@force_option
@quiet_option
def plan_command(
    scenario: Path,
    deployment: str | None,
    max_replicas: int,
    gpus: str | None,
    tps: str | None,
    engines: str | None,
    replications: int | None,
    workers: int,
    dask_address: str | None,
    spare: int,
    gpu_prices: Path | None,
    settings: tuple[str, ...],
    months: int | None,
    growth: str,
    growth_sd: str | None,
    fmt: str,
    out: Path | None,
    force: bool,
    quiet: bool,
) -> None:
    """Find the cheapest fleet that meets every SLO, and whether to reserve it."""
    from simulator.report.build import to_json
    from simulator.report.tables import console_for_tables
    from simulator.scenario.loader import load_scenario
    from simulator.studies.plan import plan

    if dask_address is not None:
        from simulator.studies.cluster import check_dask_address

        if workers != 1:
            raise CapsimError("give --workers or --dask, not both")
        check_dask_address(dask_address)
    spec = _with_settings(scenario, settings) if settings else load_scenario(scenario)
    if out is not None:
        check_out_dir(out)
    rate = _share("--growth", growth)
    spread = _share("--growth-sd", growth_sd) if growth_sd is not None else None
    if months is None and (growth_sd is not None or rate != 0):
        raise click.UsageError("--growth and --growth-sd need --months")
    shapes = _tp_list(tps), _engine_list(engines)
    if spare and (months is not None or gpus or tps or engines):
        raise click.UsageError("--spare plans one fleet: drop --months, --gpus, --tp, --engines")
    if months is not None and (gpus or tps or engines):
        raise click.UsageError("--months forecasts one replica shape: drop --gpus, --tp, --engines")
    with _progress(not quiet, f"planning {spec.name}") as progress, _naming(scenario):
        if months is not None:
            from simulator.studies.forecast import forecast

            answer = forecast(
                spec, months, rate, spread, deployment, max_replicas, replications, progress,
                force, workers, dask=dask_address,
            )  # fmt: skip
        elif gpus or tps or engines:
            from simulator.studies.plan import plan_gpu_types

            names = [g.strip() for g in (gpus or "").split(",") if g.strip()]
            prices = _gpu_prices(gpu_prices) if gpu_prices is not None else None
            answer = plan_gpu_types(
                spec, names, deployment, max_replicas, replications, progress, force, workers,
                prices, *shapes, dask=dask_address,
            )  # fmt: skip
        else:
            answer = plan(
                spec, deployment, max_replicas, replications, progress, force, workers,
                dask_address, spare,
            )  # fmt: skip
    if out is not None:
        from simulator.report.html import write_plan_outputs

        write_outputs(write_plan_outputs, answer, out)
    answer.pop("_results", None)
    if fmt == "json":
        click.echo(to_json(answer))
        return
    table = Table(
        title=f"Plan for {answer['deployment']} ({answer['gpus_per_replica']} x "
        f"{answer['gpu']} a replica)",
        title_justify="left",
    )
    for column in (
        "replicas",
        "overflow",
        "runs",
        "monthly cost",
        "SLOs met",
        "min attainment",
        "refused",
        "sent on",
        "load",
    ):
        table.add_column(column, justify="right")
    for row in answer["curve"]:
        load = row["offered_load"]
        table.add_row(
            str(row["replicas"]),
            "yes" if row["spillover"] else "no",
            str(row["replications"]),
            f"${row['monthly_cost_usd']:,.0f}",
            "yes" if row["slo_met"] else "no",
            "-" if row["min_attainment"] is None else f"{row['min_attainment']:.1%}",
            f"{row['refused']:,.0f}" + (f" ({row['refused_share']:.2%})" if row["refused"] else ""),
            ("all" if row["replicas"] == 0 else f"{row['overflowed']:,.0f}")
            if row["spillover"]
            else "-",
            ("-" if load is None else f"{load:.0%}") + (" overloaded" if row["overloaded"] else ""),
            style="red" if row["overloaded"] else None,
        )
    bound = answer["capacity_bound"]
    table.caption = (
        "refused: requests turned away in the run (a share of those routed here); sent on: "
        "overflow served by the next route entry. "
        f"load: work offered against the fleet's modeled capacity. Searched from the capacity "
        f"bound of {bound['replicas']} replica{'s' if bound['replicas'] != 1 else ''}: "
        f"{answer['search']['runs']} runs over {answer['search']['sizes_tried']} sizes."
    )
    table.caption_justify = "left"
    console = console_for_tables()
    console.print(table)
    if answer.get("gpu_options"):
        console.print(shapes_table(answer["gpu_options"]))
    console.print(answer["verdict"], soft_wrap=False)
    if "forecast" in answer:
        console.print(forecast_table(answer["forecast"]))
        console.print(answer["forecast"]["verdict"], soft_wrap=False)


def _with_settings(path: Path, settings: tuple[str, ...]) -> Scenario:
    """The scenario at `path` with each `PATH=VALUE` of --set applied (VALUE read as YAML)."""

    from simulator.scenario.loader import parse_yaml, read_scenario_data, scenario_from_data
    from simulator.scenario.variants import set_path

    data, source, base_dir = read_scenario_data(path)
    for setting in settings:
        if "=" not in setting:
            raise CapsimError(f"--set: expected PATH=VALUE, got {setting!r}")
        key, text = setting.split("=", 1)
        data = set_path(data, key.strip(), parse_yaml(text, f"--set {key.strip()}"), "--set")
    shown = ", ".join(settings)
    return scenario_from_data(data, f"{source} with {shown}", base_dir)


def shapes_table(options: list[dict[str, Any]]) -> Table:
    """Every replica shape `plan` tried: its fleet and cost, or why it cannot serve."""
    table = Table(title="Replica shapes tried", title_justify="left")
    for column in ("GPU", "GPUs a replica", "priced by", "replicas", "monthly cost", "SLOs met"):
        table.add_column(column, justify="left" if column in ("GPU", "priced by") else "right")
    for o in options:
        priced = o.get("performance_model") or "-"
        if o.get("engine") and priced == "kernels":
            priced += f" ({o['engine']})"
        if o.get("error"):
            table.add_row(o["gpu"], str(o["gpus_per_replica"]), priced, "-", o["error"], "no")
            continue
        cost = o["monthly_cost_usd"]
        table.add_row(
            o["gpu"],
            str(o["gpus_per_replica"]),
            priced,
            "-" if o["replicas"] is None else str(o["replicas"]),
            "-" if cost is None else f"${cost:,.0f}",
            "yes" if o["slo_met"] else "no",
        )
    return table


def _tp_list(text: str | None) -> list[int] | None:
    """--tp's GPUs a replica: whole numbers 1-64, comma-separated."""
    if text is None:
        return None
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= 64:
            raise click.BadParameter(
                f"expected whole numbers 1-64, comma-separated, got {part!r}", param_hint="--tp"
            )
        values.append(int(part))
    return list(dict.fromkeys(values))


def _engine_list(text: str | None) -> list[str] | None:
    """--engines: trtllm, vllm or sglang, comma-separated."""
    if text is None:
        return None
    from simulator.serving.kernels import ENGINES

    values = [p.strip().lower() for p in text.split(",")]
    for value in values:
        if value not in ENGINES:
            raise click.BadParameter(
                f"unknown engine {value!r} (known: {', '.join(ENGINES)})", param_hint="--engines"
            )
    return list(dict.fromkeys(values))


def _share(option: str, text: str) -> float:
    """A rate a month written 8% or 0.08."""
    value = text.strip()
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise click.BadParameter(
            f"expected a share such as 8% or 0.08, got {text!r}", param_hint=option
        ) from None


def forecast_table(f: dict[str, Any]) -> Table:
    """Month by month: traffic, the fleet needed, and the cost of the strategies that
    matter (serverless, the recommendation, the reservation sized for month 1 and for the
    last month, on-demand)."""
    from simulator.report.html_tables import forecast_shown

    strategies = {s["name"]: s for s in f["strategies"]}
    rows = f["rows"]
    shown = forecast_shown(f)
    table = Table(
        title=f"Forecast for {f['deployment']}: {f['months']} months at {f['growth']:+.1%} a month",
        title_justify="left",
    )
    for column in ("month", "traffic", "replicas needed", *shown):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["month"]),
            f"x{row['traffic_factor']:.2f}",
            "-" if row["replicas_needed"] is None else str(row["replicas_needed"]),
            *(f"${strategies[name]['monthly_usd'][row['month'] - 1]:,.0f}" for name in shown),
        )
    table.add_row(
        "total", "", "",
        *(f"${strategies[name]['total_usd']:,.0f}" for name in shown),
        style="bold",
    )  # fmt: skip
    failing = [n for n in shown if strategies[n]["slo_met_all_months"] is False]
    table.caption = (
        f"{f['runs']} runs, {f['replications']} replication(s) a month. "
        + (f"SLOs missed in some month: {', '.join(failing)}. " if failing else "")
        + f"{len(f['strategies'])} strategies priced; JSON (--format json) lists them all."
    )
    table.caption_justify = "left"
    return table
