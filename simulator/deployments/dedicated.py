"""Dedicated endpoints and GPU clusters: a fleet of continuous-batching replicas of one
model, a waiting queue they share, reserved or autoscaled capacity billed by the GPU-hour.

A request the fleet cannot hold (its KV cache larger than a replica's, or the queue at
`max_queue`) is refused and goes on to the next deployment of its route.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from functools import partial
from typing import Any, ClassVar

import numpy as np
import simpy

from simulator.deployments.base import DeploymentModel, DeploymentSummary, EngineContext
from simulator.deployments.capacity import replica_capacity, spec_capacity
from simulator.deployments.failures import Failures
from simulator.deployments.replica import DECODE, IDLE, REACHING, Entry, Replica
from simulator.scenario.deployments import AutoscaleSpec, ClusterSpec, DedicatedSpec, ServingSpec
from simulator.scenario.format import Scenario
from simulator.serving.architecture import Architecture
from simulator.serving.hardware import find_gpu
from simulator.serving.performance import (
    DEFAULT_MFU,
    build_step_model,
    encoder_seconds_per_image_token,
    performance_fields,
    resolve_performance,
)


def lazy_run_ends(spec: ServingSpec, scenario: Scenario, autoscaled: bool) -> bool:
    """Whether replicas may reach the ends of their runs lazily, without events (see
    `Replica`): not when something must happen at each completion on time — the
    autoscaler's load, closed-loop clients waiting for answers — nor with chunked prefill,
    whose runs stop at every new arrival's step boundary anyway."""
    return (
        not spec.chunked_prefill
        and not autoscaled
        and not any(w.arrivals.closed_loop for w in scenario.workloads)
    )


