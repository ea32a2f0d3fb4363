"""Serverless endpoints: per-token prices, closed-form latency, optional token-bucket limits."""

from __future__ import annotations

import math
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
from simulator.scenario.deployments import RateLimit, ServerlessSpec


class TokenBucket:
    """Capacity `per_min`, refilled continuously at `per_min / 60` per second.

    A caller that is allowed to wait reserves its tokens now and may drive the level
    negative; the wait is the time for the refill to pay that debt back (GCRA), so
    waiting callers are served first come, first served.
    """

    def __init__(self, per_min: float) -> None:
        self.capacity = per_min
        self.refill = per_min / 60.0
        self.level = per_min
        self.updated = 0.0

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` is available (inf if it exceeds the capacity)."""
        if amount > self.capacity:
            return math.inf
        self.level = min(self.capacity, self.level + (now - self.updated) * self.refill)
        self.updated = now
        return max(0.0, (amount - self.level) / self.refill)

    def take(self, amount: float) -> None:
        self.level -= amount


class ServerlessEndpoint(DeploymentModel):
    """Always has capacity, unless a rate limit says otherwise; no events needed."""

    kind: ClassVar[str] = "serverless"
    spec: ServerlessSpec

    def __init__(self, spec: ServerlessSpec, index: int, context: EngineContext) -> None:
        super().__init__(spec, index, context)
        scenario = context.scenario
        workloads = len(scenario.workloads)
        if spec.price is not None:  # this provider's own price, whatever the model
            self.prices = np.tile([spec.price.input, spec.price.output], (workloads, 1))
            cached = [spec.price.cached_input] * workloads
        else:
            self.prices = per_workload_prices(scenario)
            cached = [
                scenario.models[w.model].serverless_price.cached_input for w in scenario.workloads
            ]
        self.tiers = per_workload_tiers(scenario, price=spec.price)  # long-context prices
        # prompt caching: cached input tokens billed at `cached_input` (where there is one)
        self.cached_prices = np.array([np.nan if c is None else c for c in cached])
        self.blocks = context.blocks
        self.block_tokens = context.block_tokens
        self.caching = self.blocks is not None and not np.all(np.isnan(self.cached_prices))
        self.cache: dict[int, float] = {}  # block id -> when it was last used
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.tpot = 1.0 / spec.output_tokens_per_s
        self.prefill_s_per_token = (
            1.0 / spec.prefill_tokens_per_s if spec.prefill_tokens_per_s else 0.0
        )
        limit: RateLimit | None = spec.rate_limit
        self.request_bucket = (
            TokenBucket(limit.requests_per_min) if limit and limit.requests_per_min else None
        )
        self.token_bucket = (
            TokenBucket(limit.tokens_per_min) if limit and limit.tokens_per_min else None
        )
        self.rate_limited = 0
        self.delayed_s = 0.0

    def _limit_wait(self, tokens: int, now: float) -> float:
        wait = 0.0
        if self.request_bucket is not None:
            wait = self.request_bucket.wait_for(1.0, now)
        if self.token_bucket is not None:
            wait = max(wait, self.token_bucket.wait_for(float(tokens), now))
        return wait

    def offer(self, i: int, now: float) -> bool:
        r = self.records
        n_in = int(r.input_tokens[i])
        n_out = int(r.output_tokens[i])
        wait = 0.0
        if self.request_bucket is not None or self.token_bucket is not None:
            wait = self._limit_wait(n_in + n_out, now)
            if wait > 0:
                self.rate_limited += 1
                if self.spec.on_limit == "spill" or math.isinf(wait):
                    return False
                self.delayed_s += wait
            if self.request_bucket is not None:
                self.request_bucket.take(1.0)
            if self.token_bucket is not None:
                self.token_bucket.take(float(n_in + n_out))
        start = now + wait
        w = r.workload[i]
        cached = self._cached(i, int(w), n_in, start) if self.caching else 0
        first = start + self.spec.ttft + (n_in - cached) * self.prefill_s_per_token
        r.start[i] = start
        r.first_token[i] = first
        r.finish[i] = first + max(n_out - 1, 0) * self.tpot
        tiered = tiered_cost(self.tiers[w], n_in, n_out, cached) if self.tiers else None
        if tiered is None:
            tiered = token_cost(self.prices, w, n_in, n_out) + self._discount(w, cached)
        r.cost[i] = tiered
        r.outcome[i] = Outcome.COMPLETED
        return True

    def _cached(self, i: int, w: int, n_in: int, now: float) -> int:
        """Prompt tokens of request i the provider still holds (its leading blocks used
        within the last `prompt_cache_ttl`); its blocks are then fresh. Only for workloads
        with a cached-input price."""
        self.prompt_tokens += n_in
        blocks = self.blocks
        assert blocks is not None and self.block_tokens is not None
        size = int(self.block_tokens[w])
        if not size or i >= len(blocks) or np.isnan(self.cached_prices[w]):
            return 0
        cache, oldest = self.cache, now - self.spec.prompt_cache_ttl
        hits = 0
        leading = True
        for block in blocks.ids[blocks.starts[i] : blocks.starts[i + 1]].tolist():
            used = cache.get(block)
            if leading and used is not None and used >= oldest:
                hits += 1
            else:
                leading = False
            cache[block] = now
        cached = min(hits * size, n_in - 1)
        self.cached_tokens += cached
        return cached

    def _discount(self, w: int, cached: int) -> float:
        """What the cached tokens save against the input price (<= 0)."""
        if not cached:
            return 0.0
        return float(cached * (self.cached_prices[w] - self.prices[w, 0]) / 1e6)

    @property
    def takes_in_bulk(self) -> bool:
        return self.request_bucket is None and self.token_bucket is None

    @property
    def stateless(self) -> bool:
        return self.takes_in_bulk and not self.caching  # a prompt cache remembers

    def offer_many(self, rows: np.ndarray) -> np.ndarray:
        """`offer` for many requests at once (no rate limit: all admitted, closed form)."""
        assert self.takes_in_bulk
        r = self.records
        n_in = r.input_tokens[rows]
        n_out = r.output_tokens[rows]
        start = r.arrival[rows]
        workload = r.workload[rows]
        cached = np.zeros(len(rows), dtype=np.int64)
        if self.caching:  # in arrival order: the cache follows the requests
            for k, (i, w, n, t) in enumerate(
                zip(rows.tolist(), workload.tolist(), n_in.tolist(), start.tolist(), strict=True)
            ):
                cached[k] = self._cached(i, w, n, t)
        first = start + self.spec.ttft + (n_in - cached) * self.prefill_s_per_token
        r.start[rows] = start
        r.first_token[rows] = first
        r.finish[rows] = first + np.maximum(n_out - 1, 0) * self.tpot
        costs = token_costs(self.prices, workload, n_in, n_out)
        if self.caching:
            saving = np.nan_to_num(self.cached_prices[workload] - self.prices[workload, 0])
            costs = costs + cached * saving / 1e6
        r.cost[rows] = apply_tiers(
            costs, self.tiers, workload, n_in, n_out, cached if self.caching else None
        )
        r.outcome[rows] = Outcome.COMPLETED
        return np.ones(len(rows), dtype=bool)

    def summary(self) -> DeploymentSummary:
        extra: dict[str, object] = {
            "rate_limited": self.rate_limited,
            "rate_limit_wait_s": self.delayed_s,
        }
        if self.caching:
            extra["cached_input_tokens"] = self.cached_tokens
            extra["prompt_cache_hit_rate"] = (
                self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None
            )
        return DeploymentSummary(extra=extra)
