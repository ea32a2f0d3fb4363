"""The base of every scenario value: immutable, and unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Spec(BaseModel):
    """A validated, frozen piece of a scenario (typos in keys are rejected)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
