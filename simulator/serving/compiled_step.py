"""The step function of `step_arrays`, compiled (numba): prefill, fused step and the
closed-form run arithmetic of `serving/step.py`, operation for operation in the same order,
so that the compiled engine's times match the Python engine's.

`m` below is `StepArrays.packed()`: (mi, mf), its integers and its floats in two arrays (few
arrays cross each call: every array passed is reference-counted). numba compiles these on
first use and caches the machine code beside the module (`cache=True`), so a later process
only loads it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from simulator.serving.step_arrays import (
    B_ATT_A,
    B_ATT_B,
    B_ATT_CUT_AT,
    B_ATT_CUTS,
    B_ATT_PIECE_AT,
    B_CUT_AT,
    B_CUTS,
    B_LINE_AT,
    B_LINES_A,
    B_LINES_B,
    B_PARAMS,
    B_PIECE_A,
    B_PIECE_AT,
    B_PIECE_B,
    B_PROMPT_A,
    B_PROMPT_B,
    B_PROMPT_CUTS,
    B_REST_A,
    B_REST_B,
    B_REST_CUTS,
    FIXED,
    K_KIND,
    K_OWN,
    KERNELS,
    LINEAR,
    N_PROMPT_CUTS,
    N_REST_CUTS,
    ROOFLINE,
)

__all__ = [
    "envelope_sum",
    "first_boundary",
    "fused_seconds",
    "next_boundary",
    "prefill_seconds",
]


@njit(cache=True)
def _bisect_right(a: np.ndarray, lo: int, hi: int, x: float) -> int:
    """bisect.bisect_right over a[lo:hi], as an index from lo."""
    start = lo
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo - start


@njit(cache=True)
def _piecewise(
    mi: np.ndarray, mf: np.ndarray, cuts: int, n: int, a: int, b: int, x: float
) -> float:
    """Piecewise(x) of the segments at mi[cuts], mi[a], mi[b] (n cuts) in mf."""
    lo = mi[cuts]
    i = _bisect_right(mf, lo, lo + mi[n], x)
    return mf[mi[a] + i] + mf[mi[b] + i] * x


@njit(cache=True)
def _gemms(p: np.ndarray, o: int, tokens: int) -> float:
    compute = p[o + 1] * tokens
    memory = p[o + 2]
    seconds = compute if compute > memory else memory
    if p[o] != 0.0:
        compute = p[o + 3] * tokens
        touched = 1.0 - math.pow(p[o + 6], float(tokens))
        memory = p[o + 4] * touched / p[o + 5]
        seconds += compute if compute > memory else memory
    return seconds


@njit(cache=True)
def _non_attention(m, tokens: float) -> float:
    mi, mf = m[0], m[1]
    ranks = mf[mi[B_PARAMS]]
    if ranks == 1.0:
        return _piecewise(mi, mf, B_REST_CUTS, N_REST_CUTS, B_REST_A, B_REST_B, tokens)
    least = tokens if tokens < 1.0 else 1.0
    spread = tokens / ranks
    return _piecewise(
        mi, mf, B_REST_CUTS, N_REST_CUTS, B_REST_A, B_REST_B, spread if spread > least else least
    )


@njit(cache=True)
def _prompt_attention(m, tokens: int, squared: float) -> float:
    mi, mf = m[0], m[1]
    if tokens <= 0 or squared <= 0:
        return 0.0
    per_token = _piecewise(
        mi, mf, B_PROMPT_CUTS, N_PROMPT_CUTS, B_PROMPT_A, B_PROMPT_B, squared / tokens
    )
    seconds = tokens * (per_token if per_token > 0.0 else 0.0)
    ranks = mf[mi[B_PARAMS]]
    if ranks > 1.0:
        share = tokens * tokens / squared
        seconds /= ranks if ranks <= share else share
    return seconds


@njit(cache=True)
def _attention(m, batch: int, context: float) -> float:
    mi, mf = m[0], m[1]
    lo, hi = mi[mi[B_ATT_CUT_AT] + batch], mi[mi[B_ATT_CUT_AT] + batch + 1]
    i = mi[mi[B_ATT_PIECE_AT] + batch] + _bisect_right(
        mf, mi[B_ATT_CUTS] + lo, mi[B_ATT_CUTS] + hi, context
    )
    return mf[mi[B_ATT_A] + i] + mf[mi[B_ATT_B] + i] * context


@njit(cache=True)
def prefill_seconds(m, tokens: int, squared: float) -> float:
    """`StepModel.prefill_time`."""
    mi, mf = m[0], m[1]
    o = mi[B_PARAMS]
    if mi[K_KIND] == ROOFLINE:
        if mf[o + 0] != 0.0:
            gemms = _gemms(mf, o, tokens)
        else:
            compute = mf[o + 1] * tokens
            memory = mf[o + 2]
            gemms = compute if compute > memory else memory
        return gemms + mf[o + 7] * squared + mf[o + 8] + mf[o + 9] * tokens + mf[o + 10]
    if mi[K_KIND] == KERNELS:
        return _non_attention(m, float(tokens)) + _prompt_attention(m, tokens, squared)
    if mi[K_KIND] == LINEAR:
        return mf[o + 0] + mf[o + 1] * tokens
    if mi[K_KIND] == FIXED:
        return tokens / mf[o + 0]
    return math.nan


@njit(cache=True)
def _max_line(m, batch: int, context: float) -> float:
    mi, mf = m[0], m[1]
    lo, hi = mi[mi[B_LINE_AT] + batch], mi[mi[B_LINE_AT] + batch + 1]
    best = mf[mi[B_LINES_A] + lo] + mf[mi[B_LINES_B] + lo] * context
    for j in range(lo + 1, hi):
        value = mf[mi[B_LINES_A] + j] + mf[mi[B_LINES_B] + j] * context
        if value > best:
            best = value
    return best


@njit(cache=True)
def fused_seconds(m, tokens: int, squared: float, batch: int, context: int) -> float:
    """`step.fused_step(model)`: the model's own fused step, else prefill + a decode step."""
    mi, mf = m[0], m[1]
    o = mi[B_PARAMS]
    if not mi[K_OWN]:
        seconds = prefill_seconds(m, tokens, squared)
        if batch:
            seconds += _max_line(m, batch, context)
        return seconds
    if mi[K_KIND] == ROOFLINE:
        if not batch:
            return prefill_seconds(m, tokens, squared)
        memory = mf[o + 12]
        compute = mf[o + 13]
        total = tokens + batch
        if mf[o + 0] != 0.0:
            gemms = _gemms(mf, o, total)
        else:
            dense = mf[o + 1] * total
            weights = mf[o + 2]
            gemms = dense if dense > weights else weights
        return (
            gemms
            + mf[o + 8]
            + mf[o + 9] * total
            + mf[o + 10]
            + mf[o + 7] * squared
            + mf[o + 11] * batch
            + (memory if memory > compute else compute) * context
        )
    # kernels
    if mf[o + 0] > 1.0:
        seconds = _non_attention(m, float(tokens + batch)) + _prompt_attention(m, tokens, squared)
        if batch:
            seconds += _attention(m, batch, float(context))
        return seconds
    n = tokens + batch
    seconds = _piecewise(mi, mf, B_REST_CUTS, N_REST_CUTS, B_REST_A, B_REST_B, float(n))
    if tokens > 0 and squared > 0:
        per_token = _piecewise(
            mi, mf, B_PROMPT_CUTS, N_PROMPT_CUTS, B_PROMPT_A, B_PROMPT_B, squared / tokens
        )
        if per_token > 0:
            seconds += tokens * per_token
    if batch:
        seconds += _attention(m, batch, float(context))
    return seconds


