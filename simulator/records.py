"""Per-request records: flat, typed, preallocated columns, one row per arrived request."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Blocks:
    """Each request's prompt as a list of KV-cache block ids, stored flat: request r's
    blocks are `ids[starts[r]:starts[r + 1]]`, each of `tokens` prompt tokens. Two requests
    sharing a block id share that block and every block before it (ids of a prefix chain,
    as vLLM's and Mooncake's block hashes are)."""

    ids: np.ndarray  # int64
    starts: np.ndarray  # int64, one more than there are requests

    def __len__(self) -> int:
        return len(self.starts) - 1

    def of(self, r: int) -> np.ndarray:
        return self.ids[self.starts[r] : self.starts[r + 1]]

    @staticmethod
    def concatenate(parts: list[Blocks]) -> Blocks:
        ids = np.concatenate([p.ids for p in parts]) if parts else np.empty(0, np.int64)
        lengths = np.concatenate([np.diff(p.starts) for p in parts]) if parts else np.empty(0)
        starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        return Blocks(ids.astype(np.int64, copy=False), starts)

    def take(self, order: np.ndarray) -> Blocks:
        """The blocks of requests `order`, in that order."""
        lengths = np.diff(self.starts)[order]
        starts = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        source = np.repeat(self.starts[:-1][order] - starts[:-1], lengths)
        return Blocks(self.ids[source + np.arange(starts[-1])], starts)


class Outcome(IntEnum):
    PENDING = 0
    COMPLETED = 1
    REJECTED = 2


class Reason(IntEnum):
    """Why a request was rejected (NONE for completed ones)."""

    NONE = 0
    CONTEXT_LENGTH = 1
    NO_CAPACITY = 2
    REPLICA_FAILURE = 3  # lost: its replica failed, and it had been retried `retries` times


@dataclass
class Records:
    """Columns of equal length; row i is the i-th arrival of the run (all workloads merged)."""

    workload: np.ndarray  # int32, index into scenario.workloads
    arrival: np.ndarray  # float64, s
    input_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64
    deployment: np.ndarray  # int16, index into scenario.deployments; -1 if rejected
    outcome: np.ndarray  # int8, Outcome
    reason: np.ndarray  # int8, Reason
    spills: np.ndarray  # int16, deployments that refused the request before one admitted it
    start: np.ndarray  # float64, s: service began (arrival + queueing)
    first_token: np.ndarray  # float64, s (NaN where no stream, e.g. batch)
    finish: np.ndarray  # float64, s
    cost: np.ndarray  # float64, USD billed per token (0 for reserved capacity)
    count: int = 0  # rows in use; the arrays may be longer while a run appends
    appended: bool = False  # rows added during the run (out of arrival order)
    # input tokens that images became (int32), when a workload has images; else None
    image_tokens: np.ndarray | None = None

    @classmethod
    def allocate(
        cls,
        workload: np.ndarray,
        arrival: np.ndarray,
        input_tokens: np.ndarray,
        output_tokens: np.ndarray,
    ) -> Records:
        n = len(arrival)
        times = np.full((3, n), np.nan)  # start, first token, finish: rows of one array
        return cls(
            count=n,
            workload=workload.astype(np.int32, copy=False),
            arrival=arrival.astype(np.float64, copy=False),
            input_tokens=input_tokens.astype(np.int64, copy=False),
            output_tokens=output_tokens.astype(np.int64, copy=False),
            deployment=np.full(n, -1, dtype=np.int16),
            outcome=np.zeros(n, dtype=np.int8),
            reason=np.zeros(n, dtype=np.int8),
            spills=np.zeros(n, dtype=np.int16),
            start=times[0],
            first_token=times[1],
            finish=times[2],
            cost=np.zeros(n),
        )

    def __len__(self) -> int:
        return self.count

    def times(self) -> np.ndarray | None:
        """start, first_token and finish as the rows of one array (as allocated), or None
        once they are not (rows appended, reordered)."""
        base = self.start.base
        if (
            base is None
            or base.shape != (3, len(self.start))
            or self.first_token.base is not base
            or self.finish.base is not base
            or not all(
                np.shares_memory(base[k], column)
                for k, column in enumerate((self.start, self.first_token, self.finish))
            )
        ):
            return None
        return base

    def _columns(self) -> list[str]:
        return [
            f.name
            for f in fields(self)
            if f.name not in ("count", "appended") and getattr(self, f.name) is not None
        ]

    def append(self, workload: int, arrival: float, input_tokens: int, output_tokens: int) -> int:
        """Add a request issued during the run (closed-loop clients); returns its row."""
        if self.count == len(self.arrival):
            extra = max(1024, self.count)
            for name in self._columns():
                column = getattr(self, name)
                fill = np.nan if column.dtype.kind == "f" else (-1 if name == "deployment" else 0)
                setattr(self, name, np.concatenate([column, np.full(extra, fill, column.dtype)]))
        i = self.count
        self.appended = True
        self.workload[i] = workload
        self.arrival[i] = arrival
        self.input_tokens[i] = input_tokens
        self.output_tokens[i] = output_tokens
        self.cost[i] = 0.0
        self.count += 1
        return i

    def finalize(self) -> None:
        """Trim to the rows in use and order them by arrival (then workload), stably. Rows
        only allocated from the merged traffic are in that order already."""
        if not self.appended:
            return
        order = np.lexsort((self.workload[: self.count], self.arrival[: self.count]))
        if self.count == len(self.arrival) and np.all(order == np.arange(self.count)):
            return
        for name in self._columns():
            setattr(self, name, getattr(self, name)[: self.count][order])

    def to_frame(
        self,
        workload_names: list[str],
        deployment_names: list[str],
        models: list[str] | None = None,
        tags: list[dict[str, str]] | None = None,
        replication: int = 0,
    ) -> pd.DataFrame:
        """The records as a DataFrame: names instead of indices (each workload's model and
        tags, `tag_<key>`, beside it), latencies derived, units in the column names."""
        import pandas as pd

        frame = pd.DataFrame({"replication": np.full(self.count, replication, np.int32)})
        codes = self.workload.astype(np.int64)
        frame["workload"] = pd.Categorical.from_codes(codes, categories=pd.Index(workload_names))
        if models is not None:
            frame["model"] = np.asarray(models, dtype=object)[codes]
        for key in sorted({k for t in tags or [] for k in t}):
            values = np.asarray([t.get(key) for t in tags or []], dtype=object)
            frame[f"tag_{key}"] = values[codes]
        for name in ("deployment", "outcome", "reason", "spills", "input_tokens", "output_tokens"):
            frame[name] = getattr(self, name)
        for name in ("arrival", "start", "first_token", "finish"):
            frame[f"{name}_s"] = getattr(self, name)
        frame["cost_usd"] = self.cost
        frame["deployment"] = pd.Categorical.from_codes(
            self.deployment.astype(np.int64), categories=pd.Index(deployment_names)
        )
        frame["outcome"] = pd.Categorical.from_codes(
            self.outcome.astype(np.int64), categories=pd.Index([o.name.lower() for o in Outcome])
        )
        frame["reason"] = pd.Categorical.from_codes(
            self.reason.astype(np.int64), categories=pd.Index([r.name.lower() for r in Reason])
        )
        frame["queue_s"] = self.start - self.arrival
        frame["ttft_s"] = self.first_token - self.arrival
        with np.errstate(invalid="ignore", divide="ignore"):  # one-token answers: no TPOT
            frame["tpot_s"] = np.where(
                self.output_tokens > 1,
                (self.finish - self.first_token) / (self.output_tokens - 1),
                np.nan,
            )
        frame["e2e_s"] = self.finish - self.arrival
        return frame
