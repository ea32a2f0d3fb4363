"""The `capsim` command line. User errors print one message and exit with status 2."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from simulator.errors import CapsimError, RunTooLargeError
from simulator.files import check_out_dir
from simulator.report.build import to_json
from simulator.report.tables import console_for_tables, overload_warning, print_table, to_csv
from simulator.scenario.format import Scenario
from simulator.scenario.loader import load_scenario
from simulator.serving.catalog import bundled_catalog, load_catalog_file
from simulator.studies.run import run

EXIT_USAGE = 2
PROGRESS_MIN_REQUESTS = 200_000
MAX_FIT_SPAN_S = 400 * 86400.0
MAX_PROBE_CLIENTS = 10_000


def _style(text: str, **style: Any) -> str:
    """Coloured, unless NO_COLOR is set (no-color.org); rich's tables follow it too."""
    return text if os.environ.get("NO_COLOR") else click.style(text, **style)


def _warn(message: str) -> None:
    click.echo(_style("capsim: warning: ", fg="yellow", bold=True) + message, err=True)


def _fail(message: str) -> None:
    click.echo(_style("capsim: error: ", fg="red", bold=True) + message, err=True)
    sys.exit(EXIT_USAGE)


def _speculative(
    draft_tokens: int | None, acceptance_rate: float, draft: str | None
) -> dict[str, Any] | None:
    if draft_tokens is None:
        if draft is not None:
            raise CapsimError("--draft: give --draft-tokens too")
        return None
    spec: dict[str, Any] = {"draft_tokens": draft_tokens, "acceptance_rate": acceptance_rate}
    if draft is not None:
        spec["draft"] = draft
    return spec


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
                    f"{where}: usd_per_gpu_hour: expected a number, got {price!r}"
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
                f"{MAX_USD_PER_GPU_HOUR:,.0f}, got {price!r}"
            )
        prices[str(gpu)] = float(price)
    return prices