@njit(cache=True)
def envelope_sum(m, c0: int, batch: int, k: int) -> float:
    """`step.envelope_sum` of batch `batch`'s decode lines."""
    mi, mf = m[0], m[1]
    if k <= 0:
        return 0.0
    lo_cut, hi_cut = mi[mi[B_CUT_AT] + batch], mi[mi[B_CUT_AT] + batch + 1]
    first = mi[mi[B_PIECE_AT] + batch]
    last = hi_cut - lo_cut
    if last == 0:
        a, b = mf[mi[B_PIECE_A] + first], mf[mi[B_PIECE_B] + first]
        return k * (a + b * c0) + b * batch * (k - 1) * k / 2
    total = 0.0
    lo = 0
    p = _bisect_right(mf, mi[B_CUTS] + lo_cut, mi[B_CUTS] + hi_cut, float(c0))
    while lo < k:
        if p == last:
            hi = k
        else:
            reach = math.ceil((mf[mi[B_CUTS] + lo_cut + p] - c0) / batch)
            hi = k if k < reach else reach
        if hi > lo:
            a, b = mf[mi[B_PIECE_A] + first + p], mf[mi[B_PIECE_B] + first + p]
            n = hi - lo
            total += n * (a + b * c0) + b * batch * (lo + hi - 1) * n / 2
            lo = hi
        p += 1
    return total


