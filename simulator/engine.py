"""The engine: one run of a scenario — traffic through routes to deployments, into records.

The SimPy environment lives only here. Arrivals are generated up front in numpy, merged in
time order (ties broken by workload order) and fed in between SimPy's events, each routed at
its arrival time; a request goes to the first deployment of its workload's route that admits
it. Deployments whose latency is
closed-form (serverless, batch) fill the record at once; models that need the clock
(dedicated replicas) schedule their own SimPy events. After the horizon, arrivals stop and
the environment runs until every request in flight has finished (drain).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from simulator.deployments import DEPLOYMENT_MODELS, DeploymentModel, DeploymentSummary
from simulator.deployments.base import EngineContext
from simulator.deployments.compiled import run_compiled_pools
from simulator.errors import RunTooLargeError
from simulator.records import Blocks, Outcome, Reason, Records
from simulator.scenario.format import Scenario
from simulator.scenario.limits import MAX_CLOSED_LOOP_REQUESTS as MAX_REQUESTS
from simulator.streams import DEPLOYMENT, stream
from simulator.traffic.arrivals import Closed
from simulator.traffic.draw import TokenSampler, scenario_traffic

ProgressCallback = Callable[[float], None]
_BULK_BLOCK = 1 << 20  # requests routed in bulk at a time
_BLOCK = 1 << 16  # arrivals converted to Python numbers at a time; progress reported per block


@dataclass
class RunResult:
    """Everything one run produced; the report is computed from it, never the other way."""

    scenario: Scenario
    replication: int
    records: Records
    deployment_names: list[str]
    summaries: list[DeploymentSummary]
    spilled: list[int]
    end_time: float


def _merge_traffic(
    scenario: Scenario, replication: int
) -> tuple[Records, Blocks | None, np.ndarray]:
    """All workloads' requests in one time order (ties in workload order), as records, with
    their prompts' KV-cache blocks when any workload has them, and each workload's tokens
    per block.

    Column by column, freeing each workload's arrays once merged: the peak is the traffic
    plus one column, not several copies of everything."""
    traffic = scenario_traffic(scenario, replication)
    block_tokens = np.array([t.block_tokens for t in traffic], dtype=np.int64)
    blocks = None
    if any(t.blocks is not None for t in traffic):
        parts = [
            t.blocks
            if t.blocks is not None
            else Blocks(np.empty(0, np.int64), np.zeros(len(t.times) + 1, np.int64))
            for t in traffic
        ]
        blocks = Blocks.concatenate(parts)
    times = np.concatenate([t.times for t in traffic])
    # a stable sort of the workloads' arrivals, concatenated in workload order, breaks ties
    # by workload: the same order as lexsort((workload, times))
    order = np.argsort(times, kind="stable")
    arrival = times[order]
    del times
    workload = np.repeat(np.arange(len(traffic), dtype=np.int32), [len(t.times) for t in traffic])[
        order
    ]
    columns = []
    for name in ("input_tokens", "output_tokens"):
        merged = np.concatenate([getattr(t, name) for t in traffic])
        columns.append(merged[order])
        del merged
    if blocks is not None:
        blocks = blocks.take(order)
    images = None
    if any(t.image_tokens is not None for t in traffic):
        images = np.concatenate(
            [
                np.zeros(len(t.times), np.int32) if t.image_tokens is None else t.image_tokens
                for t in traffic
            ]
        ).astype(np.int32)[order]
    del traffic, order
    records = Records.allocate(workload, arrival, columns[0], columns[1])
    records.image_tokens = images
    return records, blocks, block_tokens


def _context_limits(scenario: Scenario) -> np.ndarray:
    return np.array(
        [
            scenario.models[w.model].context_length or np.iinfo(np.int64).max
            for w in scenario.workloads
        ],
        dtype=np.int64,
    )


class Router:
    """Sends request i to the first deployment of its workload's route that admits it."""

    def __init__(
        self, records: Records, routes: list[list[DeploymentModel]], limits: np.ndarray
    ) -> None:
        self.records = records
        self.routes = routes
        self.limits = limits

    def route(self, i: int, t: float) -> bool:
        """Route request i arriving at t; False if it was rejected."""
        r = self.records
        w = int(r.workload[i])
        if r.input_tokens[i] + r.output_tokens[i] > self.limits[w]:
            self.reject_over_context(i)
            return False
        return self.route_admissible(i, w, t)

    def route_after(self, i: int, t: float, deployment: DeploymentModel) -> bool:
        """Route request i at t to the deployments of its route after `deployment` (a retry
        from a failed replica that `deployment` could not take again); False: lost."""
        w = int(self.records.workload[i])
        start = self.routes[w].index(deployment) + 1
        if self.route_admissible(i, w, t, start, int(self.records.spills[i]) + 1):
            return True
        self.records.deployment[i] = -1
        return False

    def reject_over_context(self, i: int) -> None:
        self.records.outcome[i] = Outcome.REJECTED
        self.records.reason[i] = Reason.CONTEXT_LENGTH

    def route_admissible(self, i: int, w: int, t: float, start: int = 0, spills: int = 0) -> bool:
        """Route request i of workload w, known to fit its model's context, arriving at t
        (from position `start` of its route, `spills` refusals counted already)."""
        route = self.routes[w]
        for deployment in route[start:] if start else route:
            limit = deployment.length_limit
            if limit is not None and self.records.input_tokens[i] > limit:
                deployment.passed_by_length += 1
                continue
            if deployment.offer(i, t):
                self.records.deployment[i] = deployment.index
                if spills:
                    self.records.spills[i] = spills
                return True
            deployment.spilled += 1
            spills += 1
        r = self.records
        r.spills[i] = spills
        r.outcome[i] = Outcome.REJECTED
        r.reason[i] = Reason.NO_CAPACITY
        return False


