"""Replica failures (`failures: {mtbf, repair, retries}`): each replica of a pool is up for
an exponential time of mean `mtbf`, then down for an exponential time of mean `repair`.

At a failure the replica first reaches the run ends planned before it (lazily planned ones
included), then stops: what it held — its decoding batch, the group it was prefilling, the
requests assigned to its next boundary, chunked prompts — is retried from scratch, offered
again to the pool (another replica, or its queue) with its arrival time kept, so its latency
counts the work lost, then to the rest of its route; a request already retried `retries`
times is lost (rejected, reason `replica_failure`). A reserved replica stays billed while
down and comes back empty (its prefix cache lost) after the repair; an autoscaled pool
retires the failed replica (its billing stops) and starts a replacement after its
`scale_up_delay`. Failures are drawn over the horizon (the drain runs on the replicas up
then); `repair: 0` makes them free and is taken as off. The draws have a stream of their
own per deployment, so turning failures on leaves the traffic and every other draw as it
was.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import simpy

from simulator.records import Outcome, Reason, Records

if TYPE_CHECKING:
    from simulator.deployments.base import EngineContext
    from simulator.deployments.replica import Replica
    from simulator.scenario.deployments import AutoscaleSpec, FailuresSpec, ServingSpec

DOWN = 5  # a replica's phase while failed (Replica's phases are 0-4)


class FailingPool(Protocol):
    """What failures read and call of the pool whose replicas fail (`ServingPool`):
    declared here, so this module needs no import of the pool's."""

    env: simpy.Environment
    context: EngineContext
    spec: ServingSpec
    records: Records
    replicas: list[Replica]
    active: list[Replica]
    down: set[int]
    preempted: set[int]
    autoscale: AutoscaleSpec | None

    def retired(self, replica: Replica, now: float) -> None: ...

    def launch(self, ready_in: float) -> None: ...

    def record_replicas(self, now: float) -> None: ...

    def recover(self, index: int, now: float) -> None: ...

    def retry(self, i: int, now: float) -> bool: ...


class Failures:
    """The failures of one pool's replicas, and what they cost it."""

    def __init__(self, pool: FailingPool, spec: FailuresSpec) -> None:
        self.pool = pool
        self.spec = spec
        self.horizon = pool.context.scenario.horizon
        self.mean_up = spec.mean_up_seconds(pool.spec.gpus_per_replica)
        self.rng = pool.context.rng  # the deployment's own stream (nothing else of it draws)
        self.count = 0
        self.retried = 0
        self.lost = 0
        self.down_seconds = 0.0  # within the horizon
        self.tries: dict[int, int] = {}  # request -> times retried

    def watch(self, replica: Replica) -> None:
        """Start `replica`'s up/down cycle (at its activation)."""
        self.pool.env.process(self._life(replica.index))

    def _life(self, index: int) -> Generator[Any, Any, None]:
        pool, env = self.pool, self.pool.env
        while True:
            up = float(self.rng.exponential(self.mean_up))
            if env.now + up >= self.horizon:
                return
            yield env.timeout(up)
            replica = pool.replicas[index]
            if not replica.accepting or replica.phase == DOWN:
                return  # retired meanwhile
            self.count += 1
            self._fail(replica, env.now)
            if pool.autoscale is not None:  # replaced, not repaired
                delay = pool.autoscale.scale_up_delay
                self.down_seconds += max(0.0, min(env.now + delay, self.horizon) - env.now)
                pool.retired(replica, env.now)
                pool.launch(ready_in=delay)
                return
            down = float(self.rng.exponential(self.spec.repair))
            self.down_seconds += max(0.0, min(env.now + down, self.horizon) - env.now)
            yield env.timeout(down)
            pool.recover(index, env.now)

    def _fail(self, replica: Replica, now: float) -> None:
        """`replica` stops at `now`; what it held is retried or lost."""
        pool = self.pool
        if replica.wake is None:
            replica.settle(now)  # run ends planned lazily before now: they happened
        held = sorted(
            {entry[1] for entry in replica.decoding}
            | {entry[0] for entry in replica.pending}
            | {entry[0] for entry in replica.prefilling}
        )
        replica._busy(False, now)
        replica.wake = None  # its planned wake-up, if any, is stale now
        replica.phase = DOWN
        replica.accepting = False
        if replica in pool.active:
            pool.active.remove(replica)
        pool.down.add(replica.index)
        pool.record_replicas(now)
        r = pool.records
        for i in held:
            r.start[i] = r.first_token[i] = r.finish[i] = math.nan
            pool.preempted.discard(i)  # from scratch: not a recomputation keeping its start
            tries = self.tries.get(i, 0)
            if tries < self.spec.retries:
                self.tries[i] = tries + 1
                self.retried += 1
                if pool.retry(i, now):
                    continue
            self.lost += 1  # out of retries, or nowhere on its route took it again
            r.outcome[i] = Outcome.REJECTED
            r.reason[i] = Reason.REPLICA_FAILURE
            r.deployment[i] = -1

    def availability(self, replica_seconds: float) -> float | None:
        """Share of the replicas' time within the horizon they were up."""
        if replica_seconds <= 0:
            return None
        return float(np.clip(1.0 - self.down_seconds / replica_seconds, 0.0, 1.0))
