"""Tolerances computed from the sample, never copied from a seeded output."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Z = 5.0  # a correct model fails a single check with probability ~6e-7


def mean_tolerance(sample: np.ndarray, slack: float = 0.0) -> float:
    """Z standard errors of the sample mean (plus a stated slack for known bias)."""
    return Z * float(sample.std(ddof=1)) / math.sqrt(len(sample)) + slack


def batch_tolerance(
    sample: np.ndarray, statistic: Callable[[np.ndarray], float], batches: int = 40
) -> float:
    """Z standard errors of `statistic`, estimated from its spread over contiguous batches."""
    parts = np.array_split(sample, batches)
    values = np.array([statistic(p) for p in parts])
    # the full-sample statistic has ~1/batches the variance of one batch's
    return Z * float(values.std(ddof=1)) / math.sqrt(batches)


def cv(sample: np.ndarray) -> float:
    return float(sample.std(ddof=1) / sample.mean())
