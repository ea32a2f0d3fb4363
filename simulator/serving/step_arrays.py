"""A replica's step function as arrays, for the compiled engine (`deployments/compiled`).

The performance models (`RooflineModel`, `KernelModel`, `LinearModel`, `FixedModel`) answer
in Python; the compiled core needs the same answers as data. `step_arrays` packs a model:
the constants of its prefill and fused steps (roofline: the per-token and per-step terms it
computes once; kernels: the piecewise-linear tables it interpolates), and for every batch
size up to the replica's `max_batch` the upper envelope of its decode lines (`envelope`),
the form the closed-form run sums use. The compiled functions below evaluate them in the
same order of operations as the Python ones, so the two engines' times agree to the last
bits in practice (tests/test_compiled.py holds them to 1e-9).

One form serves both needs of this wave: the measured kernels are tabulated into exactly
these arrays (`KernelTable` -> `Piecewise` -> cuts, intercepts, slopes).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from simulator.serving.kernels import KernelModel, Piecewise
from simulator.serving.performance import RooflineModel
from simulator.serving.step import FixedModel, LinearModel, StepModel, envelope

# how a prefill is timed
ROOFLINE, KERNELS, LINEAR, FIXED = range(4)

# `StepArrays.packed`: the slots of its integer array's header (kind, own fused step, where
# each segment starts: integer segments in the same array, float segments in the floats,
# and the cut counts of the two shared piecewise functions)
_FLOATS = (
    "params", "cuts", "piece_a", "piece_b", "lines_a", "lines_b", "rest_cuts", "rest_a",
    "rest_b", "prompt_cuts", "prompt_a", "prompt_b", "att_cuts", "att_a", "att_b",
)  # fmt: skip
_INTS = ("cut_at", "piece_at", "line_at", "att_cut_at", "att_piece_at")
K_KIND, K_OWN, N_REST_CUTS, N_PROMPT_CUTS = range(4)
(
    B_PARAMS, B_CUTS, B_PIECE_A, B_PIECE_B, B_LINES_A, B_LINES_B, B_REST_CUTS, B_REST_A,
    B_REST_B, B_PROMPT_CUTS, B_PROMPT_A, B_PROMPT_B, B_ATT_CUTS, B_ATT_A, B_ATT_B,
) = range(4, 4 + len(_FLOATS))  # fmt: skip
B_CUT_AT, B_PIECE_AT, B_LINE_AT, B_ATT_CUT_AT, B_ATT_PIECE_AT = range(
    4 + len(_FLOATS), 4 + len(_FLOATS) + len(_INTS)
)
_HEADER = 4 + len(_FLOATS) + len(_INTS)


class StepArrays(NamedTuple):
    """`StepModel` as arrays; batch b's decode envelope is cuts[cut_at[b]:cut_at[b + 1]]
    with pieces a, b [piece_at[b]:piece_at[b + 1]], its raw decode lines
    lines_a, lines_b [line_at[b]:line_at[b + 1]] (kernels: the attention piecewise of batch
    b likewise in att_*)."""

    kind: int
    fused_own: bool  # the model has its own fused step (else prefill + a decode step)
    params: np.ndarray
    cut_at: np.ndarray
    cuts: np.ndarray
    piece_at: np.ndarray
    piece_a: np.ndarray
    piece_b: np.ndarray
    line_at: np.ndarray
    lines_a: np.ndarray
    lines_b: np.ndarray
    rest_cuts: np.ndarray
    rest_a: np.ndarray
    rest_b: np.ndarray
    prompt_cuts: np.ndarray
    prompt_a: np.ndarray
    prompt_b: np.ndarray
    att_cut_at: np.ndarray
    att_cuts: np.ndarray
    att_piece_at: np.ndarray
    att_a: np.ndarray
    att_b: np.ndarray

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """(integers, floats): every array in one of two, found through the header slots
        above (what the compiled functions take: two arrays cross each call, not twenty)."""
        header = np.zeros(_HEADER, dtype=np.int64)
        header[K_KIND] = self.kind
        header[K_OWN] = int(self.fused_own)
        header[N_REST_CUTS] = len(self.rest_cuts)
        header[N_PROMPT_CUTS] = len(self.prompt_cuts)
        floats, at = [], 0
        for slot, name in enumerate(_FLOATS, start=B_PARAMS):
            header[slot] = at
            part = getattr(self, name)
            floats.append(part)
            at += len(part)
        ints, at = [header], _HEADER
        for slot, name in enumerate(_INTS, start=B_CUT_AT):
            header[slot] = at
            part = getattr(self, name)
            ints.append(part)
            at += len(part)
        return (
            np.concatenate(ints).astype(np.int64),
            np.concatenate(floats).astype(np.float64),
        )


def supported(model: StepModel) -> bool:
    """Whether `step_arrays` can pack `model` (speculative decoding stays in Python)."""
    return type(model) in (RooflineModel, KernelModel, LinearModel, FixedModel)


def _piecewise(f: Piecewise) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(f.cuts, dtype=np.float64),
        np.asarray(f.intercepts, dtype=np.float64),
        np.asarray(f.slopes, dtype=np.float64),
    )


def _flat(parts: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    at = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=at[1:])
    flat = np.array([x for p in parts for x in p], dtype=np.float64)
    return at, flat


def step_arrays(model: StepModel, max_batch: int) -> StepArrays:
    """`model` packed for batches 0 .. `max_batch` (batch 0 has no lines)."""
    empty = np.zeros(0, dtype=np.float64)
    rest = prompt = (empty, empty, empty)
    att_cuts: list[list[float]] = [[]]
    att_a: list[list[float]] = [[]]
    att_b: list[list[float]] = [[]]
    if isinstance(model, RooflineModel):
        c = model.__dict__
        a = model.arch
        q = 1.0 - a.experts_per_token / a.experts if c["_moe"] else 0.0
        params = [
            float(c["_moe"]), c["_dense_compute"], c["_dense_memory"], c["_expert_compute"],
            c["_expert_bytes"], c["_bandwidth"], q, c["_prefill_attention"],
            c["_communication_base"], c["_communication_per_token"], c["_fixed"],
            model.sequence_overhead, c["_kv_memory"], c["_decode_attention"],
        ]  # fmt: skip
        kind, own = ROOFLINE, True
    elif isinstance(model, KernelModel):
        params = [float(model._ranks)]
        rest = _piecewise(model._rest)
        prompt = _piecewise(model._prompt)
        for batch in range(1, max_batch + 1):
            f = model.attention(batch)
            att_cuts.append(list(f.cuts))
            att_a.append(list(f.intercepts))
            att_b.append(list(f.slopes))
        kind, own = KERNELS, True
    elif isinstance(model, LinearModel):
        params = [model.prefill_base, model.prefill_per_token]
        kind, own = LINEAR, False
    elif isinstance(model, FixedModel):
        params = [model.prefill_tokens_per_s]
        kind, own = FIXED, False
    else:
        raise TypeError(f"no arrays for {type(model).__name__}")
    cuts: list[list[float]] = [[]]
    pieces: list[list[tuple[float, float]]] = [[]]
    lines: list[list[tuple[float, float]]] = [[]]
    for batch in range(1, max_batch + 1):
        raw = model.decode_lines(batch)
        env_cuts, env_pieces = envelope(raw)
        cuts.append(list(env_cuts))
        pieces.append(list(env_pieces))
        lines.append(list(raw))
    cut_at, flat_cuts = _flat(cuts)
    piece_at, piece_a = _flat([[p[0] for p in ps] for ps in pieces])
    _, piece_b = _flat([[p[1] for p in ps] for ps in pieces])
    line_at, lines_a = _flat([[p[0] for p in ps] for ps in lines])
    _, lines_b = _flat([[p[1] for p in ps] for ps in lines])
    att_cut_at, att_flat = _flat(att_cuts)
    att_piece_at, att_flat_a = _flat(att_a)
    _, att_flat_b = _flat(att_b)
    return StepArrays(
        kind, own, np.array(params, dtype=np.float64),
        cut_at, flat_cuts, piece_at, piece_a, piece_b, line_at, lines_a, lines_b,
        *rest, *prompt, att_cut_at, att_flat, att_piece_at, att_flat_a, att_flat_b,
    )  # fmt: skip


def kv_capacity_float(model: StepModel) -> float:
    """The KV capacity as the float the compiled core compares with (exact below 2^53)."""
    capacity = model.kv_capacity_tokens
    return math.inf if capacity == math.inf else float(capacity)
