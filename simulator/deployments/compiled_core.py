"""The compiled pool (see `deployments/compiled`): `ServingPool` and `Replica` of the lazy,
reserved-admission case, function for function, on the arrays `run_pool` allocates.

Names follow the Python methods they mirror (`_enter` is `ServingPool._enter`, `_assign` is
`Replica.assign`, ...). All state lives in two arrays, so that few arrays cross each call
(numba reference-counts every array passed, which cost more than the work itself when the
state was a dozen arrays): `si`, integers — the pool's counters (header slots below), then
each replica's row of `NI` integers, its decoding heap of (finish step, row), the requests
assigned to it and the group it prefills (`WIDTH` each), the queue (a ring of `QCAP` rows),
the event heap's sequence numbers and replicas, and scratch; `sf`, floats — the pool's sums,
each replica's row of `NF` floats, the event heap's times. `m` is the step function
(`StepArrays.packed`), `rec` the record columns read (arrival, input tokens, output tokens)
and `times` the start, first-token and finish columns (rows of one array).

Two searches for a replica with room: the one an arrival makes may reach lazily planned run
ends first (`_search_settling`), the one the queue's dispatch makes never needs to (every
replica has a wake-up event while requests wait), which keeps the call graph free of
cycles; were it ever to, the run is handed back to the Python engine (`OVERFLOW`), as when
the event heap fills.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from simulator.serving.compiled_step import (
    envelope_sum,
    first_boundary,
    fused_seconds,
    next_boundary,
    prefill_seconds,
)
from simulator.serving.step_arrays import B_CUT_AT, B_CUTS, B_PIECE_A, B_PIECE_AT, B_PIECE_B

# a replica's integers (si[ri(r) + X])
PHASE, STEP, CTXB, NDEC, NPEND, NGRP, GTOK, GBATCH, GCTX, RBATCH, RCTX, RSTEPS = range(12)
WSTEPS, WAKE, PEAK, NI = 12, 13, 14, 15
# a replica's floats (sf[rf(r) + X])
GAT, GSQ, KV, BUSYT, BUSYS, WTIME, RSTART, RFIRST, RSLOPE, NF = range(10)
# si's header: the pool's counters and settings, then where each part starts
(
    QHEAD, QTAIL, SEQ, EVN, OUTTOK, REFLONG, REFFULL, MAXQ, MAXB, FUSED, OVERFLOW, NREP,
    WIDTH, EVCAP, B_RI, B_HFS, B_HROW, B_PEND, B_GRP, B_QUEUE, B_EVS, B_EVR, B_TAKEN, B_ONE,
    B_RF, B_EVT, QCAP, HEADER,
) = range(28)  # fmt: skip
# sf's header: the pool's sums and its KV capacity
QAREA, SYSTIME, LASTFIN, NOW, KVCAP, FHEADER = range(6)
IDLE, DECODE, REACHING = 0, 2, 4  # as Replica's phases
START, FIRST, FINISH = range(3)  # rows of `times`

__all__ = ["feed", "finish", "layout", "replica_totals", "tokens_of"]


def layout(replicas: int, width: int, queue: int, events: int) -> tuple[np.ndarray, np.ndarray]:
    """si and sf for a pool of `replicas` replicas of `width` - 1 batch slots, a queue of
    `queue` rows and an event heap of `events`, in their initial state."""
    sizes_i = [
        ("ri", replicas * NI), ("hfs", replicas * width), ("hrow", replicas * width),
        ("pend", replicas * width), ("grp", replicas * width), ("queue", queue),
        ("evs", events), ("evr", events), ("taken", width), ("one", 1),
    ]  # fmt: skip
    slots = dict(
        ri=B_RI, hfs=B_HFS, hrow=B_HROW, pend=B_PEND, grp=B_GRP, queue=B_QUEUE, evs=B_EVS,
        evr=B_EVR, taken=B_TAKEN, one=B_ONE,
    )  # fmt: skip
    total = HEADER + sum(size for _, size in sizes_i)
    state_i = np.zeros(total, dtype=np.int64)
    at = HEADER
    for name, size in sizes_i:
        state_i[slots[name]] = at
        at += size
    state_i[NREP] = replicas
    state_i[WIDTH] = width
    state_i[EVCAP] = events
    state_i[QCAP] = queue
    state_f = np.zeros(FHEADER + replicas * NF + events, dtype=np.float64)
    state_i[B_RF] = FHEADER
    state_i[B_EVT] = FHEADER + replicas * NF
    for r in range(replicas):
        state_i[HEADER + r * NI + WAKE] = -1
        base = FHEADER + r * NF
        state_f[base + GAT] = -math.inf
        state_f[base + BUSYS] = math.nan
        state_f[base + RFIRST] = -1.0
    return state_i, state_f


def replica_totals(state_i: np.ndarray, state_f: np.ndarray, r: int) -> tuple[float, int]:
    """Replica r's busy seconds and peak batch after the run."""
    return (
        float(state_f[state_i[B_RF] + r * NF + BUSYT]),
        int(state_i[state_i[B_RI] + r * NI + PEAK]),
    )


