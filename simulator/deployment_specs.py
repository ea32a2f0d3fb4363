"""What a scenario may say about each deployment kind (the contract; behaviour lives in
`simulator/deployments/`). A new kind is a spec here, a module there and one registration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from simulator.spec import Spec
from simulator.units import Duration


class DeploymentSpec(Spec):
    """Fields every deployment has."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")


class RateLimit(Spec):
    """Provider limits as token buckets that refill continuously over a minute."""

    requests_per_min: float | None = Field(default=None, gt=0)
    tokens_per_min: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _some(self) -> RateLimit:
        if self.requests_per_min is None and self.tokens_per_min is None:
            raise ValueError("give requests_per_min, tokens_per_min or both")
        return self


class ServerlessSpec(DeploymentSpec):
    """Pay per token; latency = ttft (+ input / prefill speed) + output / output speed."""

    kind: Literal["serverless"]
    ttft: Duration = Field(default=0.4, description="time to first token, before prefill")
    prefill_tokens_per_s: float | None = Field(default=None, gt=0)
    output_tokens_per_s: float = Field(default=80.0, gt=0)
    rate_limit: RateLimit | None = None
    on_limit: Literal["spill", "retry"] = "spill"


class BatchSpec(DeploymentSpec):
    """Asynchronous, discounted; a per-account queue processed at `tokens_per_s`."""

    kind: Literal["batch"]
    discount: float = Field(default=0.5, ge=0, lt=1)
    completion_window: Duration = Field(default=86400.0, gt=0)
    max_enqueued_tokens: float = Field(default=30e9, gt=0)
    tokens_per_s: float | None = Field(
        default=None,
        gt=0,
        description="processing rate; default max_enqueued_tokens / completion_window",
    )

    @property
    def processing_rate(self) -> float:
        """Tokens per second; by default the slowest rate at which a full queue meets the SLA."""
        if self.tokens_per_s is not None:
            return self.tokens_per_s
        return self.max_enqueued_tokens / self.completion_window


AnyDeploymentSpec = Annotated[ServerlessSpec | BatchSpec, Field(discriminator="kind")]
