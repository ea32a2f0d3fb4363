"""The base of every scenario value: immutable, and unknown keys are errors."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from simulator.limits import MAX_TOKENS, MAX_USD_PER_1M_TOKENS


class Spec(BaseModel):
    """A validated, frozen piece of a scenario (typos in keys are rejected, and so are
    infinite and NaN numbers: no figure of a plan is infinite)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
"""Whole tokens of one request (a length, a cap, a context window)."""

TokenMean = Annotated[float, Field(gt=0, le=MAX_TOKENS)]
"""A mean length in tokens."""

UsdPer1M = Annotated[float, Field(ge=0, le=MAX_USD_PER_1M_TOKENS)]
"""A price in USD per 1M tokens."""


class Price(Spec):
    """USD per 1M tokens: input, output, and (optional) input tokens read from the
    provider's prompt cache."""

    input: UsdPer1M
    output: UsdPer1M
    cached_input: UsdPer1M | None = None
