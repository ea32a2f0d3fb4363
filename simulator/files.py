"""Reading a user's files without trusting them: regular files only (a FIFO or a device
such as /dev/zero would be read forever), a size limit counted on the bytes read rather than
on what the file system claims, UTF-8, and JSON without NaN, Infinity or runaway nesting.
Every problem is a ScenarioError naming the file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from simulator.errors import CapsimError, ScenarioError

MAX_TEXT_BYTES = 16 * 1024 * 1024
"""Scenarios, grids, value files, price catalogs, performance tables."""

MAX_TRACE_BYTES = 1024 * 1024 * 1024
"""Traces and usage logs."""

MAX_JSON_DEPTH = 64


def check_file(path: Path, what: str, limit: int) -> os.stat_result:
    """The file's status, or a ScenarioError: missing, unreadable, not a regular file, or
    (as the file system says) over `limit` bytes."""
    source = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ScenarioError(source, [f"no such file (the {what})"]) from None
    except PermissionError:
        raise ScenarioError(source, [f"cannot read the {what}: permission denied"]) from None
    except OSError as exc:
        raise ScenarioError(source, [f"cannot read the {what}: {exc.strerror}"]) from None
    if stat.S_ISDIR(info.st_mode):
        raise ScenarioError(source, [f"is a directory, expected a {what}"])
    if not stat.S_ISREG(info.st_mode):
        raise ScenarioError(
            source, [f"not a regular file (a pipe or a device?), expected a {what}"]
        )
    if info.st_size > limit:
        raise ScenarioError(source, [f"the file is {info.st_size:,} bytes; the limit is {limit:,}"])
    return info


def read_text(path: Path, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The file as text: a regular file of at most `limit` bytes, read, in UTF-8."""
    check_file(path, what, limit)
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except PermissionError:
        raise ScenarioError(source, [f"cannot read the {what}: permission denied"]) from None
    except OSError as exc:
        raise ScenarioError(source, [f"cannot read the {what}: {exc.strerror}"]) from None
    if len(data) > limit:
        raise ScenarioError(source, [f"the file is over the limit of {limit:,} bytes"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            source, [f"not a UTF-8 text file (byte {exc.start:,} is not UTF-8)"]
        ) from None


def check_out_dir(out: Path) -> None:
    """Before any work: `out` is (or can be made) a folder this process can write in, so a
    bad --out fails at once, not after the run."""
    from simulator.errors import CapsimError

    if out.exists() and not out.is_dir():
        raise CapsimError(f"--out: {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".capsim-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CapsimError(f"--out: cannot write in {out} ({exc.strerror or exc})") from None


def write_atomic(path: Path, write: Any) -> None:
    """`write(temporary_path)` then rename over `path`: a reader never sees half a file,
    and an interrupted run leaves the old file (or none), not a truncated one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class StagedWrites:
    """Files written to temporaries beside their places and renamed into place together at
    the end: a full disk, a read-only folder or any failure on the way leaves the earlier
    files as they were (the temporaries removed), never a mix of two runs'."""

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []

    def write(self, path: Path, write: Any) -> None:
        """Stage `write(temporary)` for `path` (a later write to the same path wins)."""
        for staged in [s for s in self.staged if s[1] == path]:
            staged[0].unlink(missing_ok=True)
            self.staged.remove(staged)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.staged")
        try:
            write(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.staged.append((tmp, path))

    def text(self, path: Path, text: str) -> None:
        self.write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def commit(self) -> None:
        for tmp, path in self.staged:
            os.replace(tmp, path)
        self.staged = []

    def abort(self) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged = []

    def __enter__(self) -> StagedWrites:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def kind_of(value: object) -> str:
    """What a value read from a file the user pointed at is, without its text (which may be
    anything, a secret included): a number as itself, anything else by its kind."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    return f"a {type(value).__name__}"


def output_failed(out: Path, exc: OSError) -> CapsimError:
    """The one line a failed --out write ends with."""
    why = os.strerror(exc.errno) if exc.errno else (exc.strerror or type(exc).__name__)
    return CapsimError(
        f"--out: could not write the outputs in {out} ({why}); nothing was changed there"
    )


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number here")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(text: str, source: str, where: str = "") -> Any:
    """JSON without NaN or Infinity and nested at most MAX_JSON_DEPTH levels; `where`
    (a line, say) prefixes the message."""
    prefix = f"{where}: " if where else ""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        line = f"line {exc.lineno}: " if not where else ""
        raise ScenarioError(source, [f"{prefix}{line}not valid JSON ({exc.msg})"]) from None
    except ValueError as exc:
        raise ScenarioError(source, [f"{prefix}{exc}"]) from None
    except RecursionError:
        value = None
        depth = MAX_JSON_DEPTH + 1
    else:
        depth = _depth(value)
    if depth > MAX_JSON_DEPTH:
        raise ScenarioError(source, [f"{prefix}nested more than {MAX_JSON_DEPTH} levels deep"])
    return value
