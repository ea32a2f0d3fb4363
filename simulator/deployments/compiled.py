"""A dedicated pool fed open-loop traffic, simulated in compiled code (numba).

Such a pool is a feed-forward stage: given the requests offered to it (arrival times and
token counts, in time order) its decisions depend on nothing else, so it can be simulated in
one pass before the event loop, and the requests it refuses handed on to the next entry of
their routes. `run_pool` does that with the same algorithm as `ServingPool` + `Replica` in
their lazy form (reserved KV admission, prefill in groups, separate or fused, run ends
reached when something needs them, wake-up events while requests wait), statement for
statement, on arrays instead of objects (`compiled_core`): a replica is a row of integers
and one of floats, its decoding batch a heap of (finish step, row), the pool's queue a ring
of rows, SimPy's event queue a heap of (time, sequence, replica) with SimPy's own clock
arithmetic (stale wake-ups included, as they move the clock). The Python engine stays the
reference and serves what this does not cover (`eligible`).

Where it pays (`worth_it`): compiling takes ~20 s once, then the machine code is cached
beside the module (numba's cache) and loads in ~0.5 s; a pool runs compiled when it is
offered at least `MIN_REQUESTS` requests and the code is cached (the Python engine's ~8 us a
request passes the load time there), or `COLD_MIN_REQUESTS` before it is. `CAPSIM_ENGINE=
python` or `compiled` forces either (the tests compare the two). `capsim --help` and runs
without a dedicated pool never import numba.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from simulator.deployments.base import DeploymentModel
    from simulator.deployments.dedicated import ServingPool
    from simulator.records import Records

MIN_REQUESTS = 50_000  # with the machine code cached (~0.5 s to load)
COLD_MIN_REQUESTS = 2_000_000  # before it is (~20 s to compile, once: ~8 us a request saved)
_BLOCK = 1 << 18  # arrivals a compiled call takes (progress between calls)


def engine_choice() -> str:
    """`CAPSIM_ENGINE`: auto (default), python or compiled."""
    choice = os.environ.get("CAPSIM_ENGINE", "auto").strip().lower()
    return choice if choice in ("auto", "python", "compiled") else "auto"


def eligible(pool: ServingPool) -> str | None:
    """Why `pool` cannot run compiled (None: it can)."""
    from simulator.scenario.deployments import DedicatedSpec
    from simulator.serving.step_arrays import supported

    spec = pool.spec
    if not pool.lazy:
        return "its run ends must be events (chunked prefill, autoscaling, closed loops)"
    if pool.optimistic:
        return "optimistic KV admission"
    if pool.blocks is not None:
        return "prefix caching"
    if isinstance(spec, DedicatedSpec) and spec.disaggregation is not None:
        return "disaggregation"
    if not supported(pool.step_model):
        return "speculative decoding"
    if pool.group_token_cap is not None:
        return "a prefill token budget"
    if pool.failures is not None:
        return "replica failures"
    if pool.encoder is not None:
        return "a vision encoder"
    return None


def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:  # no wheel for this platform: the Python engine serves
        return False
    return True


def cached() -> bool:
    """Whether the compiled core's machine code is in numba's cache (else the first call
    compiles it, ~20 s). Read from the cache's index; any doubt counts as not cached."""
    try:
        from simulator.deployments import compiled_core as core

        functions: list[Any] = [core.feed, core.finish]
        return all(bool(f._cache._cache_file._load_index()) for f in functions)
    except Exception:  # numba's cache layout is its own: no index, no promise
        return False


def worth_it(requests: int) -> bool:
    """Whether running `requests` offers compiled beats the Python engine, counting the
    machine code's load (or, the first time, its compilation)."""
    if requests < MIN_REQUESTS or not available():
        return False
    return requests >= COLD_MIN_REQUESTS or cached()