@njit(cache=True)
def tokens_of(rec, rows: np.ndarray) -> int:
    """Input + output tokens of `rows` (summed without a copy of the columns)."""
    total = 0
    n_ins, n_outs = rec[1], rec[2]
    for row in rows:
        total += n_ins[row] + n_outs[row]
    return total


# -- heaps -----------------------------------------------------------------------------------
@njit(cache=True)
def _push_decoding(si: np.ndarray, r: int, n: int, fs: int, row: int) -> None:
    """heapq.heappush of (finish step, row) onto replica r's heap of n."""
    w = si[WIDTH]
    hf = si[B_HFS] + r * w
    hr = si[B_HROW] + r * w
    j = n
    while j > 0:
        parent = (j - 1) >> 1
        pfs, prow = si[hf + parent], si[hr + parent]
        if fs < pfs or (fs == pfs and row < prow):
            si[hf + j], si[hr + j] = pfs, prow
            j = parent
        else:
            break
    si[hf + j], si[hr + j] = fs, row


@njit(cache=True)
def _pop_decoding(si: np.ndarray, r: int, n: int) -> None:
    """Remove the smallest of replica r's heap of n (read before at its top)."""
    w = si[WIDTH]
    hf = si[B_HFS] + r * w
    hr = si[B_HROW] + r * w
    n -= 1
    fs, row = si[hf + n], si[hr + n]
    j = 0
    while True:
        child = 2 * j + 1
        if child >= n:
            break
        right = child + 1
        if right < n:
            a, b = si[hf + right], si[hf + child]
            if a < b or (a == b and si[hr + right] < si[hr + child]):
                child = right
        c = si[hf + child]
        if c < fs or (c == fs and si[hr + child] < row):
            si[hf + j], si[hr + j] = c, si[hr + child]
            j = child
        else:
            break
    if n > 0:
        si[hf + j], si[hr + j] = fs, row


@njit(cache=True)
def _push_event(si: np.ndarray, sf: np.ndarray, t: float, r: int) -> None:
    """env.schedule: (time, its sequence number) onto the event heap; it is replica r's."""
    n = si[EVN]
    if n == si[EVCAP]:
        si[OVERFLOW] = 1
        return
    et, es, er = si[B_EVT], si[B_EVS], si[B_EVR]
    seq = si[SEQ]
    si[SEQ] = seq + 1
    j = n
    while j > 0:
        parent = (j - 1) >> 1
        pt = sf[et + parent]
        if t < pt or (t == pt and seq < si[es + parent]):
            sf[et + j], si[es + j], si[er + j] = pt, si[es + parent], si[er + parent]
            j = parent
        else:
            break
    sf[et + j], si[es + j], si[er + j] = t, seq, r
    si[EVN] = n + 1
    si[si[B_RI] + r * NI + WAKE] = seq


