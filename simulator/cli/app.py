"""The command group and what every command shares: messages, loading, progress, options."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from simulator.errors import CapsimError, RunTooLargeError

if TYPE_CHECKING:
    from simulator.scenario.format import Scenario


EXIT_USAGE = 2


PROGRESS_MIN_REQUESTS = 200_000


def _style(text: str, **style: Any) -> str:
    """Coloured, unless NO_COLOR is set (no-color.org); rich's tables follow it too."""
    return text if os.environ.get("NO_COLOR") else click.style(text, **style)


def _warn(message: str) -> None:
    click.echo(_style("capsim: warning: ", fg="yellow", bold=True) + message, err=True)


def _fail(message: str) -> None:
    click.echo(_style("capsim: error: ", fg="red", bold=True) + message, err=True)
    sys.exit(EXIT_USAGE)


def _load(path: Path) -> Scenario:
    """A scenario from a file, or from standard input when the path is `-`."""
    from simulator.scenario.loader import load_scenario

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


def write_outputs(write: Callable[[Any, Path], list[Path]], what: Any, out: Path) -> None:
    """`write(what, out)` (a run's or a plan's --out files), saying each file written; a
    write that fails (a full disk, a folder made read-only during the run) ends in one
    line, the earlier files left as they were."""
    from simulator.files import output_failed

    try:
        written = write(what, out)
    except OSError as exc:
        raise output_failed(out, exc) from None
    for path in written:
        click.echo(f"wrote {path}", err=True)
