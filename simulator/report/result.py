"""What a run or a replicated study gives its reader: the report and each replication's raw
results, with their per-request records one call away as a DataFrame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.engine import RunResult
from simulator.scenario.format import Scenario

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Result:
    """A run or replicated study: the report (dict) and each replication's raw results."""

    scenario: Scenario
    report: dict[str, Any]
    runs: list[RunResult] = field(repr=False)

    @property
    def records(self) -> pd.DataFrame:
        """Per-request records of the first replication, as a DataFrame."""
        return self._frame(0)

    @property
    def all_records(self) -> pd.DataFrame:
        """Per-request records of every replication, one after the other (`replication`)."""
        import pandas as pd

        return pd.concat([self._frame(k) for k in range(len(self.runs))], ignore_index=True)

    def _frame(self, k: int) -> pd.DataFrame:
        run = self.runs[k]
        workloads = self.scenario.workloads
        return run.records.to_frame(
            [w.name for w in workloads],
            run.deployment_names,
            [w.model for w in workloads],
            [dict(w.tags) for w in workloads],
            run.replication,
        )