@njit(cache=True)
def _pop_event(si: np.ndarray, sf: np.ndarray):
    et, es, er = si[B_EVT], si[B_EVS], si[B_EVR]
    top_t, top_s, top_r = sf[et], si[es], si[er]
    n = si[EVN] - 1
    t, s, rr = sf[et + n], si[es + n], si[er + n]
    j = 0
    while True:
        child = 2 * j + 1
        if child >= n:
            break
        right = child + 1
        if right < n:
            a, b = sf[et + right], sf[et + child]
            if a < b or (a == b and si[es + right] < si[es + child]):
                child = right
        c = sf[et + child]
        if c < t or (c == t and si[es + child] < s):
            sf[et + j], si[es + j], si[er + j] = c, si[es + child], si[er + child]
            j = child
        else:
            break
    if n > 0:
        sf[et + j], si[es + j], si[er + j] = t, s, rr
    si[EVN] = n
    return top_t, top_s, top_r


# -- a replica -------------------------------------------------------------------------------
@njit(cache=True)
def _wake_at(si: np.ndarray, sf: np.ndarray, r: int, at: float, steps: int) -> None:
    """Replica._wake_at: a _Wake event `at - env.now` from now (SimPy's arithmetic)."""
    sf[si[B_RF] + r * NF + WTIME] = at
    si[si[B_RI] + r * NI + WSTEPS] = steps
    now = sf[NOW]
    delay = at - now
    _push_event(si, sf, now + (delay if delay > 0 else 0.0), r)


@njit(cache=True)
def _schedule_wake(si: np.ndarray, sf: np.ndarray, r: int) -> None:
    ri = si[B_RI] + r * NI
    if si[ri + PHASE] == DECODE and si[ri + WAKE] == -1:
        _wake_at(si, sf, r, sf[si[B_RF] + r * NF + WTIME], si[ri + WSTEPS])


@njit(cache=True)
def _run(si, sf, m, r: int, now: float, steps: int) -> None:
    """Replica._run (no chunk, reserved admission)."""
    mi, mf = m[0], m[1]
    ri = si[B_RI] + r * NI
    rf = si[B_RF] + r * NF
    batch = si[ri + NDEC]
    context = si[ri + CTXB] + batch * si[ri + STEP]
    lo_cut, hi_cut = mi[mi[B_CUT_AT] + batch], mi[mi[B_CUT_AT] + batch + 1]
    cuts = mi[B_CUTS]
    one = False
    a = 0.0
    b = 0.0
    if hi_cut == lo_cut:
        k = mi[mi[B_PIECE_AT] + batch]
        a, b = mf[mi[B_PIECE_A] + k], mf[mi[B_PIECE_B] + k]
        one = True
    elif steps > 0:
        lo, hi = lo_cut, hi_cut
        x = float(context)
        while lo < hi:
            mid = (lo + hi) // 2
            if x < mf[cuts + mid]:
                hi = mid
            else:
                lo = mid + 1
        p = lo - lo_cut
        if p == hi_cut - lo_cut or context + batch * (steps - 1) < mf[cuts + lo_cut + p]:
            k = mi[mi[B_PIECE_AT] + batch] + p
            a, b = mf[mi[B_PIECE_A] + k], mf[mi[B_PIECE_B] + k]
            one = True
    if one:
        first = a + b * context
        slope = b * batch
        sf[rf + RFIRST] = first
        sf[rf + RSLOPE] = slope
        at = now + (steps * first + slope * (steps - 1) * steps / 2 if steps > 0 else 0.0)
    else:
        sf[rf + RFIRST] = -1.0
        at = now + envelope_sum(m, context, batch, steps)
    si[ri + PHASE] = DECODE
    sf[rf + RSTART] = now
    si[ri + RBATCH] = batch
    si[ri + RCTX] = context
    si[ri + RSTEPS] = steps
    if si[QTAIL] == si[QHEAD]:  # lazy, nothing waits: no event
        si[ri + WAKE] = -1
        sf[rf + WTIME] = at
        si[ri + WSTEPS] = steps
    else:
        _wake_at(si, sf, r, at, steps)


