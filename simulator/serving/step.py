"""The step function a replica runs on: what a performance model must give (`StepModel`:
a prefill's time, a decode step's lines, a mixed step's lines, the KV capacity), the two
measured models (`FixedModel`, `LinearModel`), and the closed-form arithmetic over a run
of decode steps (`envelope`, `decode_time`, `steps_within`, `next_boundary`).

A decode step over a batch of B sequences holding C tokens of context in total takes
max_i(a_i(B) + b_i(B) x C): a maximum of lines in C for a fixed batch. Between two events
the batch is fixed and C grows by B a step, so the time of k steps is a sum of arithmetic
series, computed in closed form (`decode_time`), not iterated.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

Line = tuple[float, float]  # step seconds = intercept + slope x context tokens


class StepModel(Protocol):
    """What the replica needs of a performance model."""

    @property
    def kv_capacity_tokens(self) -> float:
        """Tokens of KV cache one replica holds."""
        ...

    def prefill_time(self, tokens: int, squared_tokens: float) -> float:
        """Seconds to prefill prompts of `tokens` in all (sum of each prompt's length squared
        in `squared_tokens`, for attention)."""
        ...

    def decode_lines(self, batch: int) -> list[Line]:
        """The lines whose maximum is a decode step's time for `batch` sequences."""
        ...

    def mixed_lines(self, batch: int, chunk: int) -> list[Line]:
        """A step that decodes `batch` sequences and prefills `chunk` prompt tokens."""
        ...


def sequential_mixed_lines(model: StepModel, batch: int, chunk: int) -> list[Line]:
    """Decode and prefill one after the other in the step (no overlap)."""
    extra = model.prefill_time(chunk, 0.0) if chunk else 0.0
    if batch == 0:
        return [(extra, 0.0)]
    return [(a + extra, b) for a, b in model.decode_lines(batch)]


@dataclass(frozen=True)
class FixedModel:
    """Constant prefill speed and time per output token, whatever the batch."""

    prefill_tokens_per_s: float
    tpot: float
    kv_capacity_tokens: float = math.inf

    def prefill_time(self, tokens: int, squared_tokens: float) -> float:
        return tokens / self.prefill_tokens_per_s

    def decode_lines(self, batch: int) -> list[Line]:
        return [(self.tpot, 0.0)]

    def mixed_lines(self, batch: int, chunk: int) -> list[Line]:
        return sequential_mixed_lines(self, batch, chunk)


@dataclass(frozen=True)
class LinearModel:
    """Step times linear in batch and context, fitted from measurements (`table`)."""

    decode_base: float
    decode_per_sequence: float
    decode_per_context_token: float
    prefill_base: float
    prefill_per_token: float
    kv_capacity_tokens: float = math.inf

    def prefill_time(self, tokens: int, squared_tokens: float) -> float:
        return self.prefill_base + self.prefill_per_token * tokens

    def decode_lines(self, batch: int) -> list[Line]:
        return [
            (self.decode_base + self.decode_per_sequence * batch, self.decode_per_context_token)
        ]

    def mixed_lines(self, batch: int, chunk: int) -> list[Line]:
        return sequential_mixed_lines(self, batch, chunk)


Envelope = tuple[tuple[float, ...], tuple[Line, ...]]
_ENVELOPES: dict[tuple[Line, ...], Envelope] = {}


def envelope(lines: list[Line]) -> Envelope:
    """The upper envelope of `lines` over context >= 0: the contexts where the dominant line
    changes (ascending) and the dominant line of each piece (one more than the cuts)."""
    key = tuple(lines)
    found = _ENVELOPES.get(key)
    if found is not None:
        return found
    # the line on top at context 0 (the steeper on a tie), then each next line to overtake it
    a, b = max(key, key=lambda line: (line[0], line[1]))
    cuts: list[float] = []
    pieces: list[Line] = [(a, b)]
    x = 0.0
    while True:
        best: tuple[float, float, Line] | None = None
        for a2, b2 in key:
            if b2 > b:
                cross = (a - a2) / (b2 - b)
                if cross >= x and (best is None or (cross, -b2) < (best[0], -best[1])):
                    best = (cross, b2, (a2, b2))
        if best is None:
            break
        x = best[0]
        a, b = best[2]
        cuts.append(x)
        pieces.append((a, b))
    if len(_ENVELOPES) > 4096:  # many distinct batches or tables in one process
        _ENVELOPES.clear()
    found = _ENVELOPES[key] = (tuple(cuts), tuple(pieces))
    return found


def envelope_sum(lines: list[Line], c0: float, batch: int, k: int) -> float:
    """Sum over j in [0, k) of max_i(a_i + b_i (c0 + j batch))."""
    if k <= 0:
        return 0.0
    cuts, pieces = envelope(lines)
    if not cuts:
        a, b = pieces[0]
        return k * (a + b * c0) + b * batch * (k - 1) * k / 2
    if batch == 0:
        a, b = pieces[bisect.bisect_right(cuts, c0)]
        return k * (a + b * c0)
    total = 0.0
    lo = 0
    p = bisect.bisect_right(cuts, c0)
    last = len(cuts)
    while lo < k:
        # steps lo .. hi-1 on piece p: up to the first step whose context reaches the next cut
        hi = k if p == last else min(k, math.ceil((cuts[p] - c0) / batch))
        if hi > lo:
            a, b = pieces[p]
            n = hi - lo
            # sum of a + b (c0 + j batch) for j = lo .. hi-1
            total += n * (a + b * c0) + b * batch * (lo + hi - 1) * n / 2
            lo = hi
        p += 1
    return total


