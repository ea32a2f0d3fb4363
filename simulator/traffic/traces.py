"""Reading request logs and traces into arrival times and token counts (with pandas).

Formats:
- `azure`: CSV `TIMESTAMP,ContextTokens,GeneratedTokens` (Azure LLM inference traces).
- `mooncake`: JSONL `timestamp` (ms), `input_length`, `output_length` (`hash_ids` ignored).
- `ragpulse`: JSONL `timestamp` (seconds, may be a string; rows unsorted), `input_length`,
  `output_length`.
- `openai-usage`: JSONL of chat completion responses or logs: `created` (epoch seconds) and
  `usage.prompt_tokens` / `usage.completion_tokens`, at the top level or under
  `response.body` (OpenAI and together.ai batch output lines). Lines without any time
  stamp are taken as one batch submitted at t = 0.
- `csv`: any CSV with named columns (numbers of seconds, or dates).

Every problem is a `ScenarioError` naming the file and the line or column.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import ScenarioError
from simulator.files import MAX_TRACE_BYTES, check_file, parse_json
from simulator.records import Blocks
from simulator.scenario.limits import MAX_TOKENS

TRACE_FORMATS = ("azure", "mooncake", "ragpulse", "openai-usage", "csv")
TRACE_BLOCK_TOKENS = 512
"""Prompt tokens a Mooncake `hash_ids` entry stands for."""


@dataclass(frozen=True)
class Trace:
    """Requests of a log, sorted by time: seconds from the first request, token counts."""

    source: str
    times: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    blocks: Blocks | None = None  # prompt blocks (Mooncake's hash_ids), when the log has them

    def __len__(self) -> int:
        return len(self.times)

    @property
    def span(self) -> float:
        return float(self.times[-1] - self.times[0]) if len(self.times) else 0.0


@dataclass(frozen=True)
class CsvColumns:
    """Column names of a generic CSV trace; `time_unit` is s, ms, us or datetime."""

    timestamp: str = "timestamp"
    input_tokens: str = "input_tokens"
    output_tokens: str = "output_tokens"
    time_unit: str = "s"


def _numbers(
    values: Any, source: str, column: str, first_line: int, lines: Any = None
) -> np.ndarray:
    """A column as float64, naming the line of the first value that is not a number >= 0."""
    import pandas as pd

    numeric = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numeric) | (numeric < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        line = int(lines[row]) if lines is not None else first_line + row
        raw = pd.Series(values).iloc[row]
        what = "a negative number" if np.isfinite(numeric[row]) else "not a number"
        raise ScenarioError(source, [f"line {line}, column {column!r}: {raw!r} is {what}"])
    return numeric


def _tokens(
    values: Any, source: str, column: str, first_line: int, lines: Any = None
) -> np.ndarray:
    numbers = _numbers(values, source, column, first_line, lines)
    huge = numbers > MAX_TOKENS
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        line = int(lines[row]) if lines is not None else first_line + row
        raise ScenarioError(
            source,
            [f"line {line}, column {column!r}: {numbers[row]:.0f} tokens is over {MAX_TOKENS:,}"],
        )
    fractional = numbers != np.floor(numbers)
    if fractional.any():
        row = int(np.flatnonzero(fractional)[0])
        line = int(lines[row]) if lines is not None else first_line + row
        raise ScenarioError(
            source,
            [
                f"line {line}, column {column!r}: token counts are whole "
                f"numbers, got {numbers[row]!r}"
            ],
        )
    return numbers.astype(np.int64)


def _read_csv(path: Path, source: str, required: list[str]) -> Any:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ScenarioError(source, ["the file is empty"]) from None
    except UnicodeDecodeError:
        raise ScenarioError(source, ["not a readable CSV file (not UTF-8 text)"]) from None
    except pd.errors.ParserError:  # its message may quote the file: not shown
        raise ScenarioError(source, ["not a readable CSV file (rows of unequal length?)"]) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        # the header may be anything the user pointed at (a secret's first line): name only
        # the columns asked for and how many others there are, never their text
        found = [c for c in required if c in frame.columns]
        others = len(frame.columns) - len(found)
        seen = f"found {', '.join(repr(c) for c in found)} and " if found else "found "
        raise ScenarioError(
            source,
            [
                f"missing column {c!r} ({seen}{others} other column"
                f"{'' if others == 1 else 's'}; the header must name "
                f"{', '.join(required)})"
                for c in missing
            ],
        )
    if frame.empty:
        raise ScenarioError(source, ["the file has a header but no rows"])
    return frame


def _read_jsonl(path: Path, source: str) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = parse_json(line, source, f"line {number}")
            if not isinstance(row, dict):
                raise ScenarioError(source, [f"line {number}: expected a JSON object"])
            rows.append((number, row))
    if not rows:
        raise ScenarioError(source, ["the file is empty"])
    return rows


def _field(rows: list[tuple[int, dict[str, Any]]], key: str, source: str) -> list[Any]:
    values = []
    for number, row in rows:
        if key not in row:
            raise ScenarioError(source, [f"line {number}: missing field {key!r}"])
        values.append(row[key])
    return values


def _datetimes_to_seconds(values: Any, source: str, column: str, first_line: int) -> np.ndarray:
    import pandas as pd

    texts = pd.Series(values).astype(str).str.strip()
    # a UTC offset that changes along the log (daylight saving time) is exact once every
    # time is in UTC; times with an offset and times without cannot be put in one order
    aware = texts.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).to_numpy()
    if aware.any() and not aware.all():
        row = int(np.flatnonzero(aware != aware[0])[0])
        raise ScenarioError(
            source,
            [
                f"line {first_line + row}, column {column!r}: {texts.iloc[row]!r} "
                + ("has a UTC offset" if aware[row] else "has no UTC offset")
                + f" where line {first_line} "
                + ("has none" if aware[row] else "has one")
                + ": give every time an offset (or none)"
            ],
        )
    parsed = pd.to_datetime(texts, errors="coerce", format="ISO8601", utc=bool(aware.any()))
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ScenarioError(
            source,
            [
                f"line {first_line + row}, column {column!r}: "
                f"{texts.iloc[row]!r} is not a date and time"
            ],
        )
    if aware.any():
        parsed = parsed.dt.tz_localize(None)  # UTC, as naive times
    nanoseconds = parsed.to_numpy().astype("datetime64[ns]").astype(np.int64)
    seconds: np.ndarray = (nanoseconds - nanoseconds.min()) / 1e9
    return seconds


def _azure(path: Path, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = _read_csv(path, source, ["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
    times = _datetimes_to_seconds(frame["TIMESTAMP"], source, "TIMESTAMP", 2)
    return (
        times,
        _tokens(frame["ContextTokens"], source, "ContextTokens", 2),
        _tokens(frame["GeneratedTokens"], source, "GeneratedTokens", 2),
    )


def _length_jsonl(
    path: Path, source: str, time_scale: float, blocks: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Blocks | None]:
    rows = _read_jsonl(path, source)
    lines = [n for n, _ in rows]
    times = _numbers(_field(rows, "timestamp", source), source, "timestamp", 0, lines) * time_scale
    return (
        times,
        _tokens(_field(rows, "input_length", source), source, "input_length", 0, lines),
        _tokens(_field(rows, "output_length", source), source, "output_length", 0, lines),
        _hash_ids(rows, source) if blocks else None,
    )


def _hash_ids(rows: list[tuple[int, dict[str, Any]]], source: str) -> Blocks | None:
    """Mooncake's `hash_ids` (one id per 512-token block of the prompt, chained), when every
    row has them."""
    if not rows or any("hash_ids" not in row for _, row in rows):
        return None
    ids: list[int] = []
    starts = [0]
    for number, row in rows:
        value = row["hash_ids"]
        if not isinstance(value, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**62 for x in value
        ):
            raise ScenarioError(
                source, [f"line {number}: hash_ids must be a list of whole numbers >= 0"]
            )
        ids += value
        starts.append(len(ids))
    return Blocks(np.asarray(ids, dtype=np.int64), np.asarray(starts, dtype=np.int64))


def _failed(row: dict[str, Any]) -> bool:
    """A batch line that served nothing: an error without a response, a response with an
    HTTP error status (OpenAI, together.ai), or an Anthropic result that did not succeed."""
    response = row.get("response")
    if row.get("error") and not response:
        return True
    if isinstance(response, dict):
        status = response.get("status_code")
        if isinstance(status, int) and status >= 400:
            return True
    result = row.get("result")
    return isinstance(result, dict) and result.get("type") not in (None, "succeeded")


def _usage_of(row: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(created, input tokens, output tokens) of a response, a log line or a batch line:
    Chat Completions (`created`, `usage.prompt_tokens` / `completion_tokens`), the Responses
    API (`created_at`, `usage.input_tokens` / `output_tokens`), an Anthropic message or
    batch result (`result.message.usage`, no time stamp)."""
    body = row
    response = row.get("response")
    if isinstance(response, dict) and isinstance(response.get("body"), dict):
        body = response["body"]
    result = row.get("result")
    if isinstance(result, dict) and isinstance(result.get("message"), dict):
        body = result["message"]
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    created = body.get("created", body.get("created_at", row.get("created", row.get("timestamp"))))
    if usage is None:
        return created, None, None
    n_in = usage.get("prompt_tokens", usage.get("input_tokens"))
    n_out = usage.get("completion_tokens", usage.get("output_tokens"))
    return created, n_in, n_out