def _load(path: Path) -> Scenario:
    """A scenario from a file, or from standard input when the path is `-`."""
    if str(path) != "-":
        return load_scenario(path)
    from simulator.files import MAX_TEXT_BYTES
    from simulator.scenario.loader import parse_yaml, scenario_from_data

    text = sys.stdin.read(MAX_TEXT_BYTES + 1)
    if len(text) > MAX_TEXT_BYTES:
        raise CapsimError(f"<stdin>: over the limit of {MAX_TEXT_BYTES:,} characters")
    return scenario_from_data(parse_yaml(text, "<stdin>"), "<stdin>", Path.cwd())


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[float], None] | None]:
    """A rich progress bar on stderr, only for a terminal and when not quiet."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=1.0)
        yield lambda fraction: bar.update(task, completed=fraction)


@contextmanager
def _naming(path: Path | None) -> Iterator[None]:
    """Errors found while running (a run too large, a closed loop that never ends) name
    the scenario file, as errors found while loading do."""
    try:
        yield
    except RunTooLargeError as exc:
        if path is None or str(exc).startswith(str(path)):
            raise
        raise CapsimError(f"{path}: {exc}") from None


force_option = click.option(
    "--force", is_flag=True, help="run even when a run is estimated to be too large"
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="no progress bar")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="capsim")
def cli() -> None:
    """capsim: what LLM inference will cost per month, and whether it meets its SLOs."""


@cli.command("run")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="how to print the report",
)
@click.option("--seed", type=click.IntRange(min=0), help="override the scenario's seed")
@click.option("--replications", type=click.IntRange(1, 1000), help="independent runs to average")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="also write report.json, per-request records and report.html into this folder",
)
@click.option(
    "--fail-on-slo",
    is_flag=True,
    help="exit 1 when an SLO is missed (after printing the report): for CI gates",
)
@force_option
@quiet_option
def run_command(
    scenario: Path,
    fmt: str,
    seed: int | None,
    replications: int | None,
    out: Path | None,
    fail_on_slo: bool,
    force: bool,
    quiet: bool,
) -> None:
    """Simulate SCENARIO (`-`: standard input) and print its report."""
    spec = _load(scenario)
    if out is not None:
        check_out_dir(out)
    big = spec.expected_requests() * (replications or spec.replications) >= PROGRESS_MIN_REQUESTS
    label = f"simulating {spec.name}"
    with _progress(big and not quiet, label) as progress, _naming(scenario):
        result = run(spec, seed=seed, replications=replications, progress=progress, force=force)
    if fmt == "json":
        click.echo(to_json(result.report))
    elif fmt == "csv":
        click.echo(to_csv(result.report), nl=False)
    else:
        print_table(result.report)
    if fmt != "table":  # the table prints it; JSON and CSV readers get it on stderr
        for d in result.report["deployments"]:
            if d.get("overloaded"):
                _warn(overload_warning(d, result.report["horizon_s"]))
    if out is not None:
        from simulator.report.html import write_run_outputs

        for path in write_run_outputs(result, out):
            click.echo(f"wrote {path}", err=True)
    if fail_on_slo:
        missed = [
            f"{w['name']} {e['key']}"
            for w in result.report["workloads"]
            for e in w["slo"]
            if e["met"] is False or e.get("met_share", 1.0) < 1.0
        ]
        if missed:
            _warn(f"SLO missed: {', '.join(missed)}")
            sys.exit(1)


@cli.command("compare")
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--vary",
    "vary",
    help="PATH=VALUES: one scenario, a variant per value "
    "(VALUES: 1,2,4 or a YAML list or @file.yaml)",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--seed", type=click.IntRange(min=0), help="the same seed for every variant")
@click.option("--replications", type=click.IntRange(1, 1000))
@force_option
@quiet_option
def compare_command(
    scenarios: tuple[Path, ...],
    vary: str | None,
    fmt: str,
    seed: int | None,
    replications: int | None,
    force: bool,
    quiet: bool,
) -> None:
    """The same report side by side: several SCENARIOS, or one with --vary PATH=VALUES."""
    from simulator.scenario.loader import read_scenario_data, scenario_from_data
    from simulator.scenario.variants import parse_values, set_path
    from simulator.studies.compare import Variant, compare, comparison_csv, comparison_table

    variants: list[Variant] = []
    if vary is not None:
        if len(scenarios) != 1:
            raise CapsimError("--vary takes exactly one scenario")
        if "=" not in vary:
            raise CapsimError(f"--vary: expected PATH=VALUES, got {vary!r}")
        path, values = vary.split("=", 1)
        data, source, base_dir = read_scenario_data(scenarios[0])
        for label, value in parse_values(values, base_dir):
            variant = set_path(data, path.strip(), value)
            spec = scenario_from_data(variant, f"{source} with {path}={label}", base_dir)
            variants.append(Variant(label, spec))
    else:
        if len(scenarios) < 2:
            raise CapsimError("give two or more scenarios, or one with --vary PATH=VALUES")
        variants = [Variant(p.stem, load_scenario(p)) for p in scenarios]
    named = scenarios[0] if len(scenarios) == 1 else None
    with _progress(not quiet, "comparing") as progress, _naming(named):
        results = compare(variants, replications, seed, progress, force)
    if fmt == "json":
        click.echo(to_json({"variants": results}))
    elif fmt == "csv":
        click.echo(comparison_csv(results), nl=False)
    else:
        console_for_tables().print(comparison_table(results))


@cli.command("plan")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--deployment", help="the dedicated deployment to size (default: the first)")
@click.option("--max-replicas", default=16, show_default=True, type=click.IntRange(1, 1000))
@click.option("--gpus", help="also try these GPU types, e.g. H100-SXM,H200,B200; the cheapest wins")
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
    replications: int | None,
    workers: int,
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
    from simulator.studies.plan import plan

    spec = _with_settings(scenario, settings) if settings else load_scenario(scenario)
    if out is not None:
        check_out_dir(out)
    rate = _share("--growth", growth)
    spread = _share("--growth-sd", growth_sd) if growth_sd is not None else None
    if months is None and (growth_sd is not None or rate != 0):
        raise click.UsageError("--growth and --growth-sd need --months")
    if months is not None and gpus:
        raise click.UsageError("--months forecasts one GPU type: drop --gpus")
    with _progress(not quiet, f"planning {spec.name}") as progress, _naming(scenario):
        if months is not None:
            from simulator.studies.forecast import forecast

            answer = forecast(
                spec, months, rate, spread, deployment, max_replicas, replications, progress,
                force, workers,
            )  # fmt: skip
        elif gpus:
            from simulator.studies.plan import plan_gpu_types

            names = [g.strip() for g in gpus.split(",") if g.strip()]
            prices = _gpu_prices(gpu_prices) if gpu_prices is not None else None
            answer = plan_gpu_types(
                spec, names, deployment, max_replicas, replications, progress, force, workers,
                prices,
            )  # fmt: skip
        else:
            answer = plan(spec, deployment, max_replicas, replications, progress, force, workers)
    if out is not None:
        from simulator.report.html import write_plan_outputs

        for path in write_plan_outputs(answer, out):
            click.echo(f"wrote {path}", err=True)
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
            f"{row['spilled']:,.0f}",
            ("-" if load is None else f"{load:.0%}") + (" overloaded" if row["overloaded"] else ""),
            style="red" if row["overloaded"] else None,
        )
    bound = answer["capacity_bound"]
    table.caption = (
        f"load: work offered against the fleet's modeled capacity. Searched from the capacity "
        f"bound of {bound['replicas']} replica{'s' if bound['replicas'] != 1 else ''}: "
        f"{answer['search']['runs']} runs over {answer['search']['sizes_tried']} sizes."
    )
    table.caption_justify = "left"
    console = console_for_tables()
    console.print(table)
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


def _share(option: str, text: str) -> float:
    """A rate a month written 8% or 0.08."""
    value = text.strip()
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise click.BadParameter(f"expected a share such as 8% or 0.08, got {text!r}",
                                 param_hint=option) from None


def forecast_table(f: dict[str, Any]) -> Table:
    """Month by month: traffic, the fleet needed, and the cost of the strategies that
    matter (serverless, the recommendation, the reservation sized for month 1 and for the
    last month, on-demand)."""
    from simulator.report.html_tables import forecast_shown

    strategies = {s["name"]: s for s in f["strategies"]}
    rows = f["rows"]
    shown = forecast_shown(f)
    table = Table(
        title=f"Forecast for {f['deployment']}: {f['months']} months at "
        f"{f['growth']:+.1%} a month",
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


@cli.command("sweep")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--grid",
    "grid_path",
    required=True,
    type=click.Path(path_type=Path),
    help="YAML: {vary: {PATH: [values]}, seeds: [..]}",
)
@click.option("--workers", type=click.IntRange(1, 1024), help="local processes (default: cores)")
@click.option("--dask", "dask_address", help="a Dask scheduler address, e.g. tcp://host:8786")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@quiet_option
def sweep_command(
    scenario: Path,
    grid_path: Path,
    workers: int | None,
    dask_address: str | None,
    fmt: str,
    quiet: bool,
) -> None:
    """Many runs of SCENARIO over a grid of paths and seeds: one row each."""
    from simulator.scenario.loader import parse_yaml, read_scenario_data
    from simulator.studies.sweep import grid_points, sweep

    if workers is not None and dask_address is not None:
        raise CapsimError("give --workers or --dask, not both")
    data, source, base_dir = read_scenario_data(scenario)
    from simulator.files import read_text

    grid = parse_yaml(read_text(grid_path, "grid"), str(grid_path))
    try:
        points = grid_points(grid)
    except CapsimError as exc:
        raise CapsimError(f"{grid_path}: {str(exc).removeprefix('--grid: ')}") from None
    with _progress(not quiet, f"sweeping {len(points)} runs") as progress:
        rows = sweep(data, base_dir, source, points, workers, dask_address, progress)
    _show_sweep(rows, fmt)
    if all(row["status"] != "ok" for row in rows):
        _warn(f"every one of the {len(rows)} runs failed (see their status)")
        sys.exit(1)


def _show_sweep(rows: list[dict[str, Any]], fmt: str) -> None:
    from simulator.report.build import TOTAL_KEYS as TOTALS

    if fmt == "json":
        click.echo(to_json(rows))
        return
    seen: dict[str, None] = {}  # every row's keys in first-seen order (failed rows have fewer)
    for row in rows:
        seen.update(dict.fromkeys(row))
    first = list(rows[0])
    varied = first[: first.index("status")]  # the grid's paths and the seed come first
    outcomes = [k for k in seen if k not in varied and k not in TOTALS and k != "status"]
    columns = [*varied, "status", *TOTALS, *outcomes]
    if fmt == "csv":
        import csv
        import io

        def cell(value: Any) -> Any:  # JSON, not Python's repr, for structured values
            if value is None:
                return ""
            return json.dumps(value) if isinstance(value, dict | list) else value

        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: cell(row.get(k)) for k in columns})
        click.echo(out.getvalue(), nl=False)
        return
    table = Table(title=f"Sweep of {len(rows)} runs", title_justify="left")
    shown = [c for c in columns if c not in ("input_tokens", "output_tokens", "cost_usd")]
    for column in shown:
        table.add_column(column, justify="left" if column == "status" else "right")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in shown])
    console_for_tables().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    from simulator.scenario.variants import label_of

    return label_of(value)


@cli.command("validate")
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate_command(scenarios: tuple[Path, ...]) -> None:
    """Check each SCENARIO (`-`: standard input) and say what it holds; exit 2 if any is
    invalid, after checking them all."""
    bad = 0
    for scenario in scenarios:
        try:
            spec: Scenario = _load(scenario)
        except CapsimError as exc:
            click.echo(_style("capsim: error: ", fg="red", bold=True) + str(exc), err=True)
            bad += 1
            continue
        click.echo(
            f"{scenario}: valid: {len(spec.models)} models, {len(spec.workloads)} workloads, "
            f"{len(spec.deployments)} deployments; horizon {spec.horizon:g} s, "
            f"about {spec.expected_requests():,.0f} requests per replication"
        )
    if bad:
        sys.exit(EXIT_USAGE)


@cli.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of the scenario format (for editors)."""
    from simulator.scenario.schema import scenario_schema

    click.echo(json.dumps(scenario_schema(), indent=2))


