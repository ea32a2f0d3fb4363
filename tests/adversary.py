"""The adversary's tools: run the command line in this process with a time limit, and the
promise every hostile input is held to (exit 0 or 2, one message naming the file, no
traceback, no hang)."""

from __future__ import annotations

import contextlib
import copy
import io
import signal
from dataclasses import dataclass
from typing import Any

from simulator.cli import main

TIME_LIMIT_S = 60
"""No input may take longer than this (most take milliseconds)."""


class _TimeUp(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` swallows it."""


@dataclass
class Outcome:
    code: int | None  # None: it hung or raised instead of exiting
    stdout: str
    stderr: str
    crash: str | None  # the exception that escaped, if any


def capsim_here(*argv: str, limit: int = TIME_LIMIT_S) -> Outcome:
    """`capsim ARGV` in this process (no interpreter start-up per case), stopped after
    `limit` seconds."""
    out, err = io.StringIO(), io.StringIO()

    def time_up(signum: int, frame: Any) -> None:
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, time_up)
    signal.alarm(limit)
    code: int | None = 0
    crash = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _TimeUp:
        code, crash = None, f"no answer within {limit} s"
    except BaseException as exc:  # the promise is broken: report what escaped
        code, crash = None, f"{type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return Outcome(code, out.getvalue(), err.getvalue(), crash)


def assert_refused(result: Outcome, *names: str) -> None:
    """Exit 2 with one `capsim: error:` message that names each of `names` (the file, the
    field), and nothing escaped."""
    assert result.crash is None, result.crash
    assert result.code == 2, (result.code, result.stderr[-500:])
    assert result.stderr.startswith("capsim: error:") or result.stderr.startswith("Usage:"), (
        result.stderr[:300]
    )
    assert "Traceback" not in result.stderr
    for name in names:
        assert name in result.stderr, (name, result.stderr[:500])


def assert_kept(result: Outcome) -> None:
    """The promise for any input, good or bad: exit 0 or 2, no traceback, in time."""
    assert result.crash is None, result.crash
    assert result.code in (0, 2), (result.code, result.stderr[-500:])
    assert "Traceback" not in result.stderr
    if result.code == 2:
        assert result.stderr.startswith(("capsim: error:", "Usage:")), result.stderr[:300]
        assert "errors.pydantic.dev" not in result.stderr, result.stderr[:500]  # no dumps


def set_at(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of `data` with `value` at `path` (dict keys and list indices)."""
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in `data` a value sits (inner nodes included), depth first."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.append((*prefix, key))
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.append((*prefix, i))
            found += paths(value, (*prefix, i))
    return found


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value
