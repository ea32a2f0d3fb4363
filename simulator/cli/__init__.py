"""The `capsim` command line: a module a command, the shared group and helpers in `app`, the
entry point in `main`. User errors print one message and exit with status 2."""

from simulator.cli.main import main

__all__ = ["main"]
