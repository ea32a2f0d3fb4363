"""What a scenario may say about each deployment kind (the contract; behaviour lives in
`simulator/deployments/`). A new kind is a spec here, a module there and one registration."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from simulator.scenario.limits import (
    MAX_CLUSTER_GPUS,
    MAX_REPLICAS,
    MAX_TOKENS,
    MAX_TOKENS_PER_S,
    MAX_USD_PER_GPU_HOUR,
)
from simulator.scenario.spec import Price, Spec, TokenCount
from simulator.scenario.units import Duration


class DeploymentSpec(Spec):
    """Fields every deployment has."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")


class RateLimit(Spec):
    """Provider limits as token buckets that refill continuously over a minute."""

    requests_per_min: float | None = Field(default=None, ge=1e-3, le=1e12)
    tokens_per_min: float | None = Field(default=None, ge=1e-3, le=1e15)

    @model_validator(mode="after")
    def _some(self) -> RateLimit:
        if self.requests_per_min is None and self.tokens_per_min is None:
            raise ValueError("give requests_per_min, tokens_per_min or both")
        return self


class ServerlessSpec(DeploymentSpec):
    """Pay per token; latency = ttft (+ input / prefill speed) + output / output speed."""

    kind: Literal["serverless"]
    ttft: Duration = Field(default=0.4, le=86400, description="time to first token, before prefill")
    prefill_tokens_per_s: float | None = Field(default=None, ge=1e-2, le=MAX_TOKENS_PER_S)
    output_tokens_per_s: float = Field(default=80.0, ge=1e-2, le=MAX_TOKENS_PER_S)
    rate_limit: RateLimit | None = None
    on_limit: Literal["spill", "retry"] = "spill"
    price: Price | None = Field(
        default=None,
        description="this provider's USD per 1M tokens, instead of the model's (a second "
        "provider's overflow is billed at its own price)",
    )
    prompt_cache_ttl: Duration = Field(
        default=300.0,
        le=86400 * 30,
        description="how long the provider keeps a prompt prefix cached after its last use "
        "(with a cached_input price and prompts' block ids)",
    )


class BatchSpec(DeploymentSpec):
    """Asynchronous, discounted; a per-account queue processed at `tokens_per_s`."""

    kind: Literal["batch"]
    discount: float = Field(default=0.5, ge=0, lt=1)
    completion_window: Duration = Field(default=86400.0, gt=0)
    max_enqueued_tokens: float = Field(default=30e9, gt=0, le=1e15)
    tokens_per_s: float | None = Field(
        default=None,
        ge=1e-2,
        le=MAX_TOKENS_PER_S,
        description="processing rate; default max_enqueued_tokens / completion_window",
    )

    @property
    def processing_rate(self) -> float:
        """Tokens per second; by default the slowest rate at which a full queue meets the SLA."""
        if self.tokens_per_s is not None:
            return self.tokens_per_s
        return self.max_enqueued_tokens / self.completion_window


# the memory model's settings, shared by the roofline and the measured kernels
KvPrecision = Annotated[
    Literal["bf16", "fp8"] | None,
    Field(description="KV-cache precision; default fp8 with fp8/fp4 weights"),
]
MemoryFraction = Annotated[
    float,
    Field(
        gt=0,
        le=1,
        description="share of the memory left after weights and activations that holds the "
        "KV cache (TensorRT-LLM's kv_cache_free_gpu_mem_fraction)",
    ),
]
ActivationReserve = Annotated[
    float | None,
    Field(
        ge=0,
        le=1000,
        description="GB per GPU kept for activations and workspace; default 1 GB + a forward "
        "pass of 8,192 tokens",
    ),
]