def _bulk_workloads(routes: list[list[DeploymentModel]]) -> list[int]:
    """Workloads whose requests can be routed without the event loop: every deployment of
    the route takes requests in bulk, any with state (a batch queue) comes first on the
    route and serves no other kind of route (so its offers stay in time order)."""
    bulk = [
        w
        for w, route in enumerate(routes)
        if route and all(d.takes_in_bulk for d in route) and all(d.stateless for d in route[1:])
    ]
    stateful = {id(routes[w][0]) for w in bulk if not routes[w][0].stateless}
    shared = {id(d) for w, route in enumerate(routes) if w not in bulk for d in route} & stateful
    return [w for w in bulk if id(routes[w][0]) not in shared]


def _route_in_bulk(
    records: Records, routes: list[list[DeploymentModel]], limits: np.ndarray, bulk: list[int]
) -> np.ndarray | None:
    """Route the requests of the `bulk` workloads, deployment by deployment; returns the
    rows left for the event loop (None: all of them).

    A block of rows at a time, each routed through every position of its routes before
    the next: only a route's first deployment may keep state (`_bulk_workloads`), and it
    still sees its offers in time order; the temporaries stay the size of a block."""
    if not bulk:
        return None
    workload = records.workload[: len(records)]
    in_bulk = np.isin(workload, bulk)
    everyone = {d.index: d for route in routes for d in route}.values()
    first = np.array([route[0].index if route else -1 for route in routes])
    for lo in range(0, len(in_bulk), _BULK_BLOCK):  # the bulk rows a block of records at a time
        rows = lo + np.flatnonzero(in_bulk[lo : lo + _BULK_BLOCK])
        fits = records.input_tokens[rows] + records.output_tokens[rows] <= limits[workload[rows]]
        over = rows[~fits]
        records.outcome[over] = Outcome.REJECTED
        records.reason[over] = Reason.CONTEXT_LENGTH
        pending = rows[fits]
        position = 0
        while len(pending):
            at = (
                first
                if position == 0
                else np.array(
                    [
                        routes[w][position].index if position < len(routes[w]) else -1
                        for w in range(len(routes))
                    ]
                )
            )[workload[pending]]
            refused = []
            for deployment in everyone:
                chosen = pending[at == deployment.index]
                if not len(chosen):
                    continue
                taken = deployment.offer_many(chosen)
                records.deployment[chosen[taken]] = deployment.index
                records.spills[chosen[taken]] = position
                deployment.spilled += int((~taken).sum())
                refused.append(chosen[~taken])
            exhausted = pending[at == -1]
            records.spills[exhausted] = position
            records.outcome[exhausted] = Outcome.REJECTED
            records.reason[exhausted] = Reason.NO_CAPACITY
            pending = np.sort(np.concatenate(refused)) if refused else pending[:0]
            position += 1
    # row numbers fit 32 bits (a run is capped far below 2^31 requests)
    return np.flatnonzero(~in_bulk).astype(np.int32)