@njit(cache=True)
def _join(si: np.ndarray, r: int, row: int, n_in: int, n_out: int) -> None:
    ri = si[B_RI] + r * NI
    finish_step = si[ri + STEP] + (n_out - 1 if n_out > 1 else 0)
    n = si[ri + NDEC]
    _push_decoding(si, r, n, finish_step, row)
    si[ri + NDEC] = n + 1
    si[ri + CTXB] += n_in + n_out - finish_step
    if n + 1 > si[ri + PEAK]:
        si[ri + PEAK] = n + 1


@njit(cache=True)
def _prefill(si, sf, m, r: int) -> float:
    ri = si[B_RI] + r * NI
    squared = sf[si[B_RF] + r * NF + GSQ]
    if si[FUSED]:
        return fused_seconds(m, si[ri + GTOK], squared, si[ri + GBATCH], si[ri + GCTX])
    return prefill_seconds(m, si[ri + GTOK], squared)


@njit(cache=True)
def _top(si: np.ndarray, r: int) -> int:
    """The replica's next finish step (its heap's top)."""
    return si[si[B_HFS] + r * si[WIDTH]]


@njit(cache=True)
def _close_group(si: np.ndarray, sf: np.ndarray, times: np.ndarray, r: int) -> None:
    ri = si[B_RI] + r * NI
    n = si[ri + NGRP]
    if n:
        rf = si[B_RF] + r * NF
        at = sf[rf + RSTART]
        grp = si[B_GRP] + r * si[WIDTH]
        for j in range(n):
            times[FIRST, si[grp + j]] = at
        si[ri + NGRP] = 0
        sf[rf + GAT] = -math.inf


@njit(cache=True)
def _open_group(si, sf, m, rec, times, r: int, src: int, n: int, at: float, steps: int) -> None:
    """Replica._open_group of the n rows at si[src:]."""
    ri = si[B_RI] + r * NI
    rf = si[B_RF] + r * NF
    if si[ri + NGRP]:
        _close_group(si, sf, times, r)
    si[ri + STEP] += steps
    sf[rf + GAT] = at
    if si[FUSED]:
        batch = si[ri + NDEC]
        si[ri + GBATCH] = batch
        si[ri + GCTX] = si[ri + CTXB] + batch * si[ri + STEP]
        if batch:
            si[ri + STEP] += 1
    tokens = 0
    squared = 0.0
    arrival, n_ins, n_outs = rec[0], rec[1], rec[2]
    grp = si[B_GRP] + r * si[WIDTH]
    for j in range(n):
        row = si[src + j]
        n_in = n_ins[row]
        tokens += n_in
        squared += float(n_in) * n_in
        times[START, row] = at
        sf[QAREA] += at - arrival[row]
        _join(si, r, row, n_in, n_outs[row])
        si[grp + j] = row
    si[ri + NGRP] = n
    si[ri + GTOK] = tokens
    sf[rf + GSQ] = squared
    _run(si, sf, m, r, at + _prefill(si, sf, m, r), _top(si, r) - si[ri + STEP])


@njit(cache=True)
def _amend(si, sf, m, rec, times, r: int, row: int) -> None:
    ri = si[B_RI] + r * NI
    rf = si[B_RF] + r * NF
    si[si[B_GRP] + r * si[WIDTH] + si[ri + NGRP]] = row
    si[ri + NGRP] += 1
    n_in = rec[1][row]
    si[ri + GTOK] += n_in
    sf[rf + GSQ] += float(n_in) * n_in - 0.0
    at = sf[rf + GAT]
    times[START, row] = at
    sf[QAREA] += at - rec[0][row]
    _join(si, r, row, n_in, rec[2][row])
    _run(si, sf, m, r, at + _prefill(si, sf, m, r), _top(si, r) - si[ri + STEP])