@njit(cache=True)
def _steps_guess(m, c0: int, batch: int, limit: int, elapsed: float) -> int:
    mi, mf = m[0], m[1]
    lo_cut, hi_cut = mi[mi[B_CUT_AT] + batch], mi[mi[B_CUT_AT] + batch + 1]
    first_piece = mi[mi[B_PIECE_AT] + batch]
    last = hi_cut - lo_cut
    spent = 0.0
    lo = 0
    p = _bisect_right(mf, mi[B_CUTS] + lo_cut, mi[B_CUTS] + hi_cut, float(c0))
    while lo < limit:
        if batch == 0 or p == last:
            hi = limit
        else:
            reach = math.ceil((mf[mi[B_CUTS] + lo_cut + p] - c0) / batch)
            hi = limit if limit < reach else reach
        if hi > lo:
            a, b = mf[mi[B_PIECE_A] + first_piece + p], mf[mi[B_PIECE_B] + first_piece + p]
            n = hi - lo
            first = a + b * (c0 + lo * batch)
            piece = n * first + b * batch * (n - 1) * n / 2
            if spent + piece > elapsed:
                left = elapsed - spent
                quad = b * batch / 2
                lin = first - quad
                if quad > 0:
                    root = (-lin + math.sqrt(lin * lin + 4 * quad * left)) / (2 * quad)
                else:
                    root = left / first if first > 0 else float(n)
                whole = int(root)
                whole = n if n < whole else whole
                return lo + (whole if whole > 0 else 0)
            spent += piece
            lo = hi
        p += 1
    return limit


@njit(cache=True)
def next_boundary(m, batch: int, context: int, limit: int, elapsed: float):
    """`step.next_boundary` (no chunks): (steps, seconds) of the first boundary at or after
    `elapsed`, at most `limit` steps."""
    if limit <= 0 or elapsed <= 0:
        return 0, 0.0
    k = _steps_guess(m, context, batch, limit, elapsed)
    time = envelope_sum(m, context, batch, k)
    while k > 0 and time >= elapsed:
        earlier = envelope_sum(m, context, batch, k - 1)
        if earlier < elapsed:
            return k, time
        k, time = k - 1, earlier
    while k < limit and time < elapsed:
        k += 1
        time = envelope_sum(m, context, batch, k)
    return k, time


@njit(cache=True)
def first_boundary(first: float, slope: float, limit: int, elapsed: float):
    """`step.first_boundary`: `next_boundary` of a run on one line."""
    if elapsed <= 0:
        return 0, 0.0
    if slope > 0:
        lin = first - slope / 2
        k = math.ceil((math.sqrt(lin * lin + 2 * slope * elapsed) - lin) / slope)
    elif first > 0:
        k = math.ceil(elapsed / first)
    else:
        return limit, limit * first
    if k > limit:
        k = limit
    time = k * first + slope * (k - 1) * k / 2
    while k > 0:
        earlier = (k - 1) * first + slope * (k - 2) * (k - 1) / 2
        if earlier < elapsed:
            break
        k, time = k - 1, earlier
    while k < limit and time < elapsed:
        k += 1
        time = k * first + slope * (k - 1) * k / 2
    return k, time
