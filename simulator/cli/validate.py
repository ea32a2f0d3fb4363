"""`capsim validate` and `capsim schema`: check scenario files; print the format's JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from simulator.cli.app import EXIT_USAGE, _load, _style
from simulator.errors import CapsimError


@click.command("validate")
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate_command(scenarios: tuple[Path, ...]) -> None:
    """Check each SCENARIO (`-`: standard input) and say what it holds; exit 2 if any is
    invalid, after checking them all."""
    from simulator.scenario.format import Scenario

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


@click.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of the scenario format (for editors)."""
    from simulator.scenario.schema import scenario_schema

    click.echo(json.dumps(scenario_schema(), indent=2))