@njit(cache=True)
def _assign(si, sf, m, rec, times, r: int, row: int, now: float) -> None:
    """Replica.assign (reserved admission, no chunks): always takes the request."""
    ri = si[B_RI] + r * NI
    rf = si[B_RF] + r * NF
    one = si[B_ONE]
    sf[rf + KV] += rec[1][row] + rec[2][row]
    phase = si[ri + PHASE]
    if phase == IDLE:
        if math.isnan(sf[rf + BUSYS]):
            sf[rf + BUSYS] = now
        si[one] = row
        _open_group(si, sf, m, rec, times, r, one, 1, now, 0)
    elif now <= sf[rf + GAT]:
        _amend(si, sf, m, rec, times, r, row)
    elif now < sf[rf + RSTART]:
        if si[ri + RSTEPS] == 0:
            si[si[B_PEND] + r * si[WIDTH] + si[ri + NPEND]] = row
            si[ri + NPEND] += 1
        else:
            si[one] = row
            _open_group(si, sf, m, rec, times, r, one, 1, sf[rf + RSTART], 0)
    else:
        elapsed = now - sf[rf + RSTART]
        if sf[rf + RFIRST] >= 0:
            steps, boundary = first_boundary(
                sf[rf + RFIRST], sf[rf + RSLOPE], si[ri + RSTEPS], elapsed
            )
        else:
            steps, boundary = next_boundary(
                m, si[ri + RBATCH], si[ri + RCTX], si[ri + RSTEPS], elapsed
            )
        if steps >= si[ri + RSTEPS]:
            si[si[B_PEND] + r * si[WIDTH] + si[ri + NPEND]] = row
            si[ri + NPEND] += 1
            _schedule_wake(si, sf, r)
        else:
            si[one] = row
            _open_group(si, sf, m, rec, times, r, one, 1, sf[rf + RSTART] + boundary, steps)


@njit(cache=True)
def _search_plain(si: np.ndarray, sf: np.ndarray, need: int, skip: int, now: float) -> int:
    """ServingPool._replica_with_room from the queue's dispatch (no settling needed)."""
    best = -1
    best_wait = 0.0
    best_load = 0
    max_batch = si[MAXB]
    capacity = sf[KVCAP]
    for r in range(si[NREP]):
        ri = si[B_RI] + r * NI
        rf = si[B_RF] + r * NF
        phase = si[ri + PHASE]
        if phase == REACHING or r == skip:
            continue
        if si[ri + WAKE] == -1 and phase == DECODE and sf[rf + WTIME] < now:
            si[OVERFLOW] = 1  # a lazily planned end is due: the Python engine takes over
            return -1
        load = si[ri + NDEC] + si[ri + NPEND]
        if load >= max_batch or sf[rf + KV] + need > capacity:
            continue
        wait = sf[rf + RSTART] - now
        if wait < 0.0:
            wait = 0.0
        if best < 0 or wait < best_wait or (wait == best_wait and load < best_load):
            if wait == 0.0 and load == 0:
                return r
            best, best_wait, best_load = r, wait, load
    return best


@njit(cache=True)
def _dispatch(si, sf, m, rec, times, now: float, skip: int) -> None:
    """ServingPool.dispatch_queue."""
    queue = si[B_QUEUE]
    while si[QTAIL] > si[QHEAD]:
        row = si[queue + si[QHEAD] % si[QCAP]]
        target = _search_plain(si, sf, rec[1][row] + rec[2][row], skip, now)
        if target < 0:
            return
        si[QHEAD] += 1
        _assign(si, sf, m, rec, times, target, row, now)


