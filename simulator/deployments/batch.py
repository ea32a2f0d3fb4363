"""Batch: discounted tokens, processed asynchronously by a per-account queue.

The provider is modeled as a first-in, first-out queue that works through tokens at
`tokens_per_s`; the tokens still enqueued at time t are therefore (busy_until - t) x rate,
so admission (`max_enqueued_tokens`) and completion times are computed, not stepped.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from simulator.deployments.base import (
    DeploymentModel,
    DeploymentSummary,
    EngineContext,
    apply_tiers,
    per_workload_prices,
    per_workload_tiers,
    tiered_cost,
    token_cost,
    token_costs,
)
from simulator.records import Outcome
from simulator.scenario.deployments import BatchSpec

_BLOCK = 1 << 16  # requests converted to Python numbers at a time


class BatchQueue(DeploymentModel):
    """A FIFO fluid server over tokens; refuses work past the enqueued-token cap."""

    kind: ClassVar[str] = "batch"
    spec: BatchSpec

    def __init__(self, spec: BatchSpec, index: int, context: EngineContext) -> None:
        super().__init__(spec, index, context)
        self.prices = per_workload_prices(context.scenario, batch_discount=spec.discount)
        self.tiers = per_workload_tiers(context.scenario, batch_discount=spec.discount)
        self.rate = spec.processing_rate
        self.busy_until = 0.0
        self.tokens_processed = 0
        self.peak_enqueued = 0.0
        self.refused_full = 0

    def offer(self, i: int, now: float) -> bool:
        r = self.records
        n_in = int(r.input_tokens[i])
        n_out = int(r.output_tokens[i])
        tokens = n_in + n_out
        enqueued = max(0.0, self.busy_until - now) * self.rate
        if enqueued + tokens > self.spec.max_enqueued_tokens:
            self.refused_full += 1
            return False
        self.peak_enqueued = max(self.peak_enqueued, enqueued + tokens)
        start = max(now, self.busy_until)
        self.busy_until = start + tokens / self.rate
        self.tokens_processed += tokens
        w = r.workload[i]
        r.start[i] = start
        r.finish[i] = self.busy_until
        tiered = tiered_cost(self.tiers[w], n_in, n_out) if self.tiers else None
        r.cost[i] = token_cost(self.prices, w, n_in, n_out) if tiered is None else tiered
        r.outcome[i] = Outcome.COMPLETED
        return True

    @property
    def takes_in_bulk(self) -> bool:
        return True

    def offer_many(self, rows: np.ndarray) -> np.ndarray:
        """`offer` for many requests in arrival order: the same FIFO arithmetic, in a loop
        over Python numbers, a block of requests at a time (a Python number costs ~30 bytes:
        a month's batch jobs converted at once held ~100 bytes a request), records written
        once a block."""
        admitted = np.zeros(len(rows), dtype=bool)
        for lo in range(0, len(rows), _BLOCK):
            admitted[lo : lo + _BLOCK] = self._offer_block(rows[lo : lo + _BLOCK])
        return admitted

    def _offer_block(self, rows: np.ndarray) -> np.ndarray:
        r = self.records
        n_in = r.input_tokens[rows]
        n_out = r.output_tokens[rows]
        arrivals = r.arrival[rows].tolist()
        totals = (n_in + n_out).tolist()
        admitted = np.zeros(len(rows), dtype=bool)
        starts = np.full(len(rows), np.nan)
        finishes = np.full(len(rows), np.nan)
        rate, cap = self.rate, self.spec.max_enqueued_tokens
        busy_until, peak, processed, refused = self.busy_until, self.peak_enqueued, 0, 0
        for k, (now, tokens) in enumerate(zip(arrivals, totals, strict=True)):
            enqueued = max(0.0, busy_until - now) * rate
            if enqueued + tokens > cap:
                refused += 1
                continue
            peak = max(peak, enqueued + tokens)
            start = max(now, busy_until)
            busy_until = start + tokens / rate
            processed += tokens
            admitted[k] = True
            starts[k] = start
            finishes[k] = busy_until
        self.busy_until, self.peak_enqueued = busy_until, peak
        self.tokens_processed += processed
        self.refused_full += refused
        taken = rows[admitted]
        r.start[taken] = starts[admitted]
        r.finish[taken] = finishes[admitted]
        workload = r.workload[taken]
        costs = token_costs(self.prices, workload, n_in[admitted], n_out[admitted])
        r.cost[taken] = apply_tiers(costs, self.tiers, workload, n_in[admitted], n_out[admitted])
        r.outcome[taken] = Outcome.COMPLETED
        return admitted

    def summary(self) -> DeploymentSummary:
        horizon = self.context.scenario.horizon
        return DeploymentSummary(
            # over the horizon and the drain after it (a queue still busy at the horizon)
            utilization=self.tokens_processed / (self.rate * max(horizon, self.busy_until)),
            extra={
                "tokens_per_s": self.rate,
                "peak_enqueued_tokens": self.peak_enqueued,
                "refused_queue_full": self.refused_full,
            },
        )