def _openai_usage(path: Path, source: str) -> tuple[np.ndarray, ...]:
    rows = _read_jsonl(path, source)
    created, prompt, completion, lines = [], [], [], []
    for number, row in rows:
        if _failed(row):
            continue  # a failed batch line: nothing was served or billed
        when, n_in, n_out = _usage_of(row)
        if n_in is None or n_out is None:
            raise ScenarioError(
                source, [f"line {number}: no usage.prompt_tokens and usage.completion_tokens"]
            )
        created.append(when)
        prompt.append(n_in)
        completion.append(n_out)
        lines.append(number)
    if not lines:
        raise ScenarioError(source, ["no line has a usage object"])
    stamped = [c is not None for c in created]
    if not any(stamped):
        times = np.zeros(len(lines))
    elif not all(stamped):
        line = lines[stamped.index(False)]
        raise ScenarioError(
            source, [f"line {line}: no 'created' time stamp, while other lines have one"]
        )
    else:
        times = _numbers(created, source, "created", 0, lines)
    return (
        times,
        _tokens(prompt, source, "usage.prompt_tokens", 0, lines),
        _tokens(completion, source, "usage.completion_tokens", 0, lines),
    )


_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _generic_csv(path: Path, source: str, columns: CsvColumns) -> tuple[np.ndarray, ...]:
    names = [columns.timestamp, columns.input_tokens, columns.output_tokens]
    frame = _read_csv(path, source, names)
    if columns.time_unit == "datetime":
        times = _datetimes_to_seconds(frame[columns.timestamp], source, columns.timestamp, 2)
    else:
        times = _numbers(frame[columns.timestamp], source, columns.timestamp, 2)
        times = times * _UNIT_SECONDS[columns.time_unit]
    return (
        times,
        _tokens(frame[columns.input_tokens], source, columns.input_tokens, 2),
        _tokens(frame[columns.output_tokens], source, columns.output_tokens, 2),
    )