class RooflineSpec(Spec):
    """Step times from GPU specs and the model's architecture (see docs/model.md)."""

    model: Literal["roofline"]
    precision: Literal["bf16", "fp8", "fp4"] = "fp8"
    kv_precision: KvPrecision = None
    mfu: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="share of peak FLOP/s a GEMM reaches; default by precision (0.6 BF16 and "
        "FP8, 0.35 FP4), fitted on published measurements",
    )
    mbu: float = Field(default=0.7, gt=0, le=1, description="share of memory bandwidth")
    memory_fraction: MemoryFraction = 0.9
    activation_reserve_gb: ActivationReserve = None
    step_overhead: Duration = Field(default=0.0015, le=60, description="scheduler time per step")
    layer_overhead: Duration = Field(
        default=30e-6, le=1, description="kernel launch time per layer per step"
    )
    sequence_overhead: Duration = Field(
        default=5e-6, le=1, description="host time per sequence per step (sampling, scheduling)"
    )
    moe_efficiency: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="share of mfu the routed experts' grouped GEMMs reach (their weights "
        "are read at mbu)",
    )
    link_efficiency: float = Field(
        default=0.8, gt=0, le=1, description="share of link bandwidth an all-reduce reaches"
    )
    allreduce_latency: Duration | None = Field(
        default=None,
        le=60,
        description="per all-reduce (TP > 1); default 10 us over NVLink, 25 us over PCIe",
    )


class KernelsSpec(Spec):
    """Step times from GPU kernels measured per GPU, engine and engine version
    (aiconfigurator-core's database; see docs/model.md, "Measured kernels")."""

    model: Literal["kernels"]
    engine: Literal["trtllm", "vllm", "sglang"] = Field(
        default="trtllm", description="the serving engine whose kernels were measured"
    )
    engine_version: str = Field(
        default="latest",
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9.+_-]+$",
        description="latest (the database's current version for the GPU), or a version it "
        "lists (see `capsim probe --engine`)",
    )
    precision: Literal["bf16", "fp8", "fp4"] = "fp8"
    kv_precision: KvPrecision = None
    memory_fraction: MemoryFraction = 0.9
    activation_reserve_gb: ActivationReserve = None


class FixedPerformanceSpec(Spec):
    """Constant speeds: for tests and for checking the engine against queueing theory."""

    model: Literal["fixed"]
    prefill_tokens_per_s: float = Field(ge=1e-2, le=MAX_TOKENS_PER_S)
    tpot: Duration = Field(ge=1e-6, le=3600)
    kv_capacity_tokens: float | None = Field(default=None, gt=0, le=1e12)


class TablePerformanceSpec(Spec):
    """Step times fitted from measurements: a CSV of step times or vLLM `bench serve` JSON."""

    model: Literal["table"]
    path: str
    kv_capacity_tokens: float | None = Field(default=None, gt=0, le=1e12)

    @model_validator(mode="after")
    def _relative_to_scenario(self, info: ValidationInfo) -> TablePerformanceSpec:
        base = (info.context or {}).get("base_dir")
        path = Path(self.path)
        if base is not None and not path.is_absolute():
            return self.model_copy(update={"path": str(Path(base) / path)})
        return self


PerformanceSpec = Annotated[
    RooflineSpec | KernelsSpec | FixedPerformanceSpec | TablePerformanceSpec,
    Field(discriminator="model"),
]


class AutoscaleSpec(Spec):
    """Replicas between min and max, sized so in-flight requests stay near the target."""

    min: int = Field(ge=0, le=MAX_REPLICAS)
    max: int = Field(ge=1, le=MAX_REPLICAS)
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    scale_up_delay: Duration = Field(default=300.0, description="from decision to serving")
    scale_down_delay: Duration = Field(default=1800.0, description="low load this long")
    interval: Duration = Field(default=60.0, gt=0, description="how often load is evaluated")

    @model_validator(mode="after")
    def _ordered(self) -> AutoscaleSpec:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be >= min ({self.min})")
        return self


class SpeculativeSpec(Spec):
    """Speculative decoding: a draft proposes `draft_tokens` tokens a step, the target checks
    them in one pass and keeps each (in order) with probability `acceptance_rate`. The draft
    is a bundled architecture (`draft: llama-3.2-1b`, say), or by default an EAGLE-style head:
    one decoder layer of the target."""

    draft_tokens: int = Field(ge=1, le=16)
    acceptance_rate: float = Field(ge=0, le=0.99)
    draft: str | None = Field(default=None, description="a bundled architecture name")


