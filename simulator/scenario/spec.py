"""The base of every scenario value: immutable, and unknown keys are errors."""

from __future__ import annotations

import itertools
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.scenario.limits import MAX_TOKENS, MAX_USD_PER_1M_TOKENS


def _numeric(annotation: Any) -> bool:
    """Whether a field takes numbers and not booleans (int, float, Annotated or unions of
    them; `bool` itself excluded)."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    args = get_args(annotation)
    if get_origin(annotation) is Annotated:
        return _numeric(args[0])
    if args and bool in args:
        return False
    return any(_numeric(a) for a in args)


_NUMERIC: dict[type, frozenset[str]] = {}


class Spec(BaseModel):
    """A validated, frozen piece of a scenario (typos in keys are rejected, and so are
    infinite and NaN numbers: no figure of a plan is infinite; nor is `true` a number, as
    pydantic would otherwise take it for 1, in the scenario or any file feeding it)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            names = _NUMERIC.get(cls)
            if names is None:
                names = _NUMERIC[cls] = frozenset(
                    field.alias or name
                    for name, field in cls.model_fields.items()
                    if _numeric(field.annotation)
                )
            for key, value in data.items():
                if isinstance(value, bool) and key in names:
                    raise ValueError(f"{key}: expected a number, got a boolean")
        return data


TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
"""Whole tokens of one request (a length, a cap, a context window)."""

TokenMean = Annotated[float, Field(gt=0, le=MAX_TOKENS)]
"""A mean length in tokens."""

UsdPer1M = Annotated[float, Field(ge=0, le=MAX_USD_PER_1M_TOKENS)]
"""A price in USD per 1M tokens."""


class PriceTier(Spec):
    """Long-context pricing: a request whose prompt is longer than `above_input_tokens`
    has all its tokens billed at these prices (as Gemini's and Claude's prices above
    128k / 200k prompt tokens, the LiteLLM map's `input_cost_per_token_above_200k_tokens`)."""

    above_input_tokens: TokenCount = Field(
        description="prompt tokens above which the tier's prices apply to the whole request"
    )
    input: UsdPer1M
    output: UsdPer1M
    cached_input: UsdPer1M | None = Field(
        default=None, description="default: the price's own cached_input"
    )


class Price(Spec):
    """USD per 1M tokens: input, output, (optional) input tokens read from the provider's
    prompt cache, and (optional) long-context tiers."""

    input: UsdPer1M
    output: UsdPer1M
    cached_input: UsdPer1M | None = None
    tiers: tuple[PriceTier, ...] = Field(
        default=(),
        max_length=16,
        description="prices for requests whose prompt is longer than a threshold "
        "(ascending thresholds); the longest threshold a prompt exceeds applies",
    )

    @model_validator(mode="after")
    def _ascending(self) -> Price:
        above = [t.above_input_tokens for t in self.tiers]
        if any(b <= a for a, b in itertools.pairwise(above)):
            raise ValueError(f"tiers: above_input_tokens must ascend, got {above}")
        return self

