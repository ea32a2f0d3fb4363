"""One replica of a dedicated deployment: a continuous-batching server, simulated event by
event.

The replica admits requests (first come, first served) while its batch is under `max_batch`
and their whole KV cache (input + output tokens, reserved at admission) fits. The requests
admitted at one step boundary are prefilled together, the running batch paused meanwhile;
each then emits its first token and joins the decode batch, where every step gives each
sequence one token. A request arriving mid-step joins at the end of the step under way;
one arriving during a prefill, when it ends. Between two events the batch is fixed, so the
time to the next event is computed in closed form, not stepped token by token.

The replica is a state machine with one planned wake-up: the end of its current run of
decode steps (a sequence finishes there). A request assigned to it is admitted at once, for
the step boundary it will join at: between its arrival and that boundary nothing can change
the batch but more arrivals, which join the same group, so the group's prefill and the run
after it are planned then and there. Every method takes the time it acts at (`now`)
instead of reading the clock, so the engine can offer a request at its arrival time without
moving the clock there. The decoding batch is a heap of finish steps: a run of k steps is
one addition to a step counter, not an update of every sequence.

A run's end is a SimPy event only when something must happen at that time: requests wait
in the pool's queue for the room a completion frees, the autoscaler integrates the load,
a closed-loop client waits for the answer (`lazy_run_ends`). Otherwise the replica reaches
its planned run ends lazily (`settle`), in order and at their own times, when something
needs its state: an assignment, a room check, the end of the simulation. The results are
the same either way (`tests/test_dedicated.py` runs both); the lazy way costs no event per
completion. A replaced wake-up event is ignored when it fires.

With chunked prefill, prompts are prefilled inside the decode steps, so an assignment
stops the run at the next step boundary with a wake-up (the scheduler as it was before
admissions were planned ahead).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import simpy
from simpy.events import NORMAL

from simulator.records import Blocks, Outcome, Records
from simulator.scenario.deployments import ServingSpec
from simulator.serving.step import (
    Envelope,
    StepModel,
    envelope,
    envelope_sum,
    first_boundary,
    fused_step,
    next_boundary,
)

# what the replica is doing until its wake-up; REACHING: between a run's end and the next
# plan (not to be reached again, nor assigned to, meanwhile)
IDLE, WAKING, DECODE, RETIRED, REACHING = range(5)

Entry = tuple[int, int, int, float]  # a request: (row, input tokens, output tokens, arrival)


class _Wake(simpy.Event):
    """A replica's wake-up: an event scheduled `delay` from now that calls `callback`."""

    def __init__(
        self, env: simpy.Environment, delay: float, callback: Callable[[simpy.Event], None]
    ) -> None:
        # simpy.Timeout's own initialization, inlined as it does, with the callback in place
        self.env = env
        self.callbacks = [callback]
        self._value = None
        self._ok = True
        env.schedule(self, NORMAL, delay if delay > 0 else 0.0)


class PoolState(Protocol):
    """What a replica reads and calls of the pool it serves in (`ServingPool` and its
    prefill stage): declared here, so the replica needs no import of the pool's module."""

    env: simpy.Environment
    spec: ServingSpec
    step_model: StepModel
    records: Records
    queue: deque[Entry]
    active: list[Replica]
    preempted: set[int]
    preemptions: int
    queue_area: float
    lazy: bool
    blocks: Blocks | None
    block_tokens: np.ndarray | None
    prompt_tokens: int
    cached_tokens: int
    decode_only: bool
    group_token_cap: int | None
    encoder: np.ndarray | None

    def finished(self, done: list[int], output_tokens: int, arrived: float, now: float) -> None:
        """Requests `done` finished at `now`."""
        ...

    def dispatch_queue(self, now: float, skip: Replica | None = None) -> None:
        """Offer the waiting requests to the replicas with room."""
        ...

    def retired(self, replica: Replica, now: float) -> None:
        """`replica` finished its last request after it stopped accepting."""
        ...