def _feed(
    env: simpy.Environment,
    records: Records,
    router: Router,
    clocked: bool,
    progress: ProgressCallback | None,
    rows: np.ndarray | None = None,
) -> None:
    """Route the pre-generated (open-loop) arrivals in time order (only `rows`, if given),
    interleaved with SimPy's events.

    Before each arrival, the environment steps through every event due earlier (`clocked`
    runs only: otherwise no deployment schedules events). Deployments are offered a request
    with its arrival time, so the clock need not be moved to it first, and an arrival costs
    no event of its own. Arrivals at one instant are all routed before that instant's events
    (a batch job's requests reach the queue together). Arrivals are converted to Python
    numbers a block at a time, so memory does not grow with the run.
    """
    n = len(records) if rows is None else len(rows)
    route = router.route_admissible
    limits = router.limits
    peek, step = env.peek, env.step
    for lo in range(0, n, _BLOCK):
        hi = min(n, lo + _BLOCK)
        if progress is not None:
            progress(lo / n)
        block = slice(lo, hi) if rows is None else rows[lo:hi]
        index = range(lo, hi) if rows is None else rows[lo:hi].tolist()
        workload = records.workload[block]
        arrivals = records.arrival[block].tolist()
        workloads = workload.tolist()
        fits = (
            records.input_tokens[block] + records.output_tokens[block] <= limits[workload]
        ).tolist()
        for j, t in enumerate(arrivals):
            if clocked:
                while peek() < t:
                    step()
            if fits[j]:
                route(index[j], workloads[j], t)
            else:
                router.reject_over_context(index[j])
    if progress is not None:
        progress(1.0)


def _closed_client(
    env: simpy.Environment,
    context: EngineContext,
    router: Router,
    workload: int,
    tokens: _TokenQueue,
    horizon: float,
    think_time: float,
    start: float = 0.0,
) -> Generator[Any, Any, None]:
    """One closed-loop client: from `start`, send, wait for the answer, think, send again
    until the horizon.

    A rejected request is retried after the think time, or after 1 s when there is none.
    """
    records = context.records
    if start > env.now:
        yield env.timeout(start - env.now)
    ready = start  # when the client may send next: exact, not the clock's float sum of waits
    while max(env.now, ready) < horizon:
        now = max(env.now, ready)
        n_in, n_out = tokens.next()
        if records.count and not records.count & 0xFFFF:  # every 65,536 requests: on course?
            projected = records.count * horizon / now if now > 0 else math.inf
            if projected > MAX_REQUESTS:
                course = (
                    f"about {projected:,.0f} requests over the horizon"
                    if math.isfinite(projected)
                    else "requests without end (its answers take no time)"
                )
                raise RunTooLargeError(
                    f"workloads.{context.scenario.workloads[workload].name}.arrivals: the "
                    f"closed loop is on course for {course}; the limit is "
                    f"{MAX_REQUESTS:,}. Give it a think_time or shorten the horizon."
                )
        i = records.append(workload, now, n_in, n_out)
        if router.route(i, now):
            finish = records.finish[i]
            if np.isnan(finish):
                yield context.completion_event(i)
                finish = records.finish[i]
            elif finish > env.now:
                yield env.timeout(finish - env.now)
            ready = float(finish) + think_time
        else:
            ready = now + (think_time if think_time > 0 else 1.0)
        if ready > env.now:
            yield env.timeout(ready - env.now)


