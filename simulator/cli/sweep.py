"""`capsim sweep`: many runs over a grid of paths and seeds, locally or on Dask."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from simulator.cli.app import _progress, _warn, quiet_option
from simulator.errors import CapsimError


@click.command("sweep")
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
    from simulator.studies.sweep import check_dask_address, check_points, grid_points, sweep

    if workers is not None and dask_address is not None:
        raise CapsimError("give --workers or --dask, not both")
    if dask_address is not None:
        check_dask_address(dask_address)
    data, source, base_dir = read_scenario_data(scenario)
    from simulator.files import read_text

    grid = parse_yaml(read_text(grid_path, "grid"), str(grid_path))
    try:
        points = grid_points(grid)
        check_points(data, str(base_dir), source, grid)
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
    from simulator.report.build import to_json
    from simulator.report.tables import console_for_tables

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
