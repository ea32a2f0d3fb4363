"""Errors a user can cause, kept apart from bugs: these become one message and exit status 2."""

from __future__ import annotations


class CapsimError(Exception):
    """A user's mistake (bad file, bad field, impossible value): reported, never a traceback."""


class ScenarioError(CapsimError):
    """A scenario, trace or catalog file that cannot be used, with where and why."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{source}: invalid\n{lines}" if len(problems) > 1 else f"{source}: {problems[0]}"
        )


class RunTooLargeError(CapsimError):
    """A run estimated to be beyond this machine's reach; refused before it starts."""


class CapsimWarning(UserWarning):
    """Warnings raised by the package itself (tests turn them into errors)."""


class DeprecatedModelWarning(UserWarning):
    """A model id its price catalog marks deprecated on or before today: its price may be
    gone. Shown by the command line as a warning; it depends on the date, so tests do not
    turn it into an error."""