@njit(cache=True)
def _take(si, sf, m, rec, times, r: int, now: float) -> int:
    """Replica._take into the scratch rows at si[B_TAKEN]: the requests assigned here, then
    the queue's while they fit."""
    ri = si[B_RI] + r * NI
    rf = si[B_RF] + r * NF
    taken = si[B_TAKEN]
    pend = si[B_PEND] + r * si[WIDTH]
    n = si[ri + NPEND]
    for j in range(n):
        si[taken + j] = si[pend + j]
    si[ri + NPEND] = 0
    if si[QTAIL] > si[QHEAD]:
        queue = si[B_QUEUE]
        kv = sf[rf + KV]
        room = si[MAXB] - si[ri + NDEC] - n
        capacity = sf[KVCAP]
        n_ins, n_outs = rec[1], rec[2]
        while si[QTAIL] > si[QHEAD] and room > 0:
            row = si[queue + si[QHEAD] % si[QCAP]]
            need = n_ins[row] + n_outs[row]
            if kv + need > capacity:
                break
            si[QHEAD] += 1
            kv += need
            si[taken + n] = row
            n += 1
            room -= 1
        sf[rf + KV] = kv
        if si[QTAIL] > si[QHEAD]:
            _dispatch(si, sf, m, rec, times, now, r)
    return n


@njit(cache=True)
def _advance(si, sf, rec, times, r: int, steps: int, now: float) -> None:
    """Replica._advance and ServingPool.finished."""
    ri = si[B_RI] + r * NI
    rf = si[B_RF] + r * NF
    hf = si[B_HFS] + r * si[WIDTH]
    hr = si[B_HROW] + r * si[WIDTH]
    step = si[ri + STEP] + steps
    si[ri + STEP] = step
    n = si[ri + NDEC]
    if n == 0 or si[hf] > step:
        return
    arrival, n_ins, n_outs = rec[0], rec[1], rec[2]
    done = 0
    tokens_out = 0
    arrived = 0.0
    while n > 0 and si[hf] <= step:
        finish_step, row = si[hf], si[hr]
        _pop_decoding(si, r, n)
        n -= 1
        tokens = n_ins[row] + n_outs[row]
        si[ri + CTXB] -= tokens - finish_step
        times[FINISH, row] = now
        sf[rf + KV] -= tokens
        tokens_out += n_outs[row]
        arrived += arrival[row]
        done += 1
    si[ri + NDEC] = n
    si[OUTTOK] += tokens_out
    sf[SYSTIME] += done * now - arrived
    if now > sf[LASTFIN]:
        sf[LASTFIN] = now


@njit(cache=True)
def _reach(si, sf, m, rec, times, r: int, now: float) -> None:
    """Replica._reach then Replica._next."""
    ri = si[B_RI] + r * NI
    if si[ri + PHASE] == DECODE:
        si[ri + PHASE] = REACHING
        _close_group(si, sf, times, r)
        _advance(si, sf, rec, times, r, si[ri + WSTEPS], now)
    n = 0
    if si[ri + NPEND] or si[QTAIL] > si[QHEAD]:
        n = _take(si, sf, m, rec, times, r, now)
    if n:
        _open_group(si, sf, m, rec, times, r, si[B_TAKEN], n, now, 0)
        return
    if si[ri + NDEC]:
        _run(si, sf, m, r, now, _top(si, r) - si[ri + STEP])
        return
    rf = si[B_RF] + r * NF
    if not math.isnan(sf[rf + BUSYS]):
        sf[rf + BUSYT] += now - sf[rf + BUSYS]
        sf[rf + BUSYS] = math.nan
    si[ri + PHASE] = IDLE


@njit(cache=True)
def _settle(si, sf, m, rec, times, r: int, until: float) -> None:
    ri = si[B_RI] + r * NI
    wake_time = si[B_RF] + r * NF + WTIME
    while si[ri + WAKE] == -1 and si[ri + PHASE] == DECODE and sf[wake_time] < until:
        _reach(si, sf, m, rec, times, r, sf[wake_time])