class ServingPool(DeploymentModel):
    """Replicas, their shared queue, their bill."""

    kind: ClassVar[str] = "dedicated"
    uses_clock: ClassVar[bool] = True
    on_time: ClassVar[bool] = False  # True: every run end is an event (no lazy run ends)
    spec: ServingSpec

    def __init__(self, spec: ServingSpec, index: int, context: EngineContext) -> None:
        super().__init__(spec, index, context)
        scenario = context.scenario
        arch = scenario.models[spec.model].resolved_architecture(spec.model)
        self.step_model = build_step_model(spec, arch)  # validated with the scenario
        self.performance = performance_fields(spec, arch, self.step_model)
        self.env = context.env
        gpu = find_gpu(spec.gpu)
        assert gpu is not None
        given = spec.gpu_hour_price()
        price = given if given is not None else gpu.usd_per_gpu_hour
        assert price is not None  # validated with the scenario
        self.price = price
        self.queue: deque[Entry] = deque()  # waiting for a replica with room
        self.max_queue = spec.max_queue
        self.replicas: list[Replica] = []
        self.active: list[Replica] = []
        self.lives: list[list[float]] = []  # [start, end] of each replica's billing
        self.timeline: list[tuple[float, int]] = []
        self.refused_too_long = 0
        self.refused_queue_full = 0
        # optimistic admission: requests preempted (to be recomputed), and how many times
        self.preempted: set[int] = set()
        self.preemptions = 0
        self.optimistic = spec.kv_admission == "optimistic"
        self.offered_tokens = 0
        self.offered = 0
        self.output_tokens_served = 0
        self.queue_area = 0.0  # the sum of the waits (start - arrival): the queue's area
        self.system_time = 0.0  # the sum of (finish - arrival): the area of requests in it
        self.last_finish = 0.0
        # requests in the deployment, integrated over time as they come and go, for the
        # autoscaler's per-interval load
        self._system_area = 0.0
        self._in_system = 0
        self._system_since = 0.0
        self.autoscale = (
            spec.replicas
            if isinstance(spec, DedicatedSpec) and isinstance(spec.replicas, AutoscaleSpec)
            else None
        )
        self.lazy = not self.on_time and lazy_run_ends(
            spec, scenario, autoscaled=self.autoscale is not None
        )
        # prefix caching: each replica an LRU of prompt blocks (see Replica.cached_prefix)
        self.blocks = context.blocks if spec.prefix_caching else None
        self.routing = spec.prefix_routing and self.blocks is not None
        self.block_tokens = context.block_tokens
        self.prompt_tokens = 0  # prompts admitted, and the tokens of them found cached
        self.cached_tokens = 0
        # disaggregated: the prefill replicas; these replicas then only decode, and every
        # request prefilled is taken (max_queue bounds the prefill side's queue)
        self.decode_only = False
        self.group_token_cap = self._group_token_cap()  # prompt tokens a group may hold
        self.prefill_stage: PrefillStage | None = None
        if isinstance(spec, DedicatedSpec) and spec.disaggregation is not None:
            self.decode_only = True
            self.max_queue = None
            # cache-aware disaggregation (the guide's CPD): the prefill replicas hold the
            # prefix cache and are routed to by prefix; the decode replicas take the KV
            # they are sent, whole
            self.blocks = None
            self.routing = False
            self.encoder = None  # images are encoded where prompts are prefilled
            self.prefill_stage = PrefillStage(self, spec, context)
        # run compiled before the event loop (deployments/compiled): each row's answer, and
        # the replicas' busy seconds and peak batches
        self.admitted: np.ndarray | None = None
        self._totals: tuple[list[float], list[int]] | None = None
        self.encoder = self._encoder_costs(arch)
        self.down: set[int] = set()  # replicas failed and not back yet
        failures = getattr(spec, "failures", None)
        self.failures = (
            Failures(self, failures) if failures is not None and failures.repair > 0 else None
        )
        initial = self.autoscale.min if self.autoscale else self._reserved_replicas()
        for _ in range(initial):
            self.launch(ready_in=0.0)
        self.record_replicas(0.0)
        if self.autoscale is not None:
            self.env.process(self._autoscaler(self.autoscale))

    def _group_token_cap(self) -> int | None:
        return None

    def _encoder_costs(self, arch: Architecture | None) -> np.ndarray | None:
        """The vision encoder's seconds per image token, by workload (None: no workload
        sends this deployment images its model encodes)."""
        scenario = self.context.scenario
        if arch is None or not arch.vision_layers or self.records.image_tokens is None:
            return None
        gpu = find_gpu(self.spec.gpu)
        assert gpu is not None
        # the tower in BF16, as serving engines keep it (where the GPU has BF16 cores)
        precision = "bf16" if "bf16" in gpu.flops else next(iter(gpu.flops))
        perf, _ = resolve_performance(self.spec, arch)
        mfu = getattr(perf, "mfu", None) or DEFAULT_MFU.get(precision, 0.6)
        costs = np.zeros(len(scenario.workloads))
        for w, workload in enumerate(scenario.workloads):
            if workload.images is not None and self.name in workload.route:
                costs[w] = encoder_seconds_per_image_token(
                    arch, gpu, self.spec.gpus_per_replica, precision,
                    workload.images.tokens_per_image, mfu,
                )  # fmt: skip
        return costs if costs.any() else None

    def _reserved_replicas(self) -> int:
        spec = self.spec
        if isinstance(spec, ClusterSpec):
            return spec.replicas
        assert isinstance(spec, DedicatedSpec) and isinstance(spec.replicas, int)
        return spec.replicas

    # -- fleet ------------------------------------------------------------------------------
    def launch(self, ready_in: float) -> None:
        replica = Replica(self, len(self.replicas))
        self.replicas.append(replica)
        self.lives.append([self.env.now, math.inf])
        if ready_in <= 0:
            self._activate(replica)
        else:
            self.env.process(self._boot(replica, ready_in))

    def _boot(self, replica: Replica, delay: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(delay)
        self._activate(replica)
        self.record_replicas(self.env.now)

    def _activate(self, replica: Replica) -> None:
        self.active.append(replica)
        if self.failures is not None:
            self.failures.watch(replica)
        self.dispatch_queue(self.env.now)

    def recover(self, index: int, now: float) -> None:
        """Replica `index` is back from a failure: empty, its busy time and peak kept."""
        old = self.replicas[index]
        replica = Replica(self, index)
        replica.busy_time, replica.peak_batch = old.busy_time, old.peak_batch
        self.replicas[index] = replica
        self.down.discard(index)
        self.active.append(replica)
        self.record_replicas(now)
        self.dispatch_queue(now)

    def retry(self, i: int, now: float) -> bool:
        """Request i, held by a replica that failed at `now`: offered again from scratch
        (its arrival kept), here first, then to the rest of its route (False: nowhere)."""
        r = self.records
        entry = (i, int(r.input_tokens[i]), int(r.output_tokens[i]), float(r.arrival[i]))
        if self._enter(entry, now):
            return True
        self.spilled += 1
        return self.context.reroute(i, now, self)

    def retired(self, replica: Replica, now: float) -> None:
        self.lives[replica.index][1] = now
        self.record_replicas(now)

    def record_replicas(self, now: float) -> None:
        up = sum(
            1 for k, life in enumerate(self.lives) if life[1] == math.inf and k not in self.down
        )
        self.timeline.append((now, up))

    # -- run compiled -----------------------------------------------------------------------
    def take_compiled(self, rows: np.ndarray, admitted: np.ndarray) -> None:
        """The compiled core ran this pool over `rows` (`admitted` those it took): offers
        are answered from it, in bulk, and no event is left to schedule."""
        answers = np.zeros(len(self.records), dtype=np.bool_)
        answers[rows[admitted]] = True
        self.admitted = answers

    def compiled_totals(self, busy: list[float], peaks: list[int]) -> None:
        self._totals = (busy, peaks)

    @property
    def takes_in_bulk(self) -> bool:
        return self.admitted is not None and self.length_limit is None

    @property
    def stateless(self) -> bool:
        return self.admitted is not None

    def offer_many(self, rows: np.ndarray) -> np.ndarray:
        assert self.admitted is not None
        taken: np.ndarray = self.admitted[rows]
        return taken

    def clocked(self) -> bool:
        return self.admitted is None

    # -- requests ---------------------------------------------------------------------------
    def offer(self, i: int, now: float) -> bool:
        """To the least loaded replica with room, which admits it at its next step boundary;
        else to the queue (first come, first served), unless `max_queue` already wait.
        Disaggregated: to the prefill replicas, if both sides can hold it."""
        if self.admitted is not None:  # run compiled: its answer
            return bool(self.admitted[i])
        r = self.records
        n_in = int(r.input_tokens[i])
        n_out = int(r.output_tokens[i])
        tokens = n_in + n_out
        self.offered += 1
        self.offered_tokens += tokens
        if tokens > self.step_model.kv_capacity_tokens:
            self.refused_too_long += 1
            return False
        if self.prefill_stage is not None:
            return self.prefill_stage.offer_prompt(i, n_in, now)
        return self._enter((i, n_in, n_out, now), now)

    def _enter(self, entry: Entry, now: float) -> bool:
        """Request `entry` goes to a replica with room, else waits in the queue (False: the
        queue is full)."""
        i, n_in, n_out, _ = entry
        need = n_in + 1 if self.optimistic else n_in + n_out  # KV needed at admission
        target = None if self.queue else self._replica_with_room(need, None, now, i)
        if target is not None and self.queue:  # optimistic: the search's settling queued
            target = None  # preempted requests: they go first
        if target is None and self.max_queue is not None and len(self.queue) >= self.max_queue:
            self.refused_queue_full += 1
            return False
        if self.autoscale is not None:
            self._system_changed(+1, now)
        if target is None or not target.assign(entry, now):
            # (optimistic admission: the target's batch will have grown too much by its
            # next boundary) it waits in the queue
            if not self.queue:  # the room completions free must now be offered on time
                for replica in self.active:
                    replica.schedule_wake()
            self.queue.append(entry)
        return True

    def _replica_with_room(
        self, tokens: int, skip: Replica | None, now: float, row: int = -1
    ) -> Replica | None:
        """The replica with room that would start the request's prefill soonest, the least
        loaded among equals: a replica busy prefilling earlier arrivals is passed over while
        another could start at once. Balancing by load alone herds a burst of arrivals onto
        the one replica whose batch just emptied, where they wait for each other's prefill
        (the pool then waits longer as it grows); scoring by the prompts waiting to start,
        then by running requests, is what serving routers do (llm-d's queue scorer)."""
        optimistic = self.optimistic  # and a step of the batch must still fit
        if optimistic:
            self._settle_all(now)
        if self.routing and row >= 0:
            return self._replica_with_prefix(tokens, skip, now, row)
        best = None
        best_wait = 0.0
        best_load = 0
        chunked = self.spec.chunked_prefill
        for replica in self.active:  # Replica.load and the room checks, inlined (per request)
            phase = replica.phase
            if phase == REACHING or replica is skip:
                continue  # it takes from the queue itself, next
            if replica.wake is None and phase == DECODE and replica.wake_time < now:
                replica.settle(now)  # lazily planned run ends due: reach them first
            load = len(replica.decoding) + len(replica.pending) + len(replica.prefilling)
            if (
                load >= replica.max_batch
                or not replica.accepting
                or replica.kv_used + tokens > replica.kv_capacity
                or (optimistic and replica.kv_used + tokens + load + 1 > replica.kv_capacity)
            ):
                continue
            if chunked:  # prompts not yet through their chunks
                wait = float(len(replica.pending) + len(replica.prefilling))
            else:  # a prefill under way or planned ends at run_start (else it is past)
                wait = replica.run_start - now
                if wait < 0.0:
                    wait = 0.0
            if best is None or wait < best_wait or (wait == best_wait and load < best_load):
                if wait == 0.0 and load == 0:
                    return replica  # idle: none can beat it
                best, best_wait, best_load = replica, wait, load
        return best

    def _settle_all(self, now: float) -> None:
        """Optimistic admission: every replica's run ends before `now` reached, until none is
        left (a preemption at one replica's end queues a request, which makes the others'
        planned ends events that must come before `now` too)."""
        again = True
        while again:
            again = False
            for replica in self.active:
                if replica.phase == DECODE and replica.wake_time < now:
                    replica.settle(now)
                    again = True

    def _replica_with_prefix(
        self, tokens: int, skip: Replica | None, now: float, row: int
    ) -> Replica | None:
        """Cache-aware routing: among the replicas with room, the one holding the most
        leading blocks of the prompt, then the one that starts its prefill soonest, then the
        least loaded."""
        blocks = self.blocks
        assert blocks is not None
        optimistic = self.optimistic
        ids = (
            blocks.ids[blocks.starts[row] : blocks.starts[row + 1]].tolist()
            if row < len(blocks)
            else []
        )
        best = None
        best_key: tuple[int, float, int] = (0, 0.0, 0)
        for replica in self.active:
            phase = replica.phase
            if phase == REACHING or replica is skip:
                continue
            if replica.wake is None and phase == DECODE and replica.wake_time < now:
                replica.settle(now)
            load = len(replica.decoding) + len(replica.pending) + len(replica.prefilling)
            if (
                load >= replica.max_batch
                or not replica.accepting
                or replica.kv_used + tokens > replica.kv_capacity
                or (optimistic and replica.kv_used + tokens + load + 1 > replica.kv_capacity)
            ):
                continue
            hits = 0
            for block in ids:
                if block not in replica.cache:
                    break
                hits += 1
            wait = max(0.0, replica.run_start - now) if not replica.chunked else 0.0
            key = (-hits, wait, load)
            if best is None or key < best_key:
                best, best_key = replica, key
        return best

    def dispatch_queue(self, now: float, skip: Replica | None = None) -> None:
        """Room appeared: queued requests go to replicas with room, first come first served."""
        queue = self.queue
        while queue:
            head = queue[0]
            need = head[1] + (1 if self.optimistic else head[2])
            target = self._replica_with_room(need, skip, now, head[0])
            if target is None:
                return
            if not queue or queue[0] is not head:  # replicas settled in the search took it
                continue
            queue.popleft()
            if not target.assign(head, now):  # optimistic: no room by its boundary after all
                queue.appendleft(head)
                return

    def receive(self, entry: Entry, now: float) -> None:
        """Disaggregated: a request prefilled on the prefill side, its KV cache here now,
        joins a decode replica with room or waits for one."""
        self._enter(entry, now)

    def finished(self, done: list[int], output_tokens: int, arrived: float, now: float) -> None:
        """Requests `done` (with `output_tokens` in all, their arrival times summing to
        `arrived`) finished at `now`."""
        self.output_tokens_served += output_tokens
        self.system_time += len(done) * now - arrived
        if now > self.last_finish:
            self.last_finish = now
        if self.autoscale is not None:
            self._system_changed(-len(done), now)
        if self.context.completions:  # closed-loop clients wait on completions
            for i in done:
                self.context.completed(i)

    def _system_changed(self, delta: int, now: float) -> None:
        self._system_area += self._in_system * (now - self._system_since)
        self._system_since = now
        self._in_system += delta

    def drain(self) -> None:
        """The simulation is over: reach the run ends planned lazily (a preemption among them
        queues a request again, whose service needs events: run those too)."""
        while True:
            for replica in self.replicas:
                replica.settle(math.inf)
            if any(replica.wake is not None for replica in self.replicas):
                self.env.run()
            elif all(replica.phase != DECODE for replica in self.replicas):
                return  # (one settled may have handed another a request: settle again)

    # -- autoscaling ------------------------------------------------------------------------
    def _slots_per_replica(self) -> float:
        mean_tokens = self.offered_tokens / self.offered if self.offered else 1.0
        return max(1.0, min(self.spec.max_batch, self.step_model.kv_capacity_tokens / mean_tokens))

    def _autoscaler(self, policy: AutoscaleSpec) -> Generator[Any, Any, None]:
        """Every `interval`: replicas for the mean in-flight load at the target utilization
        (a concurrency target, as Knative's autoscaler); up after `scale_up_delay`, down
        after the load stayed low for `scale_down_delay`."""
        horizon = self.context.scenario.horizon
        low_since: float | None = None
        last_area, last_time = 0.0, 0.0
        while self.env.now + policy.interval <= horizon:
            yield self.env.timeout(policy.interval)
            self._system_changed(0, self.env.now)
            load = (self._system_area - last_area) / (self.env.now - last_time)
            last_area, last_time = self._system_area, self.env.now
            desired = math.ceil(load / (policy.target_utilization * self._slots_per_replica()))
            if self.queue and desired == 0:
                desired = 1
            desired = min(policy.max, max(policy.min, desired))
            current = [rep for rep in self.replicas if rep.accepting]
            if desired > len(current):
                low_since = None
                for _ in range(desired - len(current)):
                    self.launch(ready_in=policy.scale_up_delay)
                self.record_replicas(self.env.now)
            elif desired < len(current):
                low_since = self.env.now if low_since is None else low_since
                if self.env.now - low_since >= policy.scale_down_delay:
                    serving = [rep for rep in current if rep in self.active]
                    for replica in sorted(serving, key=Replica.load)[: len(current) - desired]:
                        self.active.remove(replica)
                        replica.stop_accepting(self.env.now)
                    low_since = None
            else:
                low_since = None
        # the drain: a pool scaled to zero still holds the requests that arrived after its
        # last evaluation; the next one, past the horizon, starts a replica for them (else
        # they would wait for ever)
        yield self.env.timeout(policy.interval)
        if self.queue and not any(rep.accepting for rep in self.replicas):
            self.launch(ready_in=policy.scale_up_delay)
            self.record_replicas(self.env.now)

    # -- accounting -------------------------------------------------------------------------
    def _billed_seconds(self, end: float) -> list[float]:
        """Each replica's billed time up to `end` (autoscaled: per started minute)."""
        seconds = []
        for start, stop in self.lives:
            up = max(0.0, min(stop, end) - start)
            if self.autoscale is not None:
                up = math.ceil(up / 60.0 - 1e-9) * 60.0
            seconds.append(up)
        return seconds

    def _overload(self) -> tuple[int, bool]:
        """Requests still waiting or running at the horizon, and whether they pile up: the
        requests in the deployment grew over the run's second half by more than 5% of that
        half's arrivals (and more than noise, 4 standard deviations of a Poisson count of
        the requests in it at mid-run). A stable pool holds about as many at the horizon as
        at mid-run; one short of capacity keeps a share of every arrival."""
        r = self.records
        n = len(r)
        # masks over every row, not copies of this pool's times: a month's pool holds
        # millions of requests
        mine = r.deployment[:n] == self.index
        arrival, finish = r.arrival[:n], r.finish[:n]
        horizon = self.context.scenario.horizon
        backlog = int(np.count_nonzero(mine & (finish > horizon)))
        half = horizon / 2
        at_half = int(np.count_nonzero(mine & (arrival <= half) & (finish > half)))
        growth = backlog - at_half
        second_half = int(np.count_nonzero(mine & (arrival > half)))
        piling = growth > 0.05 * second_half and growth > 4 * math.sqrt(at_half + 1)
        return backlog, bool(piling)

    def _failure_figures(self, replica_seconds: float) -> dict[str, Any]:
        f = self.failures
        return {
            "failures": f.count if f is not None else 0,
            "replica_availability": f.availability(replica_seconds) if f is not None else None,
            "requests_retried": f.retried if f is not None else 0,
            "requests_lost": f.lost if f is not None else 0,
        }

    def _hit_rate(self) -> float | None:
        """Prompt tokens found in the prefix cache over those prefilled (disaggregated:
        the prefill replicas', which hold the cache)."""
        caching = self.prefill_stage if self.prefill_stage is not None else self
        if not self.spec.prefix_caching or not caching.prompt_tokens:
            return None
        return caching.cached_tokens / caching.prompt_tokens

    def modeled_max_output_tokens_per_s(self) -> float | None:
        """What one replica sustains, saturated, for the mean request seen (closed form)."""
        if not self.offered:
            return None
        r = self.records
        served = r.deployment[: len(r)] == self.index
        if not served.any():
            return None
        # exact either way (integers summed in float64), without copying the columns
        n_in = float(r.input_tokens[: len(r)].mean(where=served))
        n_out = float(r.output_tokens[: len(r)].mean(where=served))
        return spec_capacity(self.step_model, self.spec, n_in, n_out)

    def summary(self) -> DeploymentSummary:
        """The bill and the load. Reserved GPUs are billed for the horizon and, while
        requests arrived in it are still served, until the last finishes (the drain); an
        overloaded pool's latency and cost describe the run's length, not a steady state."""
        scenario = self.context.scenario
        horizon = scenario.horizon
        end = max(horizon, self.last_finish)
        billed = self._billed_seconds(end)
        gpus = self.spec.gpus_per_replica
        gpu_hours = sum(billed) * gpus / 3600.0
        cost = gpu_hours * self.price
        extras = 0.0
        if isinstance(self.spec, ClusterSpec):
            extras = self.spec.extras_per_month * horizon / scenario.month
        billing = self.spec.billing
        minimum = shortfall = 0.0
        if billing is not None:  # a monthly minimum: charged when the hours cost less
            minimum = billing.minimum_monthly_usd * horizon / scenario.month
            shortfall = max(0.0, minimum - cost)
        replica_seconds = sum(
            min(stop, end) - start for start, stop in self.lives if min(stop, end) > start
        )
        horizon_replica_seconds = sum(
            min(stop, horizon) - start for start, stop in self.lives if min(stop, horizon) > start
        )
        if self._totals is not None:
            busy = sum(self._totals[0])
            peak_batch = max(self._totals[1], default=0)
        else:
            busy = sum(rep.busy_seconds(self.env.now) for rep in self.replicas)
            peak_batch = max((rep.peak_batch for rep in self.replicas), default=0)
        self._system_changed(0, self.env.now)
        peak_tps = self.modeled_max_output_tokens_per_s()
        throughput_utilization = offered_load = None
        if peak_tps and replica_seconds > 0:
            served = self.output_tokens_served / (peak_tps * replica_seconds)
            # the modeled maximum is for the mean request: a mix may beat it a little
            throughput_utilization = min(1.0, served)
        if peak_tps and horizon_replica_seconds > 0:
            offered_load = self.output_tokens_served / (peak_tps * horizon_replica_seconds)
        backlog, piling = self._overload()
        side: dict[str, Any] = {}
        if self.prefill_stage is not None:  # disaggregated: the prefill replicas' bill too
            side = self.prefill_stage.side_summary(end)
            gpu_hours += side["prefill_gpu_hours"]
            cost += side["prefill_cost_usd"]
            if billing is not None:
                shortfall = max(0.0, minimum - cost)
            prefill_load = self.prefill_stage.prefill_load(horizon)
            if prefill_load is not None:
                offered_load = max(offered_load or 0.0, prefill_load)
        overloaded = piling or (offered_load is not None and offered_load > 1.0)
        counts = [n for _, n in self.timeline]
        return DeploymentSummary(
            fixed_cost_usd=cost + shortfall + extras,
            gpu_hours=gpu_hours,
            utilization=min(1.0, busy / replica_seconds) if replica_seconds > 0 else None,
            extra={
                **side,
                "gpu": find_gpu(self.spec.gpu).name,  # type: ignore[union-attr]
                "gpus_per_replica": gpus,
                "price_per_gpu_hour": self.price,
                "gpu_cost_usd": cost,
                "extras_usd": extras,
                "commitment_minimum_usd": minimum if billing is not None else None,
                "commitment_shortfall_usd": shortfall if billing is not None else None,
                "term_months": billing.term_months if billing is not None else None,
                "replicas_mean": horizon_replica_seconds / horizon,
                "replicas_peak": max(counts) if counts else 0,
                "replicas_timeline": [[t, n] for t, n in self.timeline],
                "overloaded": overloaded,
                "backlog_at_horizon": backlog,
                "drain_s": end - horizon,
                "offered_load": offered_load,
                "throughput_utilization": throughput_utilization,
                "modeled_max_output_tokens_per_s_per_replica": peak_tps,
                "kv_capacity_tokens": float(self.step_model.kv_capacity_tokens),
                **self.performance,
                "peak_batch": peak_batch,
                "prefix_cache_hit_rate": self._hit_rate(),
                "mean_queue_length": self.queue_area / end,
                "mean_in_system": self.system_time / end,
                "refused_too_long": self.refused_too_long,
                "refused_queue_full": self.refused_queue_full,
                "passed_by_length": self.passed_by_length,
                "preemptions": self.preemptions,
                **self._failure_figures(horizon_replica_seconds),
            },
        )


class PrefillStage(ServingPool):
    """The prefill replicas of a disaggregated deployment (`parent`, whose replicas only
    decode). A prompt is served here as a one-token answer: admitted, prefilled with the
    prompts of its group, its first token out at the prefill's end. Its KV cache is then
    sent to the decode side, `kv_transfer_latency` + its bytes over the GPUs' links (the
    smaller side's GPUs in parallel; no contention between transfers), and it joins a decode
    replica with room, or waits for one. A one-token answer is done at the prefill."""

    on_time: ClassVar[bool] = True  # the hand-over happens at each prefill's end

    def __init__(self, parent: ServingPool, spec: DedicatedSpec, context: EngineContext) -> None:
        side = spec.prefill_spec()
        d = spec.disaggregation
        assert d is not None
        self.token_budget = d.prefill_max_tokens
        super().__init__(side, parent.index, context)
        self.parent = parent
        kv_bytes = getattr(parent.step_model, "kv_bytes_per_token", None)
        if kv_bytes is None:  # measured performance: the architecture's BF16 KV, if known
            arch = context.scenario.models[spec.model].resolved_architecture(spec.model)
            kv_bytes = arch.kv_bytes_per_token_bf16 if arch is not None else 0.0
        links = min(side.gpus_per_replica, spec.gpus_per_replica)
        self.seconds_per_token = float(kv_bytes) / (d.kv_transfer_gb_per_s * 1e9 * links)
        self.latency = d.kv_transfer_latency
        self.transfer_seconds = 0.0
        self.transfers = 0

    def _group_token_cap(self) -> int | None:
        return self.token_budget

    def _replica_with_room(
        self, tokens: int, skip: Replica | None, now: float, row: int = -1
    ) -> Replica | None:
        """An idle prefill replica, or one whose group starts at this instant and has room
        in its token budget for the prompt (`tokens` - 1: a one-token answer's KV). A
        replica prefilling takes its next group from the queue at its prefill's end."""
        budget = self.token_budget
        ids = self._prompt_blocks(row) if self.routing else None
        best, best_hits = None, -1
        for replica in self.active:
            if replica is skip or not replica.accepting:
                continue
            if replica.phase == IDLE or (
                now <= replica.group_at
                and replica.group_tokens + tokens - 1 <= budget
                and len(replica.group) < replica.max_batch
                and replica.kv_used + tokens <= replica.kv_capacity
            ):
                if ids is None:
                    return replica
                # cache-aware: the one holding the most leading blocks of the prompt (the
                # first such in order: an idle one and a group alike)
                hits = 0
                for block in ids:
                    if block not in replica.cache:
                        break
                    hits += 1
                if hits > best_hits:
                    best, best_hits = replica, hits
        return best

    def _prompt_blocks(self, row: int) -> list[int] | None:
        blocks = self.blocks
        if blocks is None or row < 0 or row >= len(blocks):
            return None
        ids: list[int] = blocks.ids[blocks.starts[row] : blocks.starts[row + 1]].tolist()
        return ids

    def offer_prompt(self, i: int, n_in: int, now: float) -> bool:
        """Request i's prompt to a prefill replica (False, counted on the deployment: the
        prompt does not fit a prefill replica's KV cache, or the queue is full)."""
        if n_in + 1 > self.step_model.kv_capacity_tokens:
            self.parent.refused_too_long += 1
            return False
        if not self._enter((i, n_in, 1, now), now):
            self.parent.refused_queue_full += 1
            return False
        return True

    def finished(self, done: list[int], output_tokens: int, arrived: float, now: float) -> None:
        r = self.records
        parent = self.parent
        for i in done:
            n_out = int(r.output_tokens[i])
            arrival = float(r.arrival[i])
            if n_out <= 1:
                parent.finished([i], 1, arrival, now)
                continue
            n_in = int(r.input_tokens[i])
            delay = self.latency + n_in * self.seconds_per_token
            self.transfer_seconds += delay
            self.transfers += 1
            sent = self.env.timeout(delay)
            sent.callbacks.append(partial(self._received, (i, n_in, n_out, arrival)))

    def _received(self, entry: Entry, _: simpy.Event) -> None:
        self.parent.receive(entry, self.env.now)

    def prefill_load(self, horizon: float) -> float | None:
        """Prompt tokens that arrived per second of the horizon over what the prefill
        replicas sustain, saturated with groups of the mean prompt (> 1: overloaded)."""
        r = self.records
        n = len(r)
        arrived = (r.deployment[:n] == self.index) & (r.arrival[:n] <= horizon)
        if not arrived.any() or horizon <= 0:
            return None
        prompts = r.input_tokens[:n]  # integer sums, exact: masked, not copied
        n_in = float(prompts.mean(where=arrived))
        model = self.step_model
        batch = int(max(1, min(self.spec.max_batch, model.kv_capacity_tokens // (n_in + 1))))
        tokens = batch * n_in
        per_replica = tokens / model.prefill_time(round(tokens), tokens * n_in)
        return float(prompts.sum(where=arrived)) / horizon / (per_replica * len(self.replicas))

    def side_summary(self, end: float) -> dict[str, Any]:
        """The prefill side's GPU-hours, cost and load, for the deployment's summary."""
        billed = self._billed_seconds(end)
        gpus = self.spec.gpus_per_replica
        gpu_hours = sum(billed) * gpus / 3600.0
        busy = sum(rep.busy_seconds(self.env.now) for rep in self.replicas)
        seconds = sum(billed)
        return {
            "prefill_gpu": find_gpu(self.spec.gpu).name,  # type: ignore[union-attr]
            "prefill_gpus_per_replica": gpus,
            "prefill_replicas": len(self.replicas),
            "prefill_price_per_gpu_hour": self.price,
            "prefill_gpu_hours": gpu_hours,
            "prefill_cost_usd": gpu_hours * self.price,
            "prefill_utilization": min(1.0, busy / seconds) if seconds > 0 else None,
            "kv_transfer_s_mean": (
                self.transfer_seconds / self.transfers if self.transfers else None
            ),
        }


class ClusterPool(ServingPool):
    """A GPU cluster: the same replicas, all its GPUs reserved, plus monthly extras."""

    kind: ClassVar[str] = "gpu_cluster"


__all__ = ["ClusterPool", "ServingPool", "replica_capacity"]