@cli.command("prices")
@click.argument("model", required=False)
@click.option("--catalog", type=click.Path(path_type=Path), help="a LiteLLM-format price map")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def prices_command(model: str | None, catalog: Path | None, fmt: str) -> None:
    """Show the price catalog (USD per 1M tokens), or the models whose id contains MODEL."""
    import datetime

    cat = load_catalog_file(catalog) if catalog else bundled_catalog()
    entries = cat.search(model)
    if not entries:
        from simulator.serving.catalog import closest_ids

        near = closest_ids(cat, model or "")
        hint = f" Did you mean {' or '.join(near)}?" if near else ""
        raise CapsimError(f"no model id contains {model!r} in the catalog ({cat.source}).{hint}")
    if fmt == "json":
        click.echo(
            json.dumps({"source": cat.source, "models": [e.__dict__ for e in entries]}, indent=2)
        )
        return
    table = Table(title=f"Prices, USD per 1M tokens — {cat.source}", title_justify="left")
    columns = ("model", "provider", "input", "output", "cached input", "batch input",
               "batch output", "context", "deprecated")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "provider") else "right")
    today = datetime.date.today().isoformat()

    def usd(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for e in entries:
        gone = e.deprecation_date is not None and e.deprecation_date <= today
        table.add_row(
            e.id,
            e.provider or "-",
            usd(e.input_usd_per_1m),
            usd(e.output_usd_per_1m),
            usd(e.cached_input_usd_per_1m),
            usd(e.batch_input_usd_per_1m),
            usd(e.batch_output_usd_per_1m),
            "-" if e.context_length is None else f"{e.context_length:,}",
            e.deprecation_date or "-",
            style="dim" if gone else None,
        )
    console_for_tables().print(table)
    click.echo(
        "batch: the model's *_batches price where listed, else input/output x (1 - "
        "discount), discount 0.5 by default"
    )


@cli.command("fit")
@click.argument("log", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["azure", "mooncake", "ragpulse", "openai-usage", "csv"]),
    help="the log's format",
)
@click.option("--name", default="fitted", show_default=True, help="the workload's name")
@click.option("--model", default="model", show_default=True, help="the workload's model name")
@click.option("--columns", help="csv only: TIMESTAMP,INPUT,OUTPUT column names")
@click.option(
    "--time-unit",
    type=click.Choice(["s", "ms", "us", "datetime"]),
    default="s",
    show_default=True,
    help="csv only: unit of the time stamps",
)
@click.option("--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def fit_command(
    log: Path, fmt: str, name: str, model: str, columns: str | None, time_unit: str, output: str
) -> None:
    """Fit arrival and token-length models to a usage LOG; print a scenario workload."""
    from simulator.traffic.fit import fit_quality, fit_workload
    from simulator.traffic.traces import CsvColumns, load_trace

    csv_columns = None
    if columns is not None:
        parts = [p.strip() for p in columns.split(",")]
        if len(parts) != 3 or not all(parts):
            raise CapsimError("--columns: expected three names, TIMESTAMP,INPUT,OUTPUT")
        csv_columns = CsvColumns(parts[0], parts[1], parts[2], time_unit)
    elif time_unit != "s":
        csv_columns = CsvColumns(time_unit=time_unit)
    trace = load_trace(log, fmt, csv_columns)
    if len(trace) < 3 or trace.span <= 0:
        raise CapsimError(
            f"{log}: {len(trace)} requests over {trace.span:g} s is too little to fit"
        )
    if trace.span > MAX_FIT_SPAN_S:  # per-minute counts over it would not fit in memory
        raise CapsimError(
            f"{log}: its requests span {trace.span / 86400:,.0f} days from first to last; "
            f"the limit is {MAX_FIT_SPAN_S / 86400:.0f} days. Is a timestamp wrong (an "
            "outlier, a unit of ms read as s)? See --time-unit."
        )
    workload = fit_workload(trace, name, model)
    quality = fit_quality(trace, workload)
    for warning in quality["warnings"]:
        _warn(f"{log}: {warning}")
    if output == "json":
        click.echo(json.dumps({"workload": workload, "fit": quality}, indent=2))
        return
    click.echo(fit_comment(log, fmt, quality))
    click.echo(
        yaml.safe_dump(
            {"workloads": [workload]}, sort_keys=False, default_flow_style=None, width=100
        ),
        nl=False,
    )