class BillingSpec(Spec):
    """A commitment for reserved capacity: its rate per GPU-hour (instead of the list price),
    its term, and a monthly minimum charged when the GPU-hours used cost less."""

    term_months: int = Field(default=12, ge=1, le=120)
    price_per_gpu_hour: float | None = Field(default=None, ge=0, le=MAX_USD_PER_GPU_HOUR)
    minimum_monthly_usd: float = Field(default=0.0, ge=0, le=1e10)


# Published failure rate: Meta's Llama 3 405B pre-training ("The Llama 3 Herd of Models",
# 2024, section 3.3.4): 419 unexpected interruptions in a 54-day snapshot on 16,384 H100s,
# 78% of them hardware (GPUs, HBM3, hosts, network). Any one stops a replica: its mean time
# between failures is this many GPU-seconds over its GPUs.
GPU_SECONDS_BETWEEN_FAILURES = 16_384 * 54 * 86_400 / 419  # ~2,112 GPU-days
DEFAULT_REPAIR_S = 1800.0  # a replacement scheduled and the weights reloaded (assumed)


class FailuresSpec(Spec):
    """Replicas fail and come back: up times exponential with mean `mtbf`, down times
    exponential with mean `repair` (availability mtbf / (mtbf + repair)). A failed replica
    stops; the requests it held are retried from scratch (on this deployment's other
    replicas, then the rest of their route) or lost once retried `retries` times."""

    mtbf: Duration | None = Field(
        default=None,
        gt=0,
        le=1e12,
        description="mean time between a replica's failures; default: the Llama 3 "
        "training fleet's rate (~2,112 GPU-days per interruption) over its GPUs",
    )
    repair: Duration = Field(
        default=DEFAULT_REPAIR_S,
        ge=0,
        le=1e9,
        description="mean time to bring a failed replica back (0: failures cost nothing, "
        "as if off); default 30m",
    )
    retries: int = Field(
        default=1, ge=0, le=100, description="times a request is retried before it is lost"
    )

    def mean_up_seconds(self, gpus_per_replica: int) -> float:
        return (
            self.mtbf
            if self.mtbf is not None
            else (GPU_SECONDS_BETWEEN_FAILURES / gpus_per_replica)
        )


class DisaggregationSpec(Spec):
    """Prefill/decode disaggregation (DistServe, Splitwise, NVIDIA Dynamo, llm-d): prompts
    are prefilled on replicas of their own, each prompt's KV cache is then sent over the
    network to the deployment's replicas, which only decode. Each side has its GPU type and
    count, billed like the deployment's."""

    prefill_replicas: int = Field(
        ge=1, le=MAX_REPLICAS, description="reserved replicas that only prefill prompts"
    )
    prefill_gpu: str | None = Field(default=None, description="default: the deployment's GPU")
    prefill_gpus_per_replica: int | None = Field(
        default=None, ge=1, le=64, description="default: the deployment's gpus_per_replica"
    )
    prefill_price_per_gpu_hour: float | None = Field(
        default=None,
        ge=0,
        le=MAX_USD_PER_GPU_HOUR,
        description="default: the deployment's price if the GPU is the same, else the catalog's",
    )
    prefill_max_batch: int = Field(
        default=256, ge=1, le=100_000, description="prompts a prefill replica runs in one step"
    )
    prefill_max_tokens: int = Field(
        default=16_384,
        ge=1,
        le=MAX_TOKENS,
        description="prompt tokens a prefill replica runs in one step (a longer prompt runs "
        "alone), as a prefill engine's token budget",
    )
    kv_transfer_gb_per_s: float = Field(
        default=50.0,
        gt=0,
        le=100_000,
        description="GB/s each GPU sends the KV cache at (default 50: a 400 Gb/s NIC per GPU, "
        "RDMA between nodes); the smaller side's GPUs send in parallel",
    )
    kv_transfer_latency: Duration = Field(
        default=0.001, le=60, description="a transfer's fixed time (handshake, first byte)"
    )

    @field_validator("prefill_gpu")
    @classmethod
    def _known_gpu(cls, value: str | None) -> str | None:
        from simulator.serving.hardware import find_gpu, gpu_names

        if value is not None and find_gpu(value) is None:
            raise ValueError(f"unknown GPU {value!r} (known: {', '.join(gpu_names())})")
        return value


