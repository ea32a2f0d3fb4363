"""The scenario (format v1): models, workloads, deployments, horizon, seed — validated, frozen.

`simulator.scenario.loader` reads files into it; everything else reads it and never changes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from simulator.errors import ScenarioError
from simulator.scenario.deployments import AnyDeploymentSpec
from simulator.scenario.limits import MAX_DEPLOYMENTS
from simulator.scenario.spec import Price, PriceTier, Spec, TokenCount
from simulator.scenario.units import DEFAULT_MONTH_S, Duration, parse_share
from simulator.serving.architecture import Architecture
from simulator.serving.catalog import PriceCatalog, bundled_catalog
from simulator.serving.hardware import (
    architecture_names,
    config_architecture,
    find_architecture,
    find_gpu,
)
from simulator.traffic.arrivals import ArrivalSpec
from simulator.traffic.arrivals.diurnal import parse_clock
from simulator.traffic.distributions import TokenDist, TokenPairs

_SLO_KEY = re.compile(r"^(ttft|tpot|e2e|queue)_p(50|90|95|99|99\.9)$")
SLO_METRICS = ("ttft", "tpot", "e2e", "queue")


class ArchitectureSpec(Spec):
    """A model's shape for the roofline: `like` a bundled architecture, a Hugging Face
    `config` (a config.json, relative to the scenario), or given outright."""

    like: str | None = None
    config: str | None = None
    params_b: float | None = Field(default=None, gt=0, description="total parameters, billions")
    active_params_b: float | None = Field(default=None, gt=0, description="per token (MoE)")
    layers: int | None = Field(default=None, ge=1)
    hidden: int | None = Field(default=None, ge=1)
    attn_heads: int | None = Field(default=None, ge=1)
    kv_heads: int | None = Field(default=None, ge=1)
    head_dim: int | None = Field(default=None, ge=1)
    kv_bytes_per_token: float | None = Field(default=None, gt=0, description="BF16 KV cache")
    experts: int | None = Field(default=None, ge=0)
    experts_per_token: int | None = Field(default=None, ge=0)
    vocab: int | None = Field(
        default=None, ge=1, le=10_000_000, description="vocabulary size: the output head's rows"
    )

    @model_validator(mode="after")
    def _resolvable(self, info: ValidationInfo) -> ArchitectureSpec:
        resolved = self
        if self.config is not None:
            if self.like is not None:
                raise ValueError("give like or config, not both")
            base = (info.context or {}).get("base_dir")
            path = Path(self.config)
            if base is not None and not path.is_absolute():
                path = Path(base) / path
            resolved = self.model_copy(update={"config": str(path)})
        resolved.resolve("architecture")
        return resolved

    def resolve(self, name: str) -> Architecture:
        """The architecture: `like`'s, with any field given here replacing it."""
        given = {
            "total_params_b": self.params_b,
            "active_params_b": self.active_params_b,
            "layers": self.layers,
            "hidden": self.hidden,
            "attn_heads": self.attn_heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "kv_bytes_per_token_bf16": self.kv_bytes_per_token,
            "experts": self.experts,
            "experts_per_token": self.experts_per_token,
            "vocab": self.vocab,
        }
        overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if self.config is not None:
            from_config = config_architecture(self.config)
            return replace(from_config, name=f"{name} ({from_config.name})", **overrides)
        if self.like is not None:
            base = find_architecture(self.like)
            if base is None:
                raise ValueError(
                    f"like: unknown architecture {self.like!r} "
                    f"(known: {', '.join(architecture_names())})"
                )
            return replace(base, name=f"{name} ({base.name})", **overrides)
        required = ("total_params_b", "layers", "hidden", "kv_heads", "head_dim")
        missing = [k for k in required if k not in overrides]
        if missing:
            raise ValueError(
                "give like: NAME, or params_b, layers, hidden, kv_heads and head_dim "
                f"(missing: {', '.join(missing)})"
            )
        overrides.setdefault("active_params_b", overrides["total_params_b"])
        overrides.setdefault("attn_heads", overrides["kv_heads"])
        overrides.setdefault(
            "kv_bytes_per_token_bf16",
            2 * overrides["layers"] * overrides["kv_heads"] * overrides["head_dim"] * 2,
        )
        return Architecture(name=name, **overrides)