@cli.command("probe")
@click.option(
    "--model",
    "--architecture",
    "model",
    required=True,
    help="a bundled architecture (llama-3.1-8b, qwen3-30b-a3b, ...) or a Hugging Face config.json",
)
@click.option("--gpu", required=True, help="H100-SXM, H200, B200, A100-80GB, L40S, ...")
@click.option(
    "--gpus",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="GPUs in the replica (tensor parallel)",
)
@click.option(
    "--precision",
    type=click.Choice(["bf16", "fp8", "fp4"]),
    help="default: fp8 where the GPU has it, else bf16",
)
@click.option("--input-tokens", required=True, type=click.IntRange(1, 10_000_000))
@click.option("--output-tokens", required=True, type=click.IntRange(1, 10_000_000))
@click.option(
    "--concurrency",
    default="max",
    show_default=True,
    help="clients with a request in flight (staggered starts, lengths +-10%), or max: as "
    "many as the batch or the KV cache holds",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, 100_000, min_open=True),
    help="requests/s, Poisson, instead of a fixed concurrency",
)
@click.option(
    "--batch",
    type=click.IntRange(1, MAX_PROBE_CLIENTS),
    help="instead: the latency of this many prompts sent at once, every answer exactly "
    "--output-tokens long, in waves of --max-batch (vLLM's `bench latency`)",
)
@click.option(
    "--chunked-prefill", is_flag=True, help="prefill prompts in chunks inside decode steps"
)
@click.option(
    "--kv-admission",
    type=click.Choice(["reserve", "optimistic"]),
    default="reserve",
    show_default=True,
    help="reserve each request's whole KV at admission, or admit on the prompt and preempt",
)
@click.option(
    "--prefill",
    type=click.Choice(["fused", "separate"]),
    default="fused",
    show_default=True,
    help="prefill admitted prompts in the batch's next step (TensorRT-LLM's in-flight "
    "batching), or in a step of their own while the batch waits",
)
@click.option(
    "--draft-tokens",
    type=click.IntRange(1, 16),
    help="speculative decoding: draft tokens a step (an EAGLE-style head unless --draft)",
)
@click.option(
    "--acceptance-rate",
    type=click.FloatRange(0, 0.99),
    default=0.7,
    show_default=True,
    help="with --draft-tokens: the chance each draft token is kept",
)
@click.option("--draft", help="with --draft-tokens: a bundled architecture as the draft model")
@click.option("--max-batch", default=256, show_default=True, type=click.IntRange(1))
@click.option("--mfu", type=click.FloatRange(0, 1, min_open=True), help="override the default")
@click.option("--mbu", type=click.FloatRange(0, 1, min_open=True), help="override the default")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def probe_command(
    model: str,
    gpu: str,
    gpus: int,
    precision: str | None,
    input_tokens: int,
    output_tokens: int,
    concurrency: str,
    rate: float | None,
    batch: int | None,
    chunked_prefill: bool,
    kv_admission: str,
    prefill: str,
    draft_tokens: int | None,
    acceptance_rate: float,
    draft: str | None,
    max_batch: int,
    mfu: float | None,
    mbu: float | None,
    fmt: str,
) -> None:
    """What one replica sustains: throughput, TTFT, TPOT, KV capacity (roofline model)."""
    from simulator.serving.hardware import (
        architecture_names,
        config_architecture,
        find_architecture,
        find_gpu,
        gpu_names,
    )
    from simulator.studies.probe import architecture_spec, default_precision, probe

    shape = architecture_spec(model)
    if "config" in shape:
        try:
            config_architecture(shape["config"])
        except ValueError as exc:
            raise CapsimError(f"--architecture: {str(exc).removeprefix('config: ')}") from None
    elif find_architecture(model) is None:
        raise CapsimError(
            f"--model: unknown architecture {model!r} (known: {', '.join(architecture_names())}"
            ", or a config.json)"
        )
    if find_gpu(gpu) is None:
        raise CapsimError(f"--gpu: unknown GPU {gpu!r} (known: {', '.join(gpu_names())})")
    clients: int | None = None
    if concurrency != "max":
        if not concurrency.isdigit() or int(concurrency) < 1:
            raise CapsimError(
                f"--concurrency: expected a whole number >= 1 or max, got {concurrency!r}"
            )
        clients = int(concurrency)
        if clients > MAX_PROBE_CLIENTS:  # each sends ~40 requests: millions beyond this
            raise CapsimError(
                f"--concurrency: at most {MAX_PROBE_CLIENTS:,} clients, got {clients:,}"
            )
    if rate is not None and concurrency != "max":
        raise CapsimError("--rate and --concurrency: give one or the other")
    if batch is not None and (rate is not None or concurrency != "max"):
        raise CapsimError("--batch: not with --rate or --concurrency (it sends one batch)")
    overrides = {k: v for k, v in (("mfu", mfu), ("mbu", mbu)) if v is not None}
    precision = precision or default_precision(gpu)
    options: dict[str, Any] = {  # the replica's, for either experiment
        "max_batch": max_batch,
        "performance": overrides,
        "chunked_prefill": chunked_prefill,
        "speculative": _speculative(draft_tokens, acceptance_rate, draft),
        "kv_admission": kv_admission,
        "prefill": prefill,
    }
    if batch is not None:
        _probe_batch(model, gpu, gpus, precision, batch, input_tokens, output_tokens, options, fmt)
        return
    try:
        result = probe(
            model,
            gpu,
            gpus,
            precision,
            input_tokens,
            output_tokens,
            clients,
            rate=rate,
            **options,
        )
    except (ValueError, CapsimError) as exc:
        raise CapsimError(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    load = f"concurrency {result.concurrency}" if rate is None else f"{rate:g} requests/s"
    tpot = "-" if result.tpot_s is None else f"{result.tpot_s * 1000:,.1f} ms"
    _print_figures(
        f"{model} on {gpus} x {gpu} ({precision}), {input_tokens} in / {output_tokens} out, "
        f"{load}",
        [
            ("output tokens/s", f"{result.output_tokens_per_s:,.0f}"),
            ("requests/s", f"{result.requests_per_s:,.2f}"),
            ("TTFT (mean)", f"{result.ttft_s * 1000:,.0f} ms"),
            ("TPOT (mean)", tpot),
            ("E2E (mean)", f"{result.e2e_s:,.2f} s"),
            ("KV capacity", f"{result.kv_capacity_tokens:,.0f} tokens"),
            ("max batch reached", f"{result.max_batch_reached:,}"),
        ],
    )


def _print_figures(title: str, rows: list[tuple[str, str]]) -> None:
    """A probe's figures: a two-column table under its title."""
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for figure, value in rows:
        table.add_row(figure, value)
    console_for_tables().print(table)


def _probe_batch(
    model: str,
    gpu: str,
    gpus: int,
    precision: str,
    batch: int,
    input_tokens: int,
    output_tokens: int,
    options: dict[str, Any],
    fmt: str,
) -> None:
    """`capsim probe --batch`: one batch sent at once (in waves of --max-batch), its
    latency."""
    from simulator.studies.probe import batch_latency

    try:
        seconds = batch_latency(
            model, gpu, gpus, precision, batch, input_tokens, output_tokens, **options
        )
    except (ValueError, CapsimError) as exc:
        raise CapsimError(str(exc)) from None
    result = {
        "batch": batch,
        "latency_s": seconds,
        "output_tokens_per_s": batch * output_tokens / seconds,
    }
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    _print_figures(
        f"{model} on {gpus} x {gpu} ({precision}), a batch of {batch}, {input_tokens} in / "
        f"{output_tokens} out",
        [
            ("latency (the batch done)", f"{seconds:,.3f} s"),
            ("output tokens/s", f"{result['output_tokens_per_s']:,.0f}"),
        ],
    )


def fit_comment(log: Path, fmt: str, quality: dict[str, Any]) -> str:
    """How well the fit matches the log, as YAML comments above the workload."""

    def show(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}"

    lines = [
        f"# fitted by `capsim fit {log} --format {fmt}`",
        "# fit against the log (model: analytic; simulated: the model over the log's span)",
        f"#   {'':22}{'log':>12}{'model':>12}{'simulated':>12}",
    ]
    for key in ("rate_per_s", "gap_cv", "minute_peak_to_mean", "minute_dispersion"):
        row = quality[key]
        lines.append(
            f"#   {key:22}{show(row.get('log')):>12}{show(row.get('model')):>12}"
            f"{show(row.get('simulated')):>12}"
        )
    lines.append(
        f"#   KS statistic, input tokens {quality['input_tokens_ks']:.4f}, "
        f"output tokens {quality['output_tokens_ks']:.4f}"
    )
    return "\n".join(lines)


class Terminated(BaseException):
    """SIGTERM: stop as Ctrl-C does (outputs are written atomically, so none is half done).
    A BaseException, as KeyboardInterrupt is: no `except Exception` may swallow it."""


_STOPPING: list[type[BaseException]] = []


def _stop(exc: type[BaseException]) -> None:
    """Raise `exc` now, and again every half second until the run is over: an exception
    raised while Python runs an object's finalizer is printed and dropped ("Exception
    ignored in ..."), and a run would then go on to its end."""
    import signal

    _STOPPING[:] = [exc]
    signal.setitimer(signal.ITIMER_REAL, 0.5, 0.5)
    raise exc


def _interrupt(signum: int, frame: Any) -> None:
    _stop(KeyboardInterrupt)


def _terminate(signum: int, frame: Any) -> None:
    _stop(Terminated)


def _again(signum: int, frame: Any) -> None:
    if _STOPPING:
        raise _STOPPING[0]


def _stopped(message: str, code: int) -> None:
    import signal

    signal.setitimer(signal.ITIMER_REAL, 0)
    click.echo(message, err=True)
    sys.exit(code)


def _route_warnings() -> None:
    """Warnings meant for the user (a deprecated model id) print as `capsim: warning:`."""
    import warnings

    from simulator.errors import DeprecatedModelWarning

    shown = warnings.showwarning

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, DeprecatedModelWarning):
            _warn(str(message))
        else:
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command group; a CapsimError becomes one message and exit 2;
    Ctrl-C exits 130 and SIGTERM 143, as shells expect, with no traceback."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGALRM, _again)
    _route_warnings()
    try:
        cli.main(args=argv, prog_name="capsim", standalone_mode=False)
    except CapsimError as exc:
        _fail(str(exc))
    except click.exceptions.Abort:
        _stopped("capsim: interrupted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _stopped("capsim: interrupted", 130)
    except Terminated:
        _stopped("capsim: terminated", 143)