@lru_cache(maxsize=16)
def _load(path: Path, fmt: str, columns: CsvColumns, mtime: float) -> Trace:
    source = str(path)
    blocks = None
    if fmt == "azure":
        times, n_in, n_out = _azure(path, source)
    elif fmt == "mooncake":
        times, n_in, n_out, blocks = _length_jsonl(path, source, 1e-3, blocks=True)
    elif fmt == "ragpulse":
        times, n_in, n_out, _ = _length_jsonl(path, source, 1.0)
    elif fmt == "openai-usage":
        times, n_in, n_out = _openai_usage(path, source)
    elif fmt == "csv":
        times, n_in, n_out = _generic_csv(path, source, columns)
    else:
        raise ScenarioError(source, [f"unknown trace format {fmt!r} ({', '.join(TRACE_FORMATS)})"])
    order = np.argsort(times, kind="stable")
    times = times[order] - times[order][0]
    for array in (times, n_in, n_out):
        array.setflags(write=False)
    return Trace(source, times, n_in[order], n_out[order], blocks.take(order) if blocks else None)


def load_trace(path: Path, fmt: str, columns: CsvColumns | None = None) -> Trace:
    """The trace at `path` (cached per file version), or a ScenarioError saying what is wrong."""
    stat = check_file(path, "trace file", MAX_TRACE_BYTES)
    if stat.st_size == 0:
        raise ScenarioError(str(path), ["the file is empty"])
    try:
        return _load(path.resolve(), fmt, columns or CsvColumns(), stat.st_mtime)
    except UnicodeDecodeError:
        raise ScenarioError(str(path), ["not a UTF-8 text file"]) from None
    except PermissionError:
        raise ScenarioError(str(path), ["cannot read the trace file: permission denied"]) from None


def mean_gap(trace: Trace) -> float:
    """Mean time between requests (0 for a single request)."""
    return trace.span / (len(trace) - 1) if len(trace) > 1 else 0.0