FusedStep = Callable[[int, float, int, float], float]


def fused_step(model: StepModel) -> FusedStep:
    """`model`'s fused step, (prompt tokens, their squares, batch, context) -> seconds: a
    step that prefills the prompts while the batch's sequences each decode a token
    (in-flight batching). The roofline shares the step's weight reads and overheads between
    the two; other models add a decode step to the prefill. Bound once by a replica."""
    fused: FusedStep | None = getattr(model, "fused_step_time", None)
    return fused if fused is not None else partial(_prefill_then_decode, model)


def _prefill_then_decode(
    model: StepModel, tokens: int, squared_tokens: float, batch: int, context: float
) -> float:
    seconds = model.prefill_time(tokens, squared_tokens)
    if batch:
        seconds += max(a + b * context for a, b in model.decode_lines(batch))
    return seconds


def fused_time(
    model: StepModel, tokens: int, squared_tokens: float, batch: int, context: float
) -> float:
    """Seconds of `model`'s fused step (see `fused_step`)."""
    return float(fused_step(model)(tokens, squared_tokens, batch, context))


def decode_time(model: StepModel, batch: int, context: float, steps: int, chunk: int = 0) -> float:
    """Seconds for `steps` decode steps of `batch` sequences starting at `context` tokens
    (each step also prefilling `chunk` prompt tokens, with chunked prefill)."""
    lines = model.mixed_lines(batch, chunk) if chunk else model.decode_lines(batch)
    return envelope_sum(lines, context, batch, steps)


def _steps_guess(lines: list[Line], c0: float, batch: int, limit: int, elapsed: float) -> int:
    """About the most steps that fit in `elapsed`: within a piece of the envelope, the time
    of m steps is quadratic in m, solved for m."""
    cuts, pieces = envelope(lines)
    spent = 0.0
    lo = 0
    p = bisect.bisect_right(cuts, c0)
    last = len(cuts)
    while lo < limit:
        last_piece = batch == 0 or p == last
        hi = limit if last_piece else min(limit, math.ceil((cuts[p] - c0) / batch))
        if hi > lo:
            a, b = pieces[p]
            n = hi - lo
            first = a + b * (c0 + lo * batch)  # the piece's first step
            piece = n * first + b * batch * (n - 1) * n / 2
            if spent + piece > elapsed:
                left = elapsed - spent
                quad = b * batch / 2  # m first + quad m (m - 1) <= left
                lin = first - quad
                if quad > 0:
                    root = (-lin + math.sqrt(lin * lin + 4 * quad * left)) / (2 * quad)
                else:
                    root = left / first if first > 0 else float(n)
                return lo + max(0, min(n, int(root)))
            spent += piece
            lo = hi
        p += 1
    return limit


def steps_within(
    model: StepModel, batch: int, context: float, limit: int, elapsed: float, chunk: int = 0
) -> int:
    """The most whole steps (<= limit) that end within `elapsed` seconds."""
    if limit <= 0 or elapsed <= 0:
        return 0
    lines = model.mixed_lines(batch, chunk) if chunk else model.decode_lines(batch)
    m = _steps_guess(lines, context, batch, limit, elapsed)
    # the closed form and the sum can differ in the last bits: settle on the sum
    while m < limit and envelope_sum(lines, context, batch, m + 1) <= elapsed:
        m += 1
    while m > 0 and envelope_sum(lines, context, batch, m) > elapsed:
        m -= 1
    return m


def next_boundary(
    model: StepModel, batch: int, context: float, limit: int, elapsed: float, chunk: int = 0
) -> tuple[int, float]:
    """The first step boundary at or after `elapsed` (a step under way is finished), as
    (steps, seconds), at most `limit` steps."""
    lines = model.mixed_lines(batch, chunk) if chunk else model.decode_lines(batch)
    if limit <= 0 or elapsed <= 0:
        return 0, 0.0
    m = _steps_guess(lines, context, batch, limit, elapsed)
    time = envelope_sum(lines, context, batch, m)
    while m > 0 and time >= elapsed:  # step back while the boundary is not before elapsed
        earlier = envelope_sum(lines, context, batch, m - 1)
        if earlier < elapsed:
            return m, time
        m, time = m - 1, earlier
    while m < limit and time < elapsed:
        m += 1
        time = envelope_sum(lines, context, batch, m)
    return m, time


def first_boundary(first: float, slope: float, limit: int, elapsed: float) -> tuple[int, float]:
    """`next_boundary` for a run on one line of the envelope: step j takes first + slope j
    seconds, so m steps take m first + slope m (m - 1) / 2 (as `envelope_sum` adds them)."""
    if elapsed <= 0:
        return 0, 0.0
    if slope > 0:
        lin = first - slope / 2
        m = math.ceil((math.sqrt(lin * lin + 2 * slope * elapsed) - lin) / slope)
    elif first > 0:
        m = math.ceil(elapsed / first)
    else:
        return limit, limit * first
    if m > limit:
        m = limit
    # settle on the sum (the closed form can be off in the last bits): the first m whose
    # time reaches elapsed
    time = m * first + slope * (m - 1) * m / 2
    while m > 0:
        earlier = (m - 1) * first + slope * (m - 2) * (m - 1) / 2
        if earlier < elapsed:
            break
        m, time = m - 1, earlier
    while m < limit and time < elapsed:
        m += 1
        time = m * first + slope * (m - 1) * m / 2
    return m, time
