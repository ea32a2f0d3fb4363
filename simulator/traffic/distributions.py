"""Token-length distributions: what a scenario writes, how it samples, and its theory.

Each distribution draws from a continuous (or discrete) law, rounds to whole tokens,
floors at 1 and clips at the optional `max` (as a `max_tokens` cap clips an answer).
`mean()` is the capped law's exact mean before rounding; rounding to whole tokens moves it
by less than half a token (plus the mass below 0.5 lifted to 1). `cv()` is the uncapped law's
coefficient of variation.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from simulator.scenario.limits import MAX_TOKENS
from simulator.scenario.spec import Spec, TokenCount, TokenMean


class TokenDistribution(Spec):
    """Base of the token-length laws: whole tokens, at least 1, at most `max`."""

    max: TokenCount | None = Field(default=None, description="clip drawn values at this many")

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """The law's quantile function at probabilities `u` (before rounding and the cap)."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` whole-token values (int64, >= 1, <= max)."""
        return self.to_tokens(self._draw(rng, n))

    def sample_at(self, u: np.ndarray) -> np.ndarray:
        """Whole-token values at probabilities `u` (for correlated input/output draws)."""
        return self.to_tokens(self.quantile(u))

    def to_tokens(self, raw: np.ndarray) -> np.ndarray:
        """Round to whole tokens, floor at 1, clip at `max` (and at MAX_TOKENS: a heavy tail
        may draw beyond any context window)."""
        values: np.ndarray = np.rint(raw)
        np.maximum(values, 1, out=values)
        np.minimum(values, MAX_TOKENS if self.max is None else self.max, out=values)
        whole: np.ndarray = values.astype(np.int64)
        return whole

    def mean(self) -> float:
        """Analytic mean of the law, with the cap applied."""
        raise NotImplementedError

    def cv(self) -> float:
        """Coefficient of variation (std / mean) of the uncapped law."""
        raise NotImplementedError


class Fixed(TokenDistribution):
    """Every request has the same length."""

    dist: Literal["fixed"]
    value: TokenCount

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))

    def quantile(self, u: np.ndarray) -> np.ndarray:
        return np.full(len(u), float(self.value))

    def mean(self) -> float:
        return float(min(self.value, self.max or self.value))

    def cv(self) -> float:
        return 0.0


class Exponential(TokenDistribution):
    """Memoryless lengths (cv = 1)."""

    dist: Literal["exponential"]
    mean_: TokenMean = Field(alias="mean")

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(rng.exponential(self.mean_, n), dtype=np.float64)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        values: np.ndarray = -self.mean_ * np.log1p(-u)
        return values

    def mean(self) -> float:
        if self.max is None:
            return self.mean_
        return self.mean_ * (1.0 - math.exp(-self.max / self.mean_))

    def cv(self) -> float:
        return 1.0


class Lognormal(TokenDistribution):
    """Right-skewed lengths given by their mean and coefficient of variation."""

    dist: Literal["lognormal"]
    mean_: TokenMean = Field(alias="mean")
    cv_: float = Field(alias="cv", gt=0, le=100)

    @property
    def sigma(self) -> float:
        return math.sqrt(math.log1p(self.cv_**2))

    @property
    def mu(self) -> float:
        return math.log(self.mean_) - self.sigma**2 / 2

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(rng.lognormal(self.mu, self.sigma, n), dtype=np.float64)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        from scipy.special import ndtri  # scipy loads where used: start-up stays fast

        values: np.ndarray = np.exp(self.mu + self.sigma * ndtri(u))
        return values

    def mean(self) -> float:
        if self.max is None:
            return self.mean_
        s, m, cap = self.sigma, self.mu, float(self.max)
        from scipy.special import ndtr

        below = self.mean_ * ndtr((math.log(cap) - m - s * s) / s)
        above = cap * (1.0 - ndtr((math.log(cap) - m) / s))
        return float(below + above)

    def cv(self) -> float:
        return self.cv_


class Uniform(TokenDistribution):
    """Whole numbers equally likely between `low` and `high`, both included."""

    dist: Literal["uniform"]
    low: TokenCount
    high: TokenCount

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high + 1, n).astype(np.float64)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        width = self.high - self.low + 1
        values: np.ndarray = self.low + np.minimum(np.floor(u * width), width - 1)
        return values

    def _support(self) -> np.ndarray:
        return np.arange(self.low, self.high + 1, dtype=np.float64)

    def mean(self) -> float:
        if self.max is None or self.max >= self.high:
            return (self.low + self.high) / 2
        return float(np.minimum(self._support(), self.max).mean())

    def cv(self) -> float:
        width = self.high - self.low + 1
        return math.sqrt((width**2 - 1) / 12) / ((self.low + self.high) / 2)


class Empirical(TokenDistribution):
    """Lengths drawn from observed values, optionally weighted."""

    dist: Literal["empirical"]
    values: list[TokenCount] = Field(min_length=1, max_length=1_000_000)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Empirical:
        if any(v < 1 for v in self.values):
            raise ValueError("every value must be a whole number of tokens >= 1")
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"weights has {len(self.weights)} entries, values has {len(self.values)}"
                )
            if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be finite, >= 0 and not all zero")
        return self

    def _probabilities(self) -> np.ndarray:
        if self.weights is None:
            return np.full(len(self.values), 1.0 / len(self.values))
        w = np.asarray(self.weights, dtype=np.float64)
        normalized: np.ndarray = w / w.sum()
        return normalized

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = np.asarray(self.values, dtype=np.float64)
        picks: np.ndarray = values[rng.choice(len(values), size=n, p=self._probabilities())]
        return picks

    def quantile(self, u: np.ndarray) -> np.ndarray:
        order = np.argsort(self.values, kind="stable")
        values = np.asarray(self.values, dtype=np.float64)[order]
        cumulative = np.cumsum(self._probabilities()[order])
        index = np.minimum(np.searchsorted(cumulative, u, side="right"), len(values) - 1)
        picked: np.ndarray = values[index]
        return picked

    def mean(self) -> float:
        values = np.asarray(self.values, dtype=np.float64)
        if self.max is not None:
            values = np.minimum(values, self.max)
        return float(values @ self._probabilities())

    def cv(self) -> float:
        values = np.asarray(self.values, dtype=np.float64)
        p = self._probabilities()
        mean = float(values @ p)
        return math.sqrt(float(((values - mean) ** 2) @ p)) / mean


TOKEN_DISTRIBUTIONS: tuple[type[TokenDistribution], ...] = (
    Fixed,
    Exponential,
    Lognormal,
    Uniform,
    Empirical,
)
"""Registered token-length laws; a new one is a class above plus an entry here."""

TokenDist = Annotated[
    Fixed | Exponential | Lognormal | Uniform | Empirical,
    Field(discriminator="dist"),
]


class TokenPairs(Spec):
    """Input and output lengths drawn together from observed pairs (keeps their correlation)."""

    pairs: list[tuple[TokenCount, TokenCount]] = Field(min_length=1, max_length=1_000_000)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TokenPairs:
        if any(a < 1 or b < 1 for a, b in self.pairs):
            raise ValueError("every pair must be [input, output] with whole numbers >= 1")
        if self.weights is not None:
            if len(self.weights) != len(self.pairs):
                raise ValueError(
                    f"weights has {len(self.weights)} entries, pairs has {len(self.pairs)}"
                )
            if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be finite, >= 0 and not all zero")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = np.asarray(self.pairs, dtype=np.int64)
        p = None
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            p = w / w.sum()
        picks = rng.choice(len(pairs), size=n, p=p)
        return pairs[picks, 0], pairs[picks, 1]
