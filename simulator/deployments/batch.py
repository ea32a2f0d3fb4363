"""Batch: discounted tokens, processed asynchronously by a per-account queue.

The provider is modeled as a first-in, first-out queue that works through tokens at
`tokens_per_s`; the tokens still enqueued at time t are therefore (busy_until - t) x rate,
so admission (`max_enqueued_tokens`) and completion times are computed, not stepped.
"""

from __future__ import annotations

from typing import ClassVar

from simulator.deployment_specs import BatchSpec
from simulator.deployments.base import (
    DeploymentModel,
    DeploymentSummary,
    EngineContext,
    per_workload_prices,
    token_cost,
)
from simulator.records import Outcome


class BatchQueue(DeploymentModel):
    """A FIFO fluid server over tokens; refuses work past the enqueued-token cap."""

    kind: ClassVar[str] = "batch"
    spec: BatchSpec

    def __init__(self, spec: BatchSpec, index: int, context: EngineContext) -> None:
        super().__init__(spec, index, context)
        self.prices = per_workload_prices(context.scenario, batch_discount=spec.discount)
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
        r.cost[i] = token_cost(self.prices, w, n_in, n_out)
        r.outcome[i] = Outcome.COMPLETED
        return True

    def summary(self) -> DeploymentSummary:
        horizon = self.context.scenario.horizon
        return DeploymentSummary(
            utilization=self.tokens_processed / (self.rate * horizon),
            extra={
                "tokens_per_s": self.rate,
                "peak_enqueued_tokens": self.peak_enqueued,
                "refused_queue_full": self.refused_full,
            },
        )