class ModelSpec(Spec):
    """An LLM: its serverless and batch prices, its context length and its architecture."""

    id: str | None = None
    price: Price | None = None
    batch_price: Price | None = None
    context_length: TokenCount | None = None
    architecture: ArchitectureSpec | None = None

    def resolved_architecture(self, name: str) -> Architecture | None:
        """The architecture given, or the bundled one the model's id names."""
        if self.architecture is not None:
            return self.architecture.resolve(name)
        if self.id is not None:
            return find_architecture(self.id)
        return None

    @model_validator(mode="after")
    def _resolve_from_catalog(self, info: ValidationInfo) -> ModelSpec:
        if self.price is not None and (self.context_length is not None or self.id is None):
            return self
        catalog: PriceCatalog = (info.context or {}).get("catalog") or bundled_catalog()
        if self.id is None:
            raise ValueError("give a price {input, output} (USD per 1M tokens) or a catalog id")
        entry = catalog.lookup(self.id)
        if entry is None:
            if self.price is not None:
                return self
            from simulator.serving.catalog import closest_ids

            near = closest_ids(catalog, self.id)
            hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
            raise ValueError(
                f"model id {self.id!r} is not in the price catalog ({catalog.source}); "
                "give price: {input, output} or see `capsim prices`." + hint
            )
        if self.price is None:  # the catalog's price is used: is it still offered?
            import datetime
            import warnings

            from simulator.errors import DeprecatedModelWarning

            notice = entry.deprecation_notice(datetime.date.today().isoformat(), catalog.source)
            if notice is not None:
                warnings.warn(notice, DeprecatedModelWarning, stacklevel=2)
        update: dict[str, Any] = {}
        if self.price is None:
            update["price"] = Price(
                input=entry.input_usd_per_1m,
                output=entry.output_usd_per_1m,
                cached_input=entry.cached_input_usd_per_1m,
                tiers=tuple(
                    PriceTier(above_input_tokens=a, input=i, output=o, cached_input=c)
                    for a, i, o, c in entry.tiers
                ),
            )
        if (
            self.batch_price is None
            and self.price is None
            and entry.batch_input_usd_per_1m is not None
            and entry.batch_output_usd_per_1m is not None
        ):
            update["batch_price"] = Price(
                input=entry.batch_input_usd_per_1m, output=entry.batch_output_usd_per_1m
            )
        if self.context_length is None and entry.context_length is not None:
            update["context_length"] = entry.context_length
        return self.model_copy(update=update)

    @property
    def serverless_price(self) -> Price:
        assert self.price is not None  # guaranteed by validation
        return self.price


@dataclass(frozen=True)
class SLOTarget:
    """One latency target: `metric` quantile `quantile` must be <= `target_s`."""

    key: str
    metric: str
    quantile: float
    target_s: float


class PrefixSpec(Spec):
    """Prompts of a group share their first `shared_tokens` tokens (a system prompt, a
    document, a conversation's history); each request belongs to one of `groups`, drawn
    uniformly. Prompts are cut into KV-cache blocks of `block_tokens`: only whole shared
    blocks can be cache hits."""

    shared_tokens: TokenCount
    groups: int = Field(default=1, ge=1, le=10_000)
    block_tokens: int = Field(default=512, ge=1, le=65_536)


