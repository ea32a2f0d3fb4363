"""`capsim run`: simulate a scenario and print its report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from simulator.cli.app import (
    PROGRESS_MIN_REQUESTS,
    _load,
    _naming,
    _progress,
    _warn,
    force_option,
    quiet_option,
    write_outputs,
)
from simulator.files import check_out_dir


@click.command("run")
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
    from simulator.report.build import to_json
    from simulator.report.tables import overload_warning, print_table, to_csv
    from simulator.studies.run import run

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

        write_outputs(write_run_outputs, result, out)
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