@contextmanager
def signals_between_calls() -> Iterator[Callable[[], None]]:
    """Ctrl-C and SIGTERM noted while compiled code runs or compiles, acted on between
    calls (the returned function): numba compiles through ctypes callbacks, where the
    exception a Python handler raises is lost. The handlers in place are restored first,
    then the signal raised again for them, at a point where their exception propagates."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    noted: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def act() -> None:
        if noted:
            restore()
            signal.raise_signal(noted[0])

    for sig in previous:
        signal.signal(sig, lambda number, _frame: noted.append(number))
    try:
        yield act
    finally:
        restore()


def event_capacity(replicas: int, width: int) -> int:
    """Room in the compiled event heap: each replica's wake-up and the ones it replaced
    that are still due (a replica is planned again at most about once per request it
    admits, `width` - 1 a run), with slack; a run that needs more is handed back."""
    return replicas * (4 * width + 16) + 4096


def run_pool(
    pool: ServingPool, rows: np.ndarray, progress: Callable[[float], None] | None = None
) -> np.ndarray | None:
    """Simulate `pool` over the requests `rows` (ascending; every one offered to it at its
    arrival) and fill their records; returns which it admitted, or None when the run
    outgrew the compiled core's event queue (the caller then uses the Python engine; no
    record was finalized in a way that matters: it resets them)."""
    from simulator.deployments import compiled_core as core
    from simulator.records import Outcome
    from simulator.serving.step_arrays import kv_capacity_float, step_arrays

    r = pool.records
    times = r.times()
    if times is None:  # rows appended during a run (closed loops): not this path's
        return None
    n_replicas = len(pool.replicas)
    max_batch = pool.spec.max_batch
    model = step_arrays(pool.step_model, max_batch).packed()
    width = max_batch + 1
    queue = len(rows) if pool.max_queue is None else min(len(rows), pool.max_queue + 1)
    state_i, state_f = core.layout(
        n_replicas, width, max(1, queue), event_capacity(n_replicas, width)
    )
    state_i[core.MAXQ] = -1 if pool.max_queue is None else pool.max_queue
    state_i[core.MAXB] = max_batch
    state_i[core.FUSED] = 1 if pool.spec.prefill == "fused" else 0
    state_f[core.KVCAP] = kv_capacity_float(pool.step_model)
    accepted = np.zeros(len(rows), dtype=np.bool_)
    rec = (r.arrival, r.input_tokens, r.output_tokens)
    rows64 = rows.astype(np.int64, copy=False)
    with signals_between_calls() as act:
        for lo in range(0, len(rows), _BLOCK):
            if progress is not None:
                progress(lo / max(1, len(rows)))
            hi = min(len(rows), lo + _BLOCK)
            core.feed(state_i, state_f, model, rec, times, rows64, accepted, lo, hi)
            act()
            if state_i[core.OVERFLOW]:
                return None
        core.finish(state_i, state_f, model, rec, times)
        act()
        offered_tokens = int(core.tokens_of(rec, rows64))
        act()
    if state_i[core.OVERFLOW]:
        return None
    served = rows64[accepted]
    r.outcome[served] = Outcome.COMPLETED  # the drain finished every request admitted
    del served
    pool.offered += len(rows)
    pool.offered_tokens += offered_tokens
    pool.refused_too_long += int(state_i[core.REFLONG])
    pool.refused_queue_full += int(state_i[core.REFFULL])
    pool.output_tokens_served += int(state_i[core.OUTTOK])
    pool.queue_area += float(state_f[core.QAREA])
    pool.system_time += float(state_f[core.SYSTIME])
    pool.last_finish = max(pool.last_finish, float(state_f[core.LASTFIN]))
    replicas = [core.replica_totals(state_i, state_f, k) for k in range(n_replicas)]
    pool.compiled_totals([busy for busy, _ in replicas], [peak for _, peak in replicas])
    return accepted


def run_compiled_pools(
    records: Records,
    models: list[DeploymentModel],
    routes: list[list[DeploymentModel]],
    limits: np.ndarray,
    progress: Callable[[float], None] | None = None,
) -> int:
    """Run every pool that can and should run compiled (first on each route it is on,
    `eligible`, offered enough requests) before the event loop; returns the rows they were
    offered in all (for progress)."""
    from simulator.deployments.dedicated import ServingPool

    choice = engine_choice()
    if choice == "python" or not any(isinstance(m, ServingPool) for m in models):
        return 0
    n = len(records)
    workload = records.workload[:n]
    fits = records.input_tokens[:n] + records.output_tokens[:n] <= limits[workload]
    done = 0
    for pool in models:
        if not isinstance(pool, ServingPool) or eligible(pool) is not None:
            continue
        feeding = [w for w, route in enumerate(routes) if pool in route]
        if not feeding or any(routes[w][0] is not pool for w in feeding):
            continue  # offered spills of other deployments: not feed-forward from arrivals
        mask = np.isin(workload, feeding) & fits
        if pool.length_limit is not None:
            mask &= records.input_tokens[:n] <= pool.length_limit
        rows = np.flatnonzero(mask)
        del mask
        if not (available() if choice == "compiled" else worth_it(len(rows))):
            continue
        part = None
        if progress is not None:
            share, base = len(rows) / max(1, n), done / max(1, n)
            part = lambda x, s=share, b=base: progress(b + s * x)  # noqa: E731
        admitted = run_pool(pool, rows, part)
        if admitted is None:  # outgrew the compiled core: the Python engine serves it
            records.start[rows] = np.nan
            records.first_token[rows] = np.nan
            records.finish[rows] = np.nan
            records.outcome[rows] = 0
            continue
        pool.take_compiled(rows, admitted)
        done += len(rows)
    return done
