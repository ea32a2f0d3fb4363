"""Replayed traffic: arrival times and token counts from a log file, exactly as recorded.

Time in the file is measured from its first request and multiplied by `time_scale`
(0.5 plays the file twice as fast). With `loop`, the file repeats back to back to fill the
horizon, one mean gap between the last request of a pass and the first of the next.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationInfo, model_validator

from simulator.errors import ScenarioError
from simulator.records import Blocks
from simulator.scenario.spec import Spec
from simulator.traffic.arrivals.base import ArrivalProcess, Arrivals
from simulator.traffic.traces import CsvColumns, Trace, load_trace, mean_gap


class TraceColumns(Spec):
    """Column names of a generic CSV trace, and the unit of its time stamps."""

    timestamp: str = "timestamp"
    input_tokens: str = "input_tokens"
    output_tokens: str = "output_tokens"
    time_unit: Literal["s", "ms", "us", "datetime"] = "s"


class TraceReplay(ArrivalProcess):
    """Arrivals and token counts replayed from a trace file."""

    carries_tokens: ClassVar[bool] = True
    process: Literal["trace"]
    path: str
    format: Literal["azure", "mooncake", "ragpulse", "openai-usage", "csv"]
    time_scale: float = Field(default=1.0, gt=0)
    loop: bool = False
    columns: TraceColumns | None = None

    @model_validator(mode="after")
    def _readable(self, info: ValidationInfo) -> TraceReplay:
        base = (info.context or {}).get("base_dir")
        path = Path(self.path)
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        resolved = self.model_copy(update={"path": str(path)})
        try:
            resolved.trace()  # read and check it now: a bad trace fails validation, not a run
        except ScenarioError as exc:
            raise ValueError(str(exc)) from None
        return resolved

    def trace(self) -> Trace:
        columns = CsvColumns(**self.columns.model_dump()) if self.columns else None
        return load_trace(Path(self.path), self.format, columns)

    def period(self) -> float:
        """Seconds of simulated time one pass over the file takes (with the gap to loop)."""
        trace = self.trace()
        return (trace.span + mean_gap(trace)) * self.time_scale

    def scaled(self, factor: float) -> TraceReplay:
        """The trace replayed `factor` times faster (its gaps shrink; looped when sped up,
        so a sped-up replay still fills the horizon)."""
        return self.model_copy(
            update={"time_scale": self.time_scale / factor, "loop": self.loop or factor > 1}
        )

    def mean_rate(self) -> float:
        """Requests a second over one pass; 0 for a trace of one instant (one request, or
        all at the same time stamp), which replays once and then sends nothing."""
        period = self.period()
        return len(self.trace()) / period if period > 0 else 0.0

    def expected(self, horizon: float) -> float:
        """The requests the replay sends within `horizon`: counted, not a rate times a
        span (a trace of one instant has a span of zero)."""
        trace = self.trace()
        times = trace.times * self.time_scale
        once = float(np.count_nonzero(times < horizon))
        period = self.period()
        if not self.loop or period <= 0:
            return once
        full, rest = divmod(horizon, period)
        return full * len(times) + float(np.count_nonzero(times < rest))

    def generate(self, rng: np.random.Generator, horizon: float, clock: float = 0.0) -> Arrivals:
        trace = self.trace()
        times = trace.times * self.time_scale
        passes = 1
        if self.loop and self.period() > 0:
            passes = max(1, math.ceil(horizon / self.period()))
        offsets = np.repeat(np.arange(passes) * self.period(), len(times))
        all_times = np.tile(times, passes) + offsets
        keep = all_times < horizon
        blocks = None
        if trace.blocks is not None:  # each pass replays new conversations: fresh block ids
            span = int(trace.blocks.ids.max()) + 1 if len(trace.blocks.ids) else 1
            repeated = Blocks.concatenate(
                [Blocks(trace.blocks.ids + p * span, trace.blocks.starts) for p in range(passes)]
            )
            blocks = repeated.take(np.flatnonzero(keep))
        return Arrivals(
            all_times[keep],
            np.tile(trace.input_tokens, passes)[keep],
            np.tile(trace.output_tokens, passes)[keep],
            blocks,
        )