class ServingSpec(DeploymentSpec):
    """What dedicated endpoints and clusters share: replicas of one model on GPUs."""

    model: str
    gpu: str
    gpus_per_replica: int = Field(default=1, ge=1, le=64)
    price_per_gpu_hour: float | None = Field(default=None, ge=0, le=MAX_USD_PER_GPU_HOUR)
    max_batch: int = Field(default=256, ge=1, le=100_000)
    max_queue: int | None = Field(default=None, ge=0, le=100_000_000)
    max_input_tokens: TokenCount | None = Field(
        default=None,
        description="length-based routing: prompts longer than this pass to the next entry "
        "of their route (a pool for short prompts before one for long ones)",
    )
    chunked_prefill: bool = Field(
        default=False, description="prefill in chunks inside decode steps (vLLM-style)"
    )
    kv_admission: Literal["reserve", "optimistic"] = Field(
        default="reserve",
        description="reserve: a request's whole KV cache (input + output) at admission "
        "(TensorRT-LLM's guaranteed-no-evict); optimistic: admit on the prompt's KV and "
        "preempt the newest sequence, to be recomputed, when memory runs out (vLLM)",
    )
    prefill: Literal["fused", "separate"] = Field(
        default="fused",
        description="without chunked prefill, how admitted prompts are prefilled: fused, "
        "in the batch's next step, which also decodes a token for every running sequence "
        "(TensorRT-LLM's in-flight batching); separate, in a step of their own while the "
        "batch waits (vLLM V0, SGLang's default)",
    )
    prefix_caching: bool = Field(
        default=False,
        description="keep earlier prompts' KV blocks (LRU, within the KV capacity): a "
        "prompt whose leading blocks are cached prefills only the rest",
    )
    prefix_routing: bool = Field(
        default=False,
        description="with prefix_caching: send a request to the replica holding the most of "
        "its prompt (cache-aware routing, as llm-d's and SGLang's routers)",
    )
    step_token_budget: int = Field(
        default=2048,
        ge=1,
        le=MAX_TOKENS,
        description="with chunked prefill: tokens a step may process",
    )
    performance: PerformanceSpec | None = Field(
        default=None,
        description="how a replica's step times are modeled; default: measured kernels "
        "(TensorRT-LLM, FP8) where they cover the GPU and model, else the roofline",
    )

    billing: BillingSpec | None = None
    speculative: SpeculativeSpec | None = None
    failures: FailuresSpec | None = Field(
        default=None, description="replicas fail and come back (off unless set)"
    )

    def gpu_hour_price(self) -> float | None:
        """USD per GPU-hour: the commitment's rate, else the deployment's, else None (the
        bundled price of the GPU applies)."""
        if self.billing is not None and self.billing.price_per_gpu_hour is not None:
            return self.billing.price_per_gpu_hour
        return self.price_per_gpu_hour

    @model_validator(mode="after")
    def _routing_needs_caching(self) -> ServingSpec:
        if self.prefix_routing and not self.prefix_caching:
            raise ValueError("prefix_routing routes by cached prompts: set prefix_caching too")
        if self.speculative is not None:
            if self.performance is not None and self.performance.model != "roofline":
                raise ValueError(
                    "speculative: modeled with the roofline (measured step times already "
                    "include whatever decoding the engine did)"
                )
            if self.chunked_prefill:
                raise ValueError("speculative: not modeled together with chunked_prefill")
        if self.kv_admission == "optimistic" and self.chunked_prefill:
            raise ValueError("kv_admission: optimistic is not modeled with chunked_prefill yet")
        if self.prefill == "separate" and self.chunked_prefill:
            raise ValueError(
                "prefill: separate pauses the batch for whole prompts; chunked_prefill "
                "mixes prompt chunks into the batch's steps (set one of the two)"
            )
        return self

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, value: str) -> str:
        from simulator.serving.hardware import find_gpu, gpu_names

        if find_gpu(value) is None:
            raise ValueError(f"unknown GPU {value!r} (known: {', '.join(gpu_names())})")
        return value