class _TokenQueue:
    """A workload's token lengths, drawn in blocks from its sampler and handed out in order."""

    def __init__(self, sampler: TokenSampler, block: int = 4096) -> None:
        self.sampler = sampler
        self.block = block
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    def next(self) -> tuple[int, int]:
        if not self.inputs:
            n_in, n_out = self.sampler.sample(self.block)
            self.inputs = n_in.tolist()[::-1]
            self.outputs = n_out.tolist()[::-1]
        return self.inputs.pop(), self.outputs.pop()


def simulate(
    scenario: Scenario, replication: int = 0, progress: ProgressCallback | None = None
) -> RunResult:
    """Run the scenario once (replication `replication` of its seed) and return the records."""
    records, blocks, block_tokens = _merge_traffic(scenario, replication)
    env = simpy.Environment()
    models: list[DeploymentModel] = []
    completions: dict[int, simpy.Event] = {}
    for index, spec in enumerate(scenario.deployments):
        rng = stream(scenario.seed, replication, DEPLOYMENT, spec.name)
        context = EngineContext(scenario, records, env, rng, completions, blocks, block_tokens)
        models.append(DEPLOYMENT_MODELS[spec.kind](spec, index, context))
    by_name = {m.name: m for m in models}
    routes = [[by_name[name] for name in w.route] for w in scenario.workloads]
    router = Router(records, routes, _context_limits(scenario))
    for model in models:  # a retry from a failed replica goes on along its route
        model.context.reroute = router.route_after
    closed = [(w, wl) for w, wl in enumerate(scenario.workloads) if wl.arrivals.closed_loop]
    if not closed:  # feed-forward pools first, compiled (deployments/compiled)
        compiled = run_compiled_pools(records, models, routes, router.limits, progress)
        if compiled and progress is not None:
            share = compiled / max(1, len(records))
            outer = progress
            progress = lambda x: outer(share + (1 - share) * x)  # noqa: E731
    clocked = bool(closed) or any(m.clocked() for m in models)
    shared = EngineContext(scenario, records, env, np.random.default_rng(0), completions)
    for w, workload in closed:
        tokens = _TokenQueue(TokenSampler(workload, scenario.seed, replication))
        process = workload.arrivals
        assert isinstance(process, Closed)
        for client in range(process.concurrency):
            env.process(
                _closed_client(
                    env,
                    shared,
                    router,
                    w,
                    tokens,
                    scenario.horizon,
                    process.think_time,
                    process.start_of(client),
                )
            )
    rows = (
        None if closed else _route_in_bulk(records, routes, router.limits, _bulk_workloads(routes))
    )
    _feed(env, records, router, clocked, progress, rows)
    env.run()  # what is left: closed-loop clients, requests in flight (the drain)
    for model in models:
        model.drain()
    records.finalize()
    if np.any(records.outcome == Outcome.PENDING):
        raise RuntimeError("engine bug: requests left pending after the drain")
    last = np.max(records.finish, where=records.outcome == Outcome.COMPLETED, initial=0.0)
    end_time = max(scenario.horizon, float(last))
    return RunResult(
        scenario=scenario,
        replication=replication,
        records=records,
        deployment_names=[m.name for m in models],
        summaries=[m.summary() for m in models],
        spilled=[m.spilled for m in models],
        end_time=end_time,
    )
