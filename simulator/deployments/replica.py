"""One replica of a dedicated deployment: a continuous-batching server, simulated event by
event.

The replica takes waiting requests (first come, first served) while its batch is under
`max_batch` and their whole KV cache (input + output tokens, reserved at admission) fits.
Admitted requests are prefilled together, the running batch paused meanwhile; each then
emits its first token and joins the decode batch, where every step gives each sequence one
token. Between two events (a completion, or new work at a step boundary) the batch is fixed,
so the time to the next event is computed in closed form, not stepped token by token.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from simulator.performance import decode_time, steps_within
from simulator.records import Outcome

if TYPE_CHECKING:
    from simulator.deployments.dedicated import ServingPool


class Replica:
    """A continuous-batching server; its state lives only for the run."""

    def __init__(self, pool: ServingPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.env = pool.env
        self.model = pool.step_model
        self.records = pool.records
        self.max_batch = pool.spec.max_batch
        self.horizon = pool.context.scenario.horizon
        self.kv_capacity = pool.step_model.kv_capacity_tokens
        size = min(self.max_batch, 1024)
        self.req = np.zeros(size, dtype=np.int64)
        self.remaining = np.zeros(size, dtype=np.int64)
        self.context = np.zeros(size, dtype=np.int64)
        self.n = 0
        self.total_context = 0
        self.kv_used = 0.0
        self.promised = 0
        self.promised_kv = 0.0
        self.accepting = True
        self.wake_event: simpy.Event | None = None
        self.busy_time = 0.0
        self.busy_since: float | None = None
        self.peak_batch = 0
        self.process: simpy.Process | None = None
        self.chunked = pool.spec.chunked_prefill
        self.budget = pool.spec.step_token_budget
        self.prefilling: deque[list[int]] = deque()  # [request, prompt tokens still to do]

    def start(self) -> None:
        self.process = self.env.process(self.run_chunked() if self.chunked else self.run())

    # -- room and waking -------------------------------------------------------------------
    def room_for(self, tokens: int) -> bool:
        """Could this replica take one more request of `tokens` at its next step?"""
        return (
            self.accepting
            and self.n + len(self.prefilling) + self.promised < self.max_batch
            and self.kv_used + self.promised_kv + tokens <= self.kv_capacity
        )

    def promise(self, tokens: int) -> None:
        self.promised += 1
        self.promised_kv += tokens
        if self.wake_event is not None and not self.wake_event.triggered:
            self.wake_event.succeed()

    def load(self) -> int:
        return self.n + len(self.prefilling) + self.promised

    def _busy(self, busy: bool) -> None:
        now = self.env.now
        if busy and self.busy_since is None:
            self.busy_since = now
        elif not busy and self.busy_since is not None:
            self.busy_time += max(0.0, min(now, self.horizon) - self.busy_since)
            self.busy_since = None

    def busy_seconds(self) -> float:
        """Busy time (running or prefilling) within the horizon."""
        extra = 0.0
        if self.busy_since is not None:
            extra = max(0.0, min(self.env.now, self.horizon) - self.busy_since)
        return self.busy_time + extra

    # -- the server loop -------------------------------------------------------------------
    def _admit(self) -> list[int]:
        queue = self.pool.queue
        r = self.records
        admitted: list[int] = []
        kv = self.kv_used
        if queue:
            self.pool.queue_changed()  # integrate the queue length up to now, before it changes
        while queue and self.n + len(self.prefilling) + len(admitted) < self.max_batch:
            i = queue[0]
            need = int(r.input_tokens[i] + r.output_tokens[i])
            if kv + need > self.kv_capacity:
                break
            queue.popleft()
            kv += need
            admitted.append(i)
        self.promised = 0
        self.promised_kv = 0.0
        self.kv_used = kv
        if admitted:
            r.start[admitted] = self.env.now
        if queue:
            self.pool.wake_others(self)
        return admitted

    def _grow(self, needed: int) -> None:
        size = len(self.req)
        if needed <= size:
            return
        new = min(self.max_batch, max(needed, 2 * size))
        for name in ("req", "remaining", "context"):
            array = getattr(self, name)
            grown = np.zeros(new, dtype=np.int64)
            grown[: self.n] = array[: self.n]
            setattr(self, name, grown)

    def _join(self, admitted: list[int]) -> None:
        r = self.records
        now = self.env.now
        index = np.asarray(admitted, dtype=np.int64)
        r.first_token[index] = now
        outputs = r.output_tokens[index]
        done = outputs <= 1
        for i in index[done]:
            self._finish(int(i), int(r.input_tokens[i] + r.output_tokens[i]))
        joining = index[~done]
        k = len(joining)
        if k:
            self._grow(self.n + k)
            lo, hi = self.n, self.n + k
            self.req[lo:hi] = joining
            self.remaining[lo:hi] = r.output_tokens[joining] - 1
            contexts = r.input_tokens[joining] + 1
            self.context[lo:hi] = contexts
            self.total_context += int(contexts.sum())
            self.n = hi
            self.peak_batch = max(self.peak_batch, self.n)

    def _finish(self, i: int, tokens: int) -> None:
        r = self.records
        r.finish[i] = self.env.now
        r.outcome[i] = Outcome.COMPLETED
        self.kv_used -= tokens
        self.pool.finished(i)

    def _advance(self, steps: int) -> None:
        n = self.n
        self.remaining[:n] -= steps
        self.context[:n] += steps
        self.total_context += n * steps
        done = self.remaining[:n] == 0
        if not done.any():
            return
        r = self.records
        for i in self.req[:n][done]:
            self._finish(int(i), int(r.input_tokens[i] + r.output_tokens[i]))
        self.total_context -= int(self.context[:n][done].sum())
        keep = ~done
        kept = int(keep.sum())
        for array in (self.req, self.remaining, self.context):
            array[:kept] = array[:n][keep]
        self.n = kept

    def run(self) -> Generator[Any, Any, None]:
        env = self.env
        r = self.records
        while True:
            if not self.accepting and self.n == 0:
                self._busy(False)
                self.pool.retired(self)
                return
            admitted = self._admit() if self.accepting else []
            if admitted:
                self._busy(True)
                inputs = r.input_tokens[admitted].astype(np.float64)
                yield env.timeout(
                    self.model.prefill_time(int(inputs.sum()), float((inputs * inputs).sum()))
                )
                self._join(admitted)
                continue
            if self.n == 0:
                yield from self._idle()
                continue
            self._busy(True)
            k = int(self.remaining[: self.n].min())
            steps = yield from self._steps(k, 0)
            if steps:
                self._advance(steps)

    def _idle(self) -> Generator[Any, Any, None]:
        """Nothing to do: sleep until a request is promised to this replica."""
        self._busy(False)
        self.wake_event = self.env.event()
        yield self.wake_event
        self.wake_event = None

    def _steps(self, k: int, chunk: int) -> Generator[Any, Any, int]:
        """Run up to `k` steps of the current batch (each prefilling `chunk` prompt tokens);
        new work stops the run at the end of the step under way. Returns the steps done."""
        env = self.env
        batch, context = self.n, self.total_context
        start = env.now
        self.wake_event = env.event()
        timer = env.timeout(decode_time(self.model, batch, context, k, chunk))
        fired = yield timer | self.wake_event
        self.wake_event = None
        if timer in fired:
            return k
        elapsed = env.now - start
        steps = steps_within(self.model, batch, context, k, elapsed, chunk)
        boundary = decode_time(self.model, batch, context, steps, chunk)
        if boundary < elapsed:  # a step is under way: new work joins when it ends
            steps += 1
            boundary = decode_time(self.model, batch, context, steps, chunk)
            yield env.timeout(max(0.0, start + boundary - env.now))
        return steps

    # -- chunked prefill ---------------------------------------------------------------------
    def _chunk(self) -> int:
        """Prompt tokens a step prefills: the budget left after one token per decoding
        sequence (at least one token, so a full batch cannot starve the prompts)."""
        return max(1, self.budget - self.n) if self.prefilling else 0

    def _prefill_progress(self, tokens: int) -> list[int]:
        """Spend `tokens` of prefill on the waiting prompts, first come first served;
        returns the requests whose prompt is now done."""
        done: list[int] = []
        while tokens > 0 and self.prefilling:
            head = self.prefilling[0]
            if head[1] <= tokens:
                tokens -= head[1]
                done.append(head[0])
                self.prefilling.popleft()
            else:
                head[1] -= tokens
                tokens = 0
        return done

    def run_chunked(self) -> Generator[Any, Any, None]:
        """Steps of a token budget: every decoding sequence's next token, and what is left of
        the budget for the prompts admitted (vLLM's chunked prefill). A prompt's first token
        comes at the end of the step that finishes it."""
        r = self.records
        while True:
            if not self.accepting and self.n == 0 and not self.prefilling:
                self._busy(False)
                self.pool.retired(self)
                return
            if self.accepting:
                for i in self._admit():
                    self.prefilling.append([i, int(r.input_tokens[i])])
            if self.n == 0 and not self.prefilling:
                yield from self._idle()
                continue
            self._busy(True)
            chunk = self._chunk()
            k = int(self.remaining[: self.n].min()) if self.n else 1 << 40
            if chunk:
                k = min(k, -(-self.prefilling[0][1] // chunk))  # steps to the next first token
            steps = yield from self._steps(k, chunk)
            if steps:
                if self.n:
                    self._advance(steps)
                prompted = self._prefill_progress(steps * chunk)
                if prompted:
                    self._join(prompted)
