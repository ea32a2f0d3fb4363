"""What every deployment model does for the engine: admit or refuse a request, then account."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import simpy

from simulator.records import Blocks, Records
from simulator.scenario.format import Scenario
from simulator.scenario.spec import Price


@dataclass
class EngineContext:
    """What a deployment model may touch during a run (all of it fresh for that run)."""

    scenario: Scenario
    records: Records
    env: simpy.Environment
    rng: np.random.Generator
    completions: dict[int, simpy.Event] = field(default_factory=dict)
    # prompts' KV-cache blocks by row (rows the closed loop appends have none), and the
    # tokens of a block by workload (0: that workload's prompts have no block ids)
    blocks: Blocks | None = None
    block_tokens: np.ndarray | None = None
    # routes request i on from a deployment (after it) at a time: set by the engine's router
    reroute: Callable[[int, float, DeploymentModel], bool] = field(default=lambda i, t, d: False)


    def completion_event(self, i: int) -> simpy.Event:
        """An event that fires when request i completes (for closed-loop clients)."""
        event = self.completions.get(i)
        if event is None:
            event = self.completions[i] = self.env.event()
        return event

    def completed(self, i: int) -> None:
        """Called by clocked deployments when request i finishes: wakes whoever waits on it."""
        event = self.completions.pop(i, None)
        if event is not None:
            event.succeed()


@dataclass
class DeploymentSummary:
    """A deployment's own accounting after the run (per-token costs are in the records)."""

    fixed_cost_usd: float = 0.0
    gpu_hours: float | None = None
    utilization: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DeploymentModel:
    """Base of the deployment kinds; `offer` is called once per request routed here."""

    kind: ClassVar[str]
    uses_clock: ClassVar[bool] = False  # True when the model schedules its own SimPy events

    def __init__(self, spec: Any, index: int, context: EngineContext) -> None:
        self.spec = spec
        self.name: str = spec.name
        self.index = index
        self.context = context
        self.records = context.records
        self.spilled = 0
        # length-based routing: prompts longer than this pass to the next entry of the
        # route without being offered (not a spill: nothing was refused)
        self.length_limit: int | None = getattr(spec, "max_input_tokens", None)
        self.passed_by_length = 0

    def offer(self, i: int, now: float) -> bool:
        """Take request `i` (arrived at `now`) and fill its record, or refuse it (False)."""
        raise NotImplementedError

    @property
    def takes_in_bulk(self) -> bool:
        """True when `offer_many` can take requests without the engine's event loop: the
        deployment never refuses, or its state depends only on the requests it is offered
        (so those need only come in time order among themselves)."""
        return False

    @property
    def stateless(self) -> bool:
        """True when offers do not depend on earlier offers (any order gives the same)."""
        return False

    def offer_many(self, rows: np.ndarray) -> np.ndarray:
        """Take requests `rows` (in arrival order) as `offer` would, one after the other;
        returns which were admitted."""
        raise NotImplementedError

    def clocked(self) -> bool:
        """Whether the model needs the event loop's clock in this run."""
        return self.uses_clock

    def drain(self) -> None:
        """After the last event: finish what was planned without events."""

    def summary(self) -> DeploymentSummary:
        return DeploymentSummary()


def per_workload_prices(scenario: Scenario, batch_discount: float | None = None) -> np.ndarray:
    """USD per 1M tokens, shape (workloads, 2): input and output price of each workload's model.

    With `batch_discount`, the model's `batch_price` if set, else price x (1 - discount).
    """
    prices = np.zeros((len(scenario.workloads), 2))
    for w, workload in enumerate(scenario.workloads):
        model = scenario.models[workload.model]
        price = model.serverless_price
        if batch_discount is not None:
            if model.batch_price is not None:
                price = model.batch_price
            else:
                factor = 1.0 - batch_discount
                prices[w] = (price.input * factor, price.output * factor)
                continue
        prices[w] = (price.input, price.output)
    return prices


Tiers = list[tuple[tuple[int, float, float, float], ...]] | None
"""Per workload, its price's long-context tiers (prompt tokens above which, input, output,
cached input (NaN: none) per 1M), ascending; None when no workload has any."""


def per_workload_tiers(
    scenario: Scenario, batch_discount: float | None = None, price: Price | None = None
) -> Tiers:
    """Each workload's long-context tiers: of `price` (a provider's own) if given, else of
    its model's serverless price; with `batch_discount`, discounted (none when the model
    has its own batch price)."""
    tiers: list[tuple[tuple[int, float, float, float], ...]] = []
    for workload in scenario.workloads:
        model = scenario.models[workload.model]
        chosen = price if price is not None else model.serverless_price
        factor = 1.0
        if batch_discount is not None:
            if model.batch_price is not None:
                tiers.append(())
                continue
            factor = 1.0 - batch_discount
        tiers.append(price_tiers(chosen, factor))
    return tiers if any(tiers) else None


def price_tiers(price: Price, factor: float = 1.0) -> tuple[tuple[int, float, float, float], ...]:
    """`price`'s long-context tiers as (prompt tokens above which, input, output, cached
    input (NaN: none) per 1M), each times `factor` (a batch discount)."""
    return tuple(
        (
            t.above_input_tokens,
            t.input * factor,
            t.output * factor,
            _cached(t.cached_input, price.cached_input) * factor,
        )
        for t in price.tiers
    )


def _cached(tier: float | None, base: float | None) -> float:
    return tier if tier is not None else (base if base is not None else math.nan)


def tiered_cost(
    tiers: tuple[tuple[int, float, float, float], ...], n_in: int, n_out: int, cached: int = 0
) -> float | None:
    """USD of one request at the highest tier its prompt exceeds (its cached tokens at the
    tier's cached price, if any), or None below every tier."""
    chosen = None
    for tier in tiers:
        if n_in <= tier[0]:
            break
        chosen = tier
    if chosen is None:
        return None
    _, price_in, price_out, price_cached = chosen
    saving = 0.0 if math.isnan(price_cached) else cached * (price_cached - price_in)
    return float((n_in * price_in + n_out * price_out + saving) / 1e6)


def apply_tiers(
    costs: np.ndarray,
    tiers: Tiers,
    workload: np.ndarray,
    n_in: np.ndarray,
    n_out: np.ndarray,
    cached: np.ndarray | None = None,
) -> np.ndarray:
    """`costs` of many requests with the long-context tiers applied (the highest tier a
    prompt exceeds replaces its base price, its cached tokens at the tier's cached price)."""
    if tiers is None:
        return costs
    costs = costs.copy()
    for w, table in enumerate(tiers):
        for above, price_in, price_out, price_cached in table:  # ascending: the last wins
            hit = (workload == w) & (n_in > above)
            if not hit.any():
                continue
            value = n_in[hit] * price_in + n_out[hit] * price_out
            if cached is not None and not math.isnan(price_cached):
                value = value + cached[hit] * (price_cached - price_in)
            costs[hit] = value / 1e6
    return costs


def token_cost(prices: np.ndarray, workload: int, n_in: int, n_out: int) -> float:
    """USD of one request: (input x price_in + output x price_out) / 1e6."""
    return float((n_in * prices[workload, 0] + n_out * prices[workload, 1]) / 1e6)


def token_costs(
    prices: np.ndarray, workload: np.ndarray, n_in: np.ndarray, n_out: np.ndarray
) -> np.ndarray:
    """`token_cost` of many requests (the same arithmetic, element by element)."""
    costs: np.ndarray = (n_in * prices[workload, 0] + n_out * prices[workload, 1]) / 1e6
    return costs
