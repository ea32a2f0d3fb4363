"""`capsim fit`: arrival and token-length models fitted to a usage log, as scenario YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from simulator.cli.app import _warn
from simulator.errors import CapsimError

MAX_FIT_SPAN_S = 400 * 86400.0


@click.command("fit")
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
    _check_names(name, model)
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


def _check_names(name: str, model: str) -> None:
    """--name and --model as a scenario accepts a workload's name and model, before the fit
    (one line each, not a validation dump)."""
    from pydantic import ValidationError

    from simulator.scenario.format import Workload
    from simulator.scenario.loader import format_validation_error

    data = {
        "name": name,
        "model": model,
        "arrivals": {"process": "poisson", "rate": 1},
        "input_tokens": {"dist": "fixed", "value": 1},
        "output_tokens": {"dist": "fixed", "value": 1},
        "route": ["serverless"],
    }
    try:
        Workload.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"--{p}" if p.startswith(("name:", "model:")) else p
            for p in format_validation_error(exc, data)
        ]
        raise CapsimError("; ".join(problems)) from None
