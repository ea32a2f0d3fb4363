"""`capsim prices`: the price catalog, or the models closest to a name."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from simulator.errors import CapsimError


@click.command("prices")
@click.argument("model", required=False)
@click.option("--catalog", type=click.Path(path_type=Path), help="a LiteLLM-format price map")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def prices_command(model: str | None, catalog: Path | None, fmt: str) -> None:
    """Show the price catalog (USD per 1M tokens), or the models whose id contains MODEL."""
    import datetime

    from simulator.report.tables import console_for_tables
    from simulator.serving.catalog import bundled_catalog, load_catalog_file

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