class Replica:
    """A continuous-batching server; its state lives only for the run."""

    def __init__(self, pool: PoolState, index: int) -> None:
        self.pool = pool
        self.index = index
        self.env = pool.env
        self.model = pool.step_model
        self.records = pool.records
        self.max_batch = pool.spec.max_batch
        self.kv_capacity = pool.step_model.kv_capacity_tokens
        self.chunked = pool.spec.chunked_prefill
        self.budget = pool.spec.step_token_budget
        # the decoding batch: (finish step, request, KV tokens, output tokens); a sequence
        # holds input + output - finish_step + step tokens of context at step `step`
        self.step = 0
        self.decoding: list[tuple[int, int, int, int, float]] = []  # ... and arrival
        self.context_base = 0
        self.pending: list[Entry] = []  # assigned; admitted at the end of the current run
        self.prefilling: deque[list[Any]] = deque()  # chunked: [request, left, in, out, arrival]
        # the group admitted for a boundary (`group_at`) and prefilled from there: more
        # arrivals up to that boundary join it
        self.group: list[Entry] = []
        self.group_at = -math.inf
        self.group_tokens = 0
        self.group_squared = 0.0
        self.group_encoder = 0.0  # the vision encoder's seconds over the group's images
        # fused prefill: the batch decoding beside the group's prompts, and its context
        self.fused = pool.spec.prefill == "fused"
        self.decode_only = pool.decode_only  # disaggregated: prompts prefilled elsewhere
        self.token_cap = pool.group_token_cap
        self.fused_step = fused_step(self.model)  # bound once, not looked up per group
        self.group_batch = 0
        self.group_context = 0
        # KV tokens held: reserve mode, each request's input + output from admission;
        # optimistic, what the sequences hold at the last boundary reached (prompt + tokens
        # generated), plus the prompts assigned and not yet prefilled
        self.kv_used = 0.0
        self.optimistic = pool.spec.kv_admission == "optimistic"
        self.accepting = True
        self.busy_time = 0.0
        self.busy_since: float | None = None
        self.peak_batch = 0
        self.phase = IDLE
        # lazy: the end of a run is reached when something needs the replica's state (an
        # assignment, a room check, the end of the simulation), not by an event; wake-ups
        # are scheduled only while requests wait in the pool's queue (see lazy_run_ends)
        self.lazy = pool.lazy
        # the pending wake-up (None when lazy), and the run of steps it ends
        self.wake: simpy.Event | None = None
        self.wake_time = 0.0
        self.wake_steps = 0
        self.run_start = 0.0
        self.run_batch = 0
        self.run_context = 0
        self.run_steps = 0
        self.run_chunk = 0
        self.run_first = -1.0  # the run's first step time when one line gives them all
        self.run_slope = 0.0
        self.interrupted = False  # chunked: a wake-up at the next boundary is set
        self._callback = self._on_wake
        self._lines: dict[int, tuple[float, ...]] = {}  # batch -> its one decode line, or ()
        self._envelopes: dict[int, Envelope] = {}  # batch -> its decode envelope
        # prefix caching: block id -> its tokens, least recently used first
        self.prefix = pool.blocks is not None
        self.cache: OrderedDict[int, int] = OrderedDict()
        self.cache_tokens = 0

    # -- room and assignment -----------------------------------------------------------------
    def load(self) -> int:
        """Requests the replica holds or is bound to (its batch slots in use)."""
        return len(self.decoding) + len(self.pending) + len(self.prefilling)

    def assign(self, entry: Entry, now: float) -> bool:
        """Request `entry` is this replica's (it has room): it joins at the next boundary.
        False (optimistic admission) when the batch will have grown too much by then for
        it: the caller queues it."""
        self.kv_used += entry[1] + (1 if self.optimistic else entry[2])
        if self.chunked:
            self.pending.append(entry)
            self._nudge(now)
            return True
        if self.phase == IDLE:
            if self.busy_since is None:
                self.busy_since = now
            self._open_group([entry], now, 0)
        elif now <= self.group_at:  # the group admitted for a boundary not reached yet
            if self.optimistic and self.kv_used + len(self.decoding) + 1 > self.kv_capacity:
                self.kv_used -= entry[1] + 1  # the boundary's step would not fit it
                return False
            self._amend(entry)
        elif now < self.run_start:  # during a prefill: joins when it ends
            if self.run_steps == 0:  # ... which is the wake-up of a run of no steps
                self.pending.append(entry)
            else:
                self._open_group([entry], self.run_start, 0)
        else:
            elapsed = now - self.run_start
            if self.run_first >= 0:
                steps, boundary = first_boundary(
                    self.run_first, self.run_slope, self.run_steps, elapsed
                )
            else:
                steps, boundary = next_boundary(
                    self.model, self.run_batch, self.run_context, self.run_steps, elapsed
                )
            if steps >= self.run_steps:  # the run ends there: sequences finish first
                self.pending.append(entry)
                self.schedule_wake()  # (until then, they hold their slots and KV cache)
            elif self.optimistic and (
                self.kv_used + len(self.decoding) * (steps + 1) + 1 > self.kv_capacity
            ):  # the batch grows until the boundary: then no step of it would fit
                self.kv_used -= entry[1] + 1
                return False
            else:
                self._open_group([entry], self.run_start + boundary, steps)
        return True

    def stop_accepting(self, now: float) -> None:
        """Scale-in: finish the batch, take nothing new, then retire."""
        self.accepting = False
        if self.phase == IDLE:
            self._retire(now)

    # -- admission, planned ahead ------------------------------------------------------------
    def _open_group(self, entries: list[Entry], at: float, steps: int) -> None:
        """Admit `entries` at the boundary `at`, `steps` into the current run (which that
        boundary cuts short): they are prefilled together from `at`."""
        if self.group:
            self._close_group()
        if self.optimistic:  # the batch's sequences grew a token a step until the boundary
            self.kv_used += len(self.decoding) * steps
        self.step += steps
        self.group = entries
        self.group_at = at
        if self.fused and not self.decode_only:
            # the batch decodes a token in the prompts' step: it is a step on after it
            batch = self.group_batch = len(self.decoding)
            self.group_context = self.context_base + batch * self.step
            if batch:
                self.step += 1
                if self.optimistic:
                    self.kv_used += batch
        tokens = 0
        squared = 0.0
        start, pool = self.records.start, self.pool
        prefix = self.prefix
        preempted = pool.preempted  # optimistic admission: requests recomputed
        for i, n_in, n_out, arrival in entries:
            if self.decode_only:  # prefilled elsewhere: it joins the batch as it is
                self._join(i, n_in, n_out, arrival)
                continue
            again = bool(preempted) and i in preempted
            if prefix and not again:  # only the uncached rest of the prompt is prefilled
                cached = self.cached_prefix(i, n_in)
                tokens += n_in - cached
                squared += float(n_in) * n_in - float(cached) * cached
            else:
                tokens += n_in
                squared += float(n_in) * n_in
            if not again:  # a recomputed request keeps its start and first token
                start[i] = at
                pool.queue_area += at - arrival
            self._join(i, n_in, n_out, arrival)
        self.group_tokens = tokens
        self.group_squared = squared
        self.group_encoder = self._encoder(entries) if pool.encoder is not None else 0.0
        # the prefill from the boundary, then a run to the next completion
        self._run(at + self._prefill_seconds(), self.decoding[0][0] - self.step, 0)

    def _encoder(self, entries: list[Entry]) -> float:
        """The vision encoder's seconds over the images of `entries` (pool.encoder: seconds
        per image token by workload)."""
        cost, images = self.pool.encoder, self.records.image_tokens
        assert cost is not None and images is not None
        workload = self.records.workload
        return float(sum(cost[workload[e[0]]] * images[e[0]] for e in entries))

    def _prefill_seconds(self) -> float:
        """The group's prefill: its own step(s), or one step with the batch (fused), after
        the vision encoder over its images; none on a decode replica of a disaggregated
        deployment."""
        if self.decode_only:
            return 0.0
        if self.fused:
            return self.group_encoder + float(
                self.fused_step(
                    self.group_tokens, self.group_squared, self.group_batch, self.group_context
                )
            )
        return self.group_encoder + self.model.prefill_time(self.group_tokens, self.group_squared)

    def _amend(self, entry: Entry) -> None:
        """One more request for the group's boundary: a longer prefill, a new plan."""
        self.group.append(entry)
        if self.decode_only:
            self._join(*entry)
            self._run(self.group_at, self.decoding[0][0] - self.step, 0)
            return
        preempted = self.pool.preempted
        again = bool(preempted) and entry[0] in preempted
        cached = self.cached_prefix(entry[0], entry[1]) if self.prefix and not again else 0
        self.group_tokens += entry[1] - cached
        self.group_squared += float(entry[1]) * entry[1] - float(cached) * cached
        if self.pool.encoder is not None:
            self.group_encoder += self._encoder([entry])
        if not again:
            self.records.start[entry[0]] = self.group_at
            self.pool.queue_area += self.group_at - entry[3]
        self._join(*entry)
        self._run(self.group_at + self._prefill_seconds(), self.decoding[0][0] - self.step, 0)

    def cached_prefix(self, i: int, n_in: int) -> int:
        """Prompt tokens of request i this replica holds in its prefix cache (its leading
        blocks found there, at least one token left to prefill); the prompt's blocks are
        then the most recently used, and the least recently used go while the cache holds
        more than the replica's KV capacity."""
        pool = self.pool
        blocks = pool.blocks
        assert blocks is not None and pool.block_tokens is not None
        pool.prompt_tokens += n_in
        if i >= len(blocks):
            return 0  # a closed-loop request: no block ids
        size = int(pool.block_tokens[self.records.workload[i]])
        if not size:
            return 0
        cache = self.cache
        hits = 0
        leading = True
        for block in blocks.ids[blocks.starts[i] : blocks.starts[i + 1]].tolist():
            if block in cache:
                cache.move_to_end(block)
                hits += leading
            else:
                leading = False
                cache[block] = size
                self.cache_tokens += size
        while self.cache_tokens > self.kv_capacity and cache:
            _, tokens = cache.popitem(last=False)
            self.cache_tokens -= tokens
        cached = min(hits * size, n_in - 1)
        pool.cached_tokens += cached
        return cached

    def _join(self, i: int, n_in: int, n_out: int, arrival: float) -> None:
        """Request i joins the decoding batch (after its prefill). A one-token answer joins
        with no step left: the next `_advance`, at the end of its prefill, finishes it."""
        finish_step = self.step + (n_out - 1 if n_out > 1 else 0)
        heapq.heappush(self.decoding, (finish_step, i, n_in + n_out, n_out, arrival))
        self.context_base += n_in + n_out - finish_step
        if len(self.decoding) > self.peak_batch:
            self.peak_batch = len(self.decoding)

    def _close_group(self) -> None:
        """The group's prefill is over (or past amending): its first tokens are final."""
        group = self.group
        if group and self.decode_only:  # its first token came from the prefill replica
            self.group = []
            self.group_at = -math.inf
        elif group:
            first = self.records.first_token
            preempted = self.pool.preempted
            for entry in group:
                if preempted and entry[0] in preempted:
                    continue  # its first token came before it was preempted
                first[entry[0]] = self.run_start
            self.group = []
            self.group_at = -math.inf

    # -- events ------------------------------------------------------------------------------
    def _run(self, now: float, steps: int, chunk: int) -> None:
        """Plan a run of `steps` steps of the batch (each prefilling `chunk`) from `now`;
        optimistic admission: no further than the step whose tokens still fit the KV cache
        (the run's end then preempts, `_preempt`)."""
        batch = len(self.decoding)
        if self.optimistic and batch and self.kv_capacity < math.inf:
            fits = int((self.kv_capacity - self.kv_used) // batch)
            if fits < steps:
                steps = max(fits, 0)
        context = self.context_base + batch * self.step
        line = None if chunk else self._lines.get(batch)
        if line is None:
            line = self._line(batch, chunk)
        if not line and not chunk and steps > 0:
            # several lines (measured kernels): one of them still gives every step of a run
            # whose contexts all lie in one piece of the envelope (as `envelope_sum` cuts it)
            cuts, pieces = self._envelopes[batch]
            p = bisect.bisect_right(cuts, context)
            if p == len(cuts) or context + batch * (steps - 1) < cuts[p]:
                line = pieces[p]
        if line:  # one line: step j of the run takes first + slope j (decode_time, inlined)
            b = line[1]
            self.run_first = first = line[0] + b * context
            self.run_slope = slope = b * batch
            at = now + (steps * first + slope * (steps - 1) * steps / 2 if steps > 0 else 0.0)
        else:  # the step time's dominant line may change during the run
            self.run_first = -1.0
            lines = (
                self.model.mixed_lines(batch, chunk) if chunk else self.model.decode_lines(batch)
            )
            at = now + envelope_sum(lines, context, batch, steps)
        self.phase = DECODE
        self.run_start = now
        self.run_batch = batch
        self.run_context = context
        self.run_steps = steps
        if self.chunked:
            self.run_chunk = chunk
            self.interrupted = False
        if self.lazy and not self.pool.queue:
            self.wake = None
            self.wake_time = at
            self.wake_steps = steps
        else:
            self._wake_at(at, steps)

    def _wake_at(self, at: float, steps: int) -> None:
        """Replace the planned wake-up by an event at `at`, ending a run of `steps` steps."""
        self.wake_time = at
        self.wake_steps = steps
        env = self.env
        self.wake = _Wake(env, at - env.now, self._callback)

    def schedule_wake(self) -> None:
        """A lazily planned run end becomes an event (requests now wait in the queue, and
        the room its completions free must be offered to them at that time)."""
        if self.phase == DECODE and self.wake is None:
            self._wake_at(self.wake_time, self.wake_steps)

    def settle(self, until: float) -> None:
        """Reach, in order, the planned run ends before `until` that have no event (one at
        `until` itself comes after what happens then, as events of an instant come after
        its arrivals)."""
        while (
            (self.wake is None or self.optimistic)
            and self.phase == DECODE
            and self.wake_time < until
        ):
            # optimistic admission: a preemption reached here may have turned a planned end
            # into an event before `until`; it is reached now, in order (the event is stale)
            self.wake = None
            self._reach(self.wake_time)

    def _line(self, batch: int, chunk: int) -> tuple[float, ...]:
        """The one line (a, b) that gives every decode step's time for `batch` sequences at
        any context, or () when the dominant line changes with context (or with chunks)."""
        if chunk:
            return ()
        cuts, pieces = envelope(self.model.decode_lines(batch))
        self._envelopes[batch] = (cuts, pieces)
        line: tuple[float, ...] = () if cuts else pieces[0]
        self._lines[batch] = line
        return line

    def _on_wake(self, event: simpy.Event) -> None:
        if event is not self.wake:
            return  # replaced by a later plan
        self.wake = None
        self._reach(self.wake_time)

    def _reach(self, now: float) -> None:
        """The planned run ends (or a chunked run reaches its boundary) at `now`."""
        if self.phase == DECODE:
            self.phase = REACHING
            self._close_group()
            steps = self.wake_steps
            self._advance(steps, now)  # also finishes prompts that were their whole answer
            chunk = self.run_chunk
            if chunk and steps:
                prompted = self._prefill_progress(steps * chunk)
                if prompted:
                    for i, n_in, n_out, arrival in prompted:
                        self.records.first_token[i] = now
                        self._join(i, n_in, n_out, arrival)
                    self._advance(0, now)
        if self.chunked:
            self._next_chunked(now)
        else:
            self._next(now)

    def _advance(self, steps: int, now: float) -> None:
        """`steps` decode steps done: the sequences whose last token they gave finish."""
        self.step = step = self.step + steps
        heap = self.decoding
        if self.optimistic:  # each sequence holds one more token a step
            self.kv_used += len(heap) * steps
        if not heap or heap[0][0] > step:
            return
        finish, outcome = self.records.finish, self.records.outcome
        done: list[int] = []
        tokens_out = 0
        arrived = 0.0
        while heap and heap[0][0] <= step:
            finish_step, i, tokens, n_out, arrival = heapq.heappop(heap)
            self.context_base -= tokens - finish_step
            finish[i] = now
            outcome[i] = Outcome.COMPLETED
            self.kv_used -= tokens
            tokens_out += n_out
            arrived += arrival
            done.append(i)
        self.pool.finished(done, tokens_out, arrived, now)

    def _take(self, now: float) -> list[Entry]:
        """What joins at this boundary: the requests assigned here, then the pool's queue
        (first come, first served) while the batch and the KV cache allow."""
        taken, self.pending = self.pending, []
        queue = self.pool.queue
        if self.optimistic and taken and self.accepting:  # admitted again, with room checks
            for entry in reversed(taken):
                self.kv_used -= entry[1] + 1
                queue.appendleft(entry)
            taken = []
        if queue and self.accepting:
            kv = self.kv_used
            room = self.max_batch - len(self.decoding) - len(self.prefilling) - len(taken)
            optimistic = self.optimistic
            batch = len(self.decoding) + len(taken)
            cap = self.token_cap  # a disaggregated prefill replica's tokens a step
            prompts = 0
            while queue and room > 0:
                entry = queue[0]
                if cap is not None and taken and prompts + entry[1] > cap:
                    break
                prompts += entry[1]
                if optimistic:  # the prompt, its first token, and a step of the batch
                    need = entry[1] + 1
                    if kv + need + batch + 1 > self.kv_capacity:
                        break
                    batch += 1
                else:
                    need = entry[1] + entry[2]
                    if kv + need > self.kv_capacity:
                        break
                queue.popleft()
                kv += need
                taken.append(entry)
                room -= 1
            self.kv_used = kv
            if queue:
                self.pool.dispatch_queue(now, skip=self)
        return taken

    def _next(self, now: float) -> None:
        """At the end of a run: admit and prefill, run the batch on, go idle or retire."""
        if self.optimistic and self.decoding:
            self._preempt(now)
        taken = self._take(now) if self.pending or self.pool.queue else []
        if taken:
            self._open_group(taken, now, 0)
            return
        if self.decoding:
            self._run(now, self.decoding[0][0] - self.step, 0)
            return
        if not self.accepting:
            self._retire(now)
            return
        self._busy(False, now)
        self.phase = IDLE

    def _preempt(self, now: float) -> None:
        """Optimistic admission: while the batch's next step does not fit the KV cache, the
        newest sequence gives its KV back and returns to the head of the queue, to prefill
        its prompt and what it generated again (vLLM's preemption by recomputation)."""
        heap = self.decoding
        evicted: list[Entry] = []
        start = self.records.start
        while heap and self.kv_used + len(heap) > self.kv_capacity:
            victim = max(range(len(heap)), key=lambda k: (start[heap[k][1]], heap[k][1]))
            finish_step, i, tokens, n_out, arrival = heap[victim]
            heap[victim] = heap[-1]
            heap.pop()
            heapq.heapify(heap)
            generated = n_out - (finish_step - self.step)
            n_in = tokens - n_out
            self.context_base -= tokens - finish_step
            self.kv_used -= n_in + generated
            evicted.append((i, n_in + generated, n_out - generated, arrival))
        if evicted:
            pool = self.pool
            queue = pool.queue
            was_empty = not queue
            for entry in reversed(evicted):  # the oldest of them first
                queue.appendleft(entry)
                pool.preempted.add(entry[0])
            pool.preemptions += len(evicted)
            if was_empty:  # the room completions free must now be offered on time
                for replica in pool.active:
                    if replica is not self:
                        replica.schedule_wake()

    def _busy(self, busy: bool, now: float) -> None:
        if busy and self.busy_since is None:
            self.busy_since = now
        elif not busy and self.busy_since is not None:
            self.busy_time += now - self.busy_since
            self.busy_since = None

    def busy_seconds(self, now: float) -> float:
        """Busy time (running or prefilling) up to `now`, the drain included (it is billed)."""
        extra = 0.0
        if self.busy_since is not None:
            extra = max(0.0, now - self.busy_since)
        return self.busy_time + extra

    def _retire(self, now: float) -> None:
        self._busy(False, now)
        self.phase = RETIRED
        self.pool.retired(self, now)

    # -- chunked prefill ---------------------------------------------------------------------
    def _nudge(self, now: float) -> None:
        """Chunked: new work stops the run at the next step boundary."""
        if self.phase == IDLE:
            self.phase = WAKING
            self.run_chunk = 0
            self._wake_at(now, 0)
        elif self.phase == DECODE and not self.interrupted:
            steps, boundary = next_boundary(
                self.model,
                self.run_batch,
                self.run_context,
                self.run_steps,
                now - self.run_start,
                self.run_chunk,
            )
            if steps >= self.run_steps:
                return  # the run ends at that boundary anyway
            self.interrupted = True
            self._wake_at(self.run_start + boundary, steps)

    def _chunk(self) -> int:
        """Prompt tokens a step prefills: the budget left after one token per decoding
        sequence (at least one token, so a full batch cannot starve the prompts)."""
        return max(1, self.budget - len(self.decoding)) if self.prefilling else 0

    def _prefill_progress(self, tokens: int) -> list[Entry]:
        """Spend `tokens` of prefill on the waiting prompts, first come first served;
        returns the requests whose prompt is now done."""
        done: list[Entry] = []
        while tokens > 0 and self.prefilling:
            head = self.prefilling[0]
            if head[1] <= tokens:
                tokens -= head[1]
                done.append((head[0], head[2], head[3], head[4]))
                self.prefilling.popleft()
            else:
                head[1] -= tokens
                tokens = 0
        return done

    def _next_chunked(self, now: float) -> None:
        """Steps of a token budget: every decoding sequence's next token, and what is left of
        the budget for the prompts admitted (vLLM's chunked prefill). A prompt's first token
        comes at the end of the step that finishes it."""
        for i, n_in, n_out, arrival in self._take(now):
            self.records.start[i] = now
            self.pool.queue_area += now - arrival
            left = n_in - (self.cached_prefix(i, n_in) if self.prefix else 0)
            self.prefilling.append([i, left, n_in, n_out, arrival])
        if not self.decoding and not self.prefilling:
            if not self.accepting:
                self._retire(now)
                return
            self._busy(False, now)
            self.phase = IDLE
            return
        self._busy(True, now)
        chunk = self._chunk()
        k = self.decoding[0][0] - self.step if self.decoding else 1 << 40
        if chunk:
            k = min(k, -(-self.prefilling[0][1] // chunk))  # steps to the next first token
        self._run(now, k, chunk)