@njit(cache=True)
def _search_settling(si, sf, m, rec, times, need: int, now: float) -> int:
    """ServingPool._replica_with_room for an arrival: due lazy run ends reached first."""
    best = -1
    best_wait = 0.0
    best_load = 0
    max_batch = si[MAXB]
    capacity = sf[KVCAP]
    for r in range(si[NREP]):
        ri = si[B_RI] + r * NI
        rf = si[B_RF] + r * NF
        phase = si[ri + PHASE]
        if phase == REACHING:
            continue
        if si[ri + WAKE] == -1 and phase == DECODE and sf[rf + WTIME] < now:
            _settle(si, sf, m, rec, times, r, now)
        load = si[ri + NDEC] + si[ri + NPEND]
        if load >= max_batch or sf[rf + KV] + need > capacity:
            continue
        wait = sf[rf + RSTART] - now
        if wait < 0.0:
            wait = 0.0
        if best < 0 or wait < best_wait or (wait == best_wait and load < best_load):
            if wait == 0.0 and load == 0:
                return r
            best, best_wait, best_load = r, wait, load
    return best


@njit(cache=True)
def _enter(si, sf, m, rec, times, row: int, now: float) -> bool:
    """ServingPool.offer then _enter: False when refused (too long, or the queue full)."""
    tokens = rec[1][row] + rec[2][row]
    if tokens > sf[KVCAP]:
        si[REFLONG] += 1
        return False
    waiting = si[QTAIL] > si[QHEAD]
    target = -1 if waiting else _search_settling(si, sf, m, rec, times, tokens, now)
    if target < 0 and si[MAXQ] >= 0 and si[QTAIL] - si[QHEAD] >= si[MAXQ]:
        si[REFFULL] += 1
        return False
    if target < 0:
        if not waiting:
            for r in range(si[NREP]):
                _schedule_wake(si, sf, r)
        si[si[B_QUEUE] + si[QTAIL] % si[QCAP]] = row
        si[QTAIL] += 1
    else:
        _assign(si, sf, m, rec, times, target, row, now)
    return True


@njit(cache=True)
def _step(si, sf, m, rec, times) -> None:
    """env.step: the next event; a replaced wake-up only moves the clock."""
    t, seq, r = _pop_event(si, sf)
    sf[NOW] = t
    ri = si[B_RI] + r * NI
    if si[ri + WAKE] != seq:
        return
    si[ri + WAKE] = -1
    _reach(si, sf, m, rec, times, r, sf[si[B_RF] + r * NF + WTIME])


@njit(cache=True)
def feed(si, sf, m, rec, times, rows: np.ndarray, accepted: np.ndarray, lo: int, hi: int) -> None:
    """Offer rows[lo:hi] at their arrival times, the events due before each first."""
    arrival = rec[0]
    et = si[B_EVT]
    for j in range(lo, hi):
        row = rows[j]
        t = arrival[row]
        while si[EVN] > 0 and sf[et] < t:
            _step(si, sf, m, rec, times)
            if si[OVERFLOW]:
                return
        accepted[j] = _enter(si, sf, m, rec, times, row, t)
        if si[OVERFLOW]:
            return


@njit(cache=True)
def finish(si, sf, m, rec, times) -> None:
    """The end of the run: env.run(), then ServingPool.drain."""
    while si[EVN] > 0 and not si[OVERFLOW]:
        _step(si, sf, m, rec, times)
    while not si[OVERFLOW]:
        for r in range(si[NREP]):
            _settle(si, sf, m, rec, times, r, math.inf)
        waking = False
        decoding = False
        for r in range(si[NREP]):
            ri = si[B_RI] + r * NI
            if si[ri + WAKE] != -1:
                waking = True
            if si[ri + PHASE] == DECODE:
                decoding = True
        if waking:
            while si[EVN] > 0 and not si[OVERFLOW]:
                _step(si, sf, m, rec, times)
        elif not decoding:
            return