class DedicatedSpec(ServingSpec):
    """A dedicated endpoint: replicas billed per GPU-hour while up."""

    kind: Literal["dedicated"]
    replicas: int | AutoscaleSpec = 1
    disaggregation: DisaggregationSpec | None = Field(
        default=None,
        description="prefill on replicas of its own; `replicas` then only decode",
    )

    @field_validator("replicas")
    @classmethod
    def _some(cls, value: int | AutoscaleSpec) -> int | AutoscaleSpec:
        if isinstance(value, int) and value < 1:
            raise ValueError("replicas must be >= 1 (or {min, max, ...} to autoscale)")
        if isinstance(value, int) and value > MAX_REPLICAS:
            raise ValueError(f"replicas must be at most {MAX_REPLICAS:,}, got {value:,}")
        return value

    @model_validator(mode="after")
    def _commitment_is_reserved(self) -> DedicatedSpec:
        if self.billing is not None and isinstance(self.replicas, AutoscaleSpec):
            raise ValueError(
                "billing: a commitment reserves replicas; autoscaled ones are on demand"
            )
        if self.disaggregation is not None:
            unsupported = {
                "replicas": isinstance(self.replicas, AutoscaleSpec),
                "chunked_prefill": self.chunked_prefill,
                "kv_admission": self.kv_admission == "optimistic",
                "failures": self.failures is not None,
            }
            for key, present in unsupported.items():
                if present:
                    raise ValueError(
                        f"disaggregation: not modeled with {key} "
                        "(reserved replicas, whole prompts, reserve admission)"
                    )
        return self

    def with_replicas(self, replicas: int) -> DedicatedSpec:
        """The deployment with `replicas` reserved replicas; disaggregated, its prefill
        replicas scaled in the same ratio (rounded up)."""
        update: dict[str, object] = {"replicas": replicas}
        d = self.disaggregation
        if d is not None and isinstance(self.replicas, int):
            prefill = max(1, math.ceil(replicas * d.prefill_replicas / self.replicas - 1e-9))
            update["disaggregation"] = d.model_copy(update={"prefill_replicas": prefill})
        return self.model_copy(update=update)

    def prefill_spec(self) -> DedicatedSpec:
        """The prefill side of a disaggregated deployment, as a deployment of its own."""
        d = self.disaggregation
        assert d is not None
        gpu = d.prefill_gpu or self.gpu
        price = d.prefill_price_per_gpu_hour
        if price is None and gpu == self.gpu:
            price = self.gpu_hour_price()
        return self.model_copy(
            update={
                "name": f"{self.name} (prefill)",
                "gpu": gpu,
                "gpus_per_replica": d.prefill_gpus_per_replica or self.gpus_per_replica,
                "price_per_gpu_hour": price,
                "billing": None,
                "replicas": d.prefill_replicas,
                "max_batch": d.prefill_max_batch,
                "prefill": "separate",
                "speculative": None,
                "disaggregation": None,
            }
        )


class ClusterSpec(ServingSpec):
    """A reserved GPU cluster: all its GPUs billed for the horizon, plus monthly extras."""

    kind: Literal["gpu_cluster"]
    gpus: int = Field(ge=1, le=MAX_CLUSTER_GPUS)
    extras_per_month: float = Field(default=0.0, ge=0, le=1e9, description="storage, network: USD")

    @model_validator(mode="after")
    def _divisible(self) -> ClusterSpec:
        if self.gpus % self.gpus_per_replica:
            raise ValueError(
                f"gpus ({self.gpus}) must be a multiple of gpus_per_replica "
                f"({self.gpus_per_replica})"
            )
        return self

    @property
    def replicas(self) -> int:
        return self.gpus // self.gpus_per_replica


AnyDeploymentSpec = Annotated[
    ServerlessSpec | BatchSpec | DedicatedSpec | ClusterSpec, Field(discriminator="kind")
]
