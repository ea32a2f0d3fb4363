"""`capsim compare`: the same report side by side across scenarios or traffic profiles."""

from __future__ import annotations

from pathlib import Path

import click

from simulator.cli.app import _naming, _progress, force_option, quiet_option
from simulator.errors import CapsimError


@click.command("compare")
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
@click.option(
    "--dask", "dask_address", help="run the variants on a Dask cluster, e.g. tcp://host:8786"
)
@force_option
@quiet_option
def compare_command(
    scenarios: tuple[Path, ...],
    vary: str | None,
    fmt: str,
    seed: int | None,
    replications: int | None,
    dask_address: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """The same report side by side: several SCENARIOS, or one with --vary PATH=VALUES."""
    from simulator.errors import ScenarioError
    from simulator.report.build import to_json
    from simulator.report.tables import console_for_tables
    from simulator.scenario.loader import load_scenario, read_scenario_data, scenario_from_data
    from simulator.scenario.variants import parse_values, set_path
    from simulator.studies.cluster import check_dask_address
    from simulator.studies.compare import Variant, compare, comparison_csv, comparison_table
    from simulator.studies.sweep import unquoted

    if dask_address is not None:
        check_dask_address(dask_address)

    variants: list[Variant] = []
    if vary is not None:
        if len(scenarios) != 1:
            raise CapsimError("--vary takes exactly one scenario")
        if "=" not in vary:
            raise CapsimError(f"--vary: expected PATH=VALUES, got {vary!r}")
        path, values = vary.split("=", 1)
        data, source, base_dir = read_scenario_data(scenarios[0])
        from_file = values.startswith("@")
        for i, (label, value) in enumerate(parse_values(values, base_dir)):
            variant = set_path(data, path.strip(), value)
            if not from_file:
                spec = scenario_from_data(variant, f"{source} with {path}={label}", base_dir)
            else:  # a file the user pointed at: its refused values are not printed
                try:
                    spec = scenario_from_data(variant, source, base_dir)
                except ScenarioError as exc:
                    said = "; ".join(unquoted(p) for p in exc.problems[:3])
                    raise CapsimError(
                        f"{values} (value {i + 1}) for {path}: the scenario refuses it: {said}"
                    ) from None
            variants.append(Variant(label, spec))
    else:
        if len(scenarios) < 2:
            raise CapsimError("give two or more scenarios, or one with --vary PATH=VALUES")
        variants = [Variant(p.stem, load_scenario(p)) for p in scenarios]
    named = scenarios[0] if len(scenarios) == 1 else None
    with _progress(not quiet, "comparing") as progress, _naming(named):
        results = compare(variants, replications, seed, progress, force, dask_address)
    if fmt == "json":
        click.echo(to_json({"variants": results}))
    elif fmt == "csv":
        click.echo(comparison_csv(results), nl=False)
    else:
        console_for_tables().print(comparison_table(results))
