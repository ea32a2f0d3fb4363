"""The `capsim` entry point: registers every command, turns errors into one message and exit
2, and Ctrl-C / SIGTERM into exits 130 / 143."""

from __future__ import annotations

import sys
import threading
from typing import Any

import click

from simulator.cli.app import _fail, _warn, cli
from simulator.cli.compare import compare_command
from simulator.cli.fit import fit_command
from simulator.cli.plan import plan_command
from simulator.cli.prices import prices_command
from simulator.cli.probe import probe_command
from simulator.cli.run import run_command
from simulator.cli.sweep import sweep_command
from simulator.cli.validate import schema_command, validate_command
from simulator.errors import CapsimError

COMMANDS = (
    run_command,
    compare_command,
    plan_command,
    sweep_command,
    probe_command,
    fit_command,
    validate_command,
    schema_command,
    prices_command,
)
"""Every `capsim` command: a new command is a module of `simulator.cli` and a line here."""
for _command in COMMANDS:
    cli.add_command(_command)


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