class ImagesSpec(Spec):
    """Images in each request (document understanding, screenshots): converted to
    `tokens_per_image` input tokens each, as providers bill them and models read them.
    Image tokens are input tokens for prices, context limits and prefill; a dedicated
    replica of a model with a vision tower also runs its encoder over them."""

    per_request: int | TokenDist = Field(
        description="images a request: a number (0 or more) or a distribution of counts "
        "(>= 1), e.g. {dist: empirical, values: [1, 2, 5]}"
    )
    tokens_per_image: TokenCount = Field(
        description="input tokens an image becomes (Gemma 3: 256; Qwen2.5-VL: about "
        "width x height / 784; Llama 3.2 Vision: ~1,600 per 560-pixel tile)"
    )

    @field_validator("per_request")
    @classmethod
    def _count(cls, value: int | TokenDist) -> int | TokenDist:
        if isinstance(value, int) and not 0 <= value <= 1000:
            raise ValueError(f"expected 0 to 1,000 images a request, got {value:,}")
        return value

    def counts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Images in each of `n` requests."""
        if isinstance(self.per_request, int):
            return np.full(n, self.per_request, dtype=np.int64)
        return self.per_request.sample(rng, n)


class Workload(Spec):
    """A stream of requests of one model, with its traffic, SLO and route."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    model: str
    tags: dict[str, str] = Field(default_factory=dict)
    arrivals: ArrivalSpec
    input_tokens: TokenDist | None = None
    output_tokens: TokenDist | None = None
    token_pairs: TokenPairs | None = None
    token_correlation: float | None = Field(default=None, ge=-1, le=1)
    prefix: PrefixSpec | None = None
    images: ImagesSpec | None = Field(
        default=None,
        description="images in each request: {per_request, tokens_per_image}; their tokens "
        "are input tokens (prices, context, prefill, the vision encoder)",
    )
    slo: dict[str, Duration] = Field(
        default_factory=dict,
        description="latency targets (<metric>_p<q>: a duration), completion (batch), and "
        "availability: the share of arrived requests that must complete ('99.9%')",
        json_schema_extra={
            "properties": {
                "availability": {
                    "anyOf": [
                        {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        {"type": "string", "pattern": r"^\s*[0-9.]+\s*%\s*$"},
                    ],
                    "description": "share of arrived requests that complete: 0.999 or '99.9%'",
                }
            }
        },
    )
    route: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _token_lengths(self) -> Workload:
        if self.images is not None and self.arrivals.closed_loop:
            raise ValueError("images: not modeled for a closed loop's requests")
        if self.arrivals.carries_tokens:
            return self
        if self.token_pairs is not None:
            if self.input_tokens or self.output_tokens or self.token_correlation is not None:
                raise ValueError(
                    "token_pairs gives both lengths: drop input_tokens, output_tokens and "
                    "token_correlation"
                )
            return self
        missing = [k for k in ("input_tokens", "output_tokens") if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} required (or token_pairs, or a trace that carries "
                "token counts)"
            )
        return self

    @field_validator("slo", mode="before")
    @classmethod
    def _availability_share(cls, value: Any) -> Any:
        """`availability` is a share, not a duration: read it as one before the durations."""
        if isinstance(value, dict) and "availability" in value:
            try:
                share = parse_share(value["availability"])
            except ValueError as exc:
                raise ValueError(f"availability: {exc}") from None
            value = {**value, "availability": share}
        return value

    @field_validator("slo")
    @classmethod
    def _slo_keys(cls, value: dict[str, float]) -> dict[str, float]:
        for key in value:
            if key not in ("completion", "availability") and not _SLO_KEY.match(key):
                raise ValueError(
                    f"unknown SLO key {key!r}: use <metric>_p<q> with metric ttft, tpot, e2e "
                    "or queue and q 50, 90, 95, 99 or 99.9 (e.g. ttft_p95), completion, or "
                    "availability"
                )
        return value

    @property
    def availability_target(self) -> float | None:
        """The share of arrived requests that must complete (`slo.availability`), if set."""
        return self.slo.get("availability")

    def slo_targets(self) -> list[SLOTarget]:
        """The latency SLO as targets; `completion` (batch) applies to every request
        (quantile 1). `availability` is not a latency target (`availability_target`)."""
        targets = []
        for key, target in self.slo.items():
            if key == "availability":
                continue
            if key == "completion":
                targets.append(SLOTarget(key, "completion", 1.0, target))
            else:
                metric, q = key.split("_p")
                targets.append(SLOTarget(key, metric, float(q) / 100, target))
        return targets


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_start(value: str) -> float:
    """Seconds after Monday 00:00 from 'HH:MM' (a Monday) or 'ddd HH:MM' ('fri 09:30')."""
    parts = value.strip().lower().split()
    day = 0
    if len(parts) == 2 and parts[0][:3] in _WEEKDAYS:
        day = _WEEKDAYS.index(parts[0][:3])
        parts = parts[1:]
    if len(parts) != 1:
        raise ValueError(f"expected a start like '09:30' or 'fri 09:30', got {value!r}")
    return day * 86400.0 + parse_clock(parts[0])


class Scenario(Spec):
    """One scenario file, validated: the immutable input of every run."""

    name: str = Field(min_length=1)
    seed: int = Field(default=0, ge=0)
    horizon: Duration = Field(gt=0)
    month: Duration = Field(default=DEFAULT_MONTH_S, gt=0)
    replications: int = Field(default=1, ge=1, le=1000)
    warmup: Duration = 0.0
    start: str = Field(
        default="mon 00:00", description="weekday and time of day at t = 0, e.g. 'fri 09:30'"
    )
    catalog: str | None = None
    models: dict[str, ModelSpec] = Field(min_length=1)
    workloads: list[Workload] = Field(min_length=1)
    deployments: list[AnyDeploymentSpec] = Field(min_length=1, max_length=MAX_DEPLOYMENTS)

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        parse_start(value)
        return value

    @property
    def clock(self) -> float:
        """Seconds after Monday 00:00 at t = 0."""
        return parse_start(self.start)

    @model_validator(mode="after")
    def _cross_references(self) -> Scenario:
        problems = []
        if self.warmup >= self.horizon:
            problems.append(f"warmup ({self.warmup:g} s) must be shorter than the horizon")
        for kind, names in (
            ("workload", [w.name for w in self.workloads]),
            ("deployment", [d.name for d in self.deployments]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                problems.append(f"{kind} names must be unique; repeated: {', '.join(duplicates)}")
        deployment_names = {d.name for d in self.deployments}
        for w in self.workloads:
            if w.model not in self.models:
                problems.append(
                    f"workloads.{w.name}.model: {w.model!r} is not a model of this scenario "
                    f"(models: {', '.join(self.models)})"
                )
            repeated = sorted({e for e in w.route if w.route.count(e) > 1})
            if repeated:
                problems.append(
                    f"workloads.{w.name}.route: lists {', '.join(map(repr, repeated))} more "
                    "than once (a deployment that refused a request refuses it again)"
                )
            for entry in w.route:
                if entry not in deployment_names:
                    problems.append(
                        f"workloads.{w.name}.route: {entry!r} is not a deployment "
                        f"(deployments: {', '.join(sorted(deployment_names))})"
                    )
        problems += self._serving_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _serving_problems(self) -> list[str]:
        """Dedicated and cluster deployments: their model, its fit on the GPUs, the routes."""
        from simulator.scenario.deployments import DedicatedSpec, ServingSpec
        from simulator.serving.performance import build_step_model

        problems = []
        for d in self.deployments:
            if not isinstance(d, ServingSpec):
                continue
            where = f"deployments.{d.name}"
            if d.model not in self.models:
                problems.append(f"{where}.model: {d.model!r} is not a model of this scenario")
                continue
            arch = self.models[d.model].resolved_architecture(d.model)
            modeled = d.performance.model if d.performance is not None else "roofline"
            if arch is None and modeled in ("roofline", "kernels"):
                problems.append(
                    f"models.{d.model}.architecture: needed by {where}'s "
                    f"{modeled}; give "
                    f"{{like: NAME}} ({', '.join(architecture_names())}) or the shape, "
                    "or measured performance (fixed, table)"
                )
                continue
            sides = [(d, where, "price_per_gpu_hour")]
            if isinstance(d, DedicatedSpec) and d.disaggregation is not None:
                sides.append(
                    (d.prefill_spec(), f"{where}.disaggregation", "prefill_price_per_gpu_hour")
                )
            for side, at, price_key in sides:
                try:
                    build_step_model(side, arch)
                except ValueError as exc:
                    problems.append(f"{at}: {exc}")
                except ScenarioError as exc:
                    problems.append(f"{at}.performance: {exc}")
                gpu = find_gpu(side.gpu)
                if (
                    side.gpu_hour_price() is None
                    and gpu is not None
                    and gpu.usd_per_gpu_hour is None
                ):
                    problems.append(f"{at}.{price_key}: no bundled price for {gpu.name}; set one")
            for w in self.workloads:
                if d.name in w.route and w.model != d.model:
                    problems.append(
                        f"workloads.{w.name}.route: {d.name!r} serves model {d.model!r}, "
                        f"not {w.model!r}"
                    )
        return problems

    def workload(self, name: str) -> Workload:
        return next(w for w in self.workloads if w.name == name)

    def expected_requests(self) -> float:
        """Mean number of arrivals over the horizon in one replication."""
        return sum(w.arrivals.expected(self.horizon) for w in self.workloads)

    def timer_work(self) -> list[tuple[str, float]]:
        """The work of one replication besides its requests, by the field that causes it:
        random draws of the arrival processes beyond their arrivals (thinning candidates,
        state switches) and the autoscalers' evaluations."""
        from simulator.scenario.deployments import AutoscaleSpec, DedicatedSpec

        work = []
        for w in self.workloads:
            extra = w.arrivals.draws(self.horizon) - w.arrivals.expected(self.horizon)
            if extra > 0:
                work.append((f"workloads.{w.name}.arrivals", extra))
        for d in self.deployments:
            if isinstance(d, DedicatedSpec) and isinstance(d.replicas, AutoscaleSpec):
                work.append(
                    (f"deployments.{d.name}.replicas.interval", self.horizon / d.replicas.interval)
                )
        return work
