"""Performance models of a replica from a GPU and an architecture: the roofline (datasheet
peaks times fitted efficiencies), speculative decoding over any of them, and
`build_step_model`, which makes the step model a deployment's `performance` names. The step
function they all give, and its closed-form arithmetic, is `simulator.serving.step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from simulator.scenario.deployments import (
    FixedPerformanceSpec,
    KernelsSpec,
    PerformanceSpec,
    RooflineSpec,
    ServingSpec,
    TablePerformanceSpec,
)
from simulator.serving import kernels
from simulator.serving.architecture import Architecture
from simulator.serving.hardware import (
    BYTES_PER_WEIGHT,
    GPU,
    find_architecture,
    find_gpu,
)
from simulator.serving.performance_table import fit_table
from simulator.serving.step import (
    FixedModel,
    Line,
    StepModel,
)

# The share of dense peak FLOP/s a GEMM reaches, by precision. This and the other defaults
# of RooflineSpec (mbu, overheads, MoE and link efficiencies) were fitted on the `fit` rows
# of benchmarks/calibration_points.csv, the rest held out (benchmarks/README.md). BF16 has
# no throughput point there: it takes FP8's share, as the same kernels reach it.
DEFAULT_MFU = {"bf16": 0.6, "fp8": 0.6, "fp4": 0.35}
# seconds per all-reduce: NCCL's small-message latency over NVLink, and through the host
# bridge or PCIe switch where GPUs have no NVLink
ALLREDUCE_LATENCY = {"nvlink": 10e-6, "pcie": 25e-6}
ACTIVATION_TOKENS = 8192  # tokens of one forward pass the engine reserves activations for


def allreduce_latency(gpu: GPU) -> float:
    """An all-reduce's latency on `gpu`'s interconnect (PCIe where it has no NVLink)."""
    link = gpu.interconnect.lower()
    pcie = link.startswith("pcie") and "nvlink bridge" not in link
    return ALLREDUCE_LATENCY["pcie" if pcie else "nvlink"]


def activation_reserve_bytes(arch: Architecture, tp: int) -> float:
    """Bytes a GPU keeps for activations and workspace, out of the KV cache's reach: 1 GB of
    context and workspace plus a forward pass of ACTIVATION_TOKENS tokens (about 16 bytes per
    token per hidden unit, split over the tensor-parallel GPUs), as engines profile it."""
    return 1e9 + ACTIVATION_TOKENS * arch.hidden * 16.0 / tp


@dataclass(frozen=True)
class RooflineModel:
    """Operator-level roofline of one replica: `tp` GPUs in tensor parallel.

    A step over T tokens runs its kernels in sequence, each bound by its own compute or
    memory time, and the step's time is their sum:

    - the dense GEMMs (attention projections, dense MLPs, shared experts, output head):
      max(2 x their parameters x T / (peak x mfu), their bytes / (bandwidth x mbu));
    - the routed experts' GEMMs: max(2 x active expert parameters x T / (peak x
      moe_efficiency), bytes of the experts the T tokens touch / bandwidth): grouped GEMMs
      of a few tokens an expert, routing and imbalance slow their FLOPs, not their reads;
    - attention over the KV cache: max(KV bytes / bandwidth, 4 x layers x heads x head size
      x queries / peak) per context token; prefill's causal attention is compute bound,
      2 x layers x heads x head size x (prompt length)^2;
    - two all-reduces a layer with TP > 1: ring, 2 (tp - 1) / tp of the activations over
      the link, plus a latency each;
    - a scheduler overhead a step, a launch overhead per layer, and an overhead per
      sequence (sampling, scheduling: what makes small models host-bound at large batch).

    For a fixed batch a decode step is one line in the batch's context tokens, so the
    engine's closed-form sums still apply.
    """

    arch: Architecture
    gpu: GPU
    tp: int
    precision: str
    kv_bytes_per_token: float
    mfu: float
    mbu: float
    step_overhead: float
    allreduce_latency: float
    kv_capacity_tokens: float
    layer_overhead: float = 0.0
    moe_efficiency: float = 1.0
    link_efficiency: float = 1.0
    sequence_overhead: float = 0.0

    def __post_init__(self) -> None:
        # per-batch decode lines are asked for at every event: remember them
        object.__setattr__(self, "_lines", {})
        object.__setattr__(self, "_mixed", {})
        a = self.arch
        per_weight = BYTES_PER_WEIGHT[self.precision]
        moe = a.experts > a.experts_per_token > 0
        dense_params = (a.shared_params_b if moe else a.total_params_b) * 1e9
        expert_params = a.expert_params_b * 1e9 if moe else 0.0
        flops, bandwidth = self.flops, self.bandwidth
        object.__setattr__(self, "_moe", moe)
        object.__setattr__(self, "_flops", flops)
        object.__setattr__(self, "_bandwidth", bandwidth)
        # dense GEMMs: compute seconds per token, memory seconds a step
        object.__setattr__(self, "_dense_compute", 2.0 * dense_params / flops)
        object.__setattr__(self, "_dense_memory", dense_params * per_weight / bandwidth)
        moe_eff = self.moe_efficiency
        object.__setattr__(
            self, "_expert_compute", 2.0 * a.experts_per_token * expert_params / flops / moe_eff
        )
        object.__setattr__(self, "_expert_bytes", a.experts * expert_params * per_weight)
        width = float(a.attn_heads * a.head_dim)
        object.__setattr__(self, "_prefill_attention", 2.0 * a.layers * width / flops)
        object.__setattr__(self, "_decode_attention", 4.0 * a.layers * width / flops)
        object.__setattr__(self, "_kv_memory", self.kv_bytes_per_token / bandwidth)
        object.__setattr__(self, "_fixed", self.step_overhead + a.layers * self.layer_overhead)
        # _communication(tokens) = base + per_token x tokens
        base = self._communication(0)
        object.__setattr__(self, "_communication_base", base)
        object.__setattr__(self, "_communication_per_token", self._communication(1) - base)

    @property
    def flops(self) -> float:
        return self.gpu.flops[self.precision] * self.tp * self.mfu

    @property
    def bandwidth(self) -> float:
        return self.gpu.bandwidth_bytes_per_s * self.tp * self.mbu

    def weight_bytes_read(self, tokens: int) -> float:
        """Bytes of weights a step over `tokens` tokens reads (MoE: the experts touched)."""
        c = self.__dict__
        dense = c["_dense_memory"] * c["_bandwidth"]
        if not c["_moe"]:
            return float(dense)
        return float(dense + c["_expert_bytes"] * self._touched(tokens))

    def head_time(self, tokens: int) -> float:
        """The output head over `tokens` tokens alone (vocab x hidden weights, bound by
        compute or by reading them), as an EAGLE-style draft runs it for every draft token;
        0 when the vocabulary is not known."""
        params = float(self.arch.vocab * self.arch.hidden)
        compute = 2.0 * params * tokens / self.flops
        memory = params * BYTES_PER_WEIGHT[self.precision] / self.bandwidth
        return compute if compute > memory else memory

    def _touched(self, tokens: int) -> float:
        """The expected share of experts `tokens` tokens route to (uniform routing)."""
        a = self.arch
        return float(1.0 - (1.0 - a.experts_per_token / a.experts) ** tokens)

    def _gemms(self, tokens: int) -> float:
        """The GEMMs of a step over `tokens` tokens: dense, then routed experts, each bound
        by compute or by reading its weights."""
        c = self.__dict__
        compute = c["_dense_compute"] * tokens
        memory = c["_dense_memory"]
        seconds = compute if compute > memory else memory
        if c["_moe"]:
            compute = c["_expert_compute"] * tokens
            memory = c["_expert_bytes"] * self._touched(tokens) / c["_bandwidth"]
            seconds += compute if compute > memory else memory
        return float(seconds)

    def _communication(self, tokens: int) -> float:
        if self.tp == 1:
            return 0.0
        payload = tokens * self.arch.hidden * 2.0  # bf16 activations
        link = self.gpu.link_bytes_per_s * self.link_efficiency
        ring = 2.0 * (self.tp - 1) / self.tp * payload / link
        return 2 * self.arch.layers * (self.allreduce_latency + ring)

    def prefill_time(self, tokens: int, squared_tokens: float) -> float:
        # asked for at every admission: the constants are computed once, in __post_init__,
        # and the dense GEMMs' bound is inlined (`_gemms` for MoE)
        c = self.__dict__
        if c["_moe"]:
            gemms = self._gemms(tokens)
        else:
            compute: float = c["_dense_compute"] * tokens
            memory: float = c["_dense_memory"]
            gemms = compute if compute > memory else memory
        seconds: float = (
            gemms
            + c["_prefill_attention"] * squared_tokens
            + c["_communication_base"]
            + c["_communication_per_token"] * tokens
            + c["_fixed"]
        )
        return seconds

    def fused_step_time(
        self, tokens: int, squared_tokens: float, batch: int, context: float
    ) -> float:
        """A step that prefills `tokens` prompt tokens and decodes a token for each of `batch`
        sequences holding `context` tokens (in-flight batching): one pass of GEMMs and
        communication over both, the prompts' causal attention, the batch's attention over
        its KV cache, the step's overheads once."""
        if not batch:
            return self.prefill_time(tokens, squared_tokens)
        c = self.__dict__
        memory = c["_kv_memory"]
        compute = c["_decode_attention"]
        total = tokens + batch
        if c["_moe"]:
            gemms = self._gemms(total)
        else:  # the dense GEMMs' bound inlined, as in prefill_time (asked for per group)
            dense: float = c["_dense_compute"] * total
            weights: float = c["_dense_memory"]
            gemms = dense if dense > weights else weights
        return float(
            gemms
            + c["_communication_base"]
            + c["_communication_per_token"] * total
            + c["_fixed"]
            + c["_prefill_attention"] * squared_tokens
            + self.sequence_overhead * batch
            + (memory if memory > compute else compute) * context
        )

    def decode_lines(self, batch: int) -> list[Line]:
        cache: dict[int, list[Line]] = self._lines  # type: ignore[attr-defined]
        lines = cache.get(batch)
        if lines is None:
            lines = cache[batch] = self._step_lines(batch, 1, batch)
        return lines

    def mixed_lines(self, batch: int, chunk: int) -> list[Line]:
        """A step that decodes `batch` sequences and prefills a `chunk` of prompt tokens:
        one pass of GEMMs over batch + chunk tokens, the decode attention over the batch's
        context, and the chunk's causal attention to itself (its attention to earlier
        chunks of the same prompt is left out)."""
        cache: dict[tuple[int, int], list[Line]] = self._mixed  # type: ignore[attr-defined]
        lines = cache.get((batch, chunk))
        if lines is None:
            a, b = self._step_lines(batch + chunk, 1, batch + (chunk > 0))[0]
            a += self.__dict__["_prefill_attention"] * float(chunk) * chunk
            lines = cache[batch, chunk] = [(a, b)]
        return lines

    def verify_lines(self, batch: int, per_sequence: int) -> list[Line]:
        """A step in which each of `batch` sequences runs `per_sequence` tokens (speculative
        verification): the weights are read once, each sequence's KV cache once, the FLOPs
        and the attention grow with the tokens."""
        return self._step_lines(batch * per_sequence, per_sequence, batch)

    def _step_lines(self, tokens: int, queries: int, sequences: int) -> list[Line]:
        """A step over `tokens` tokens of `sequences` sequences, each attending with
        `queries` of them to its context: the GEMMs, communication and overheads at context
        0, and per context token the attention, bound by reading the KV cache or by its
        FLOPs."""
        c = self.__dict__
        fixed = (
            self._gemms(tokens)
            + c["_communication_base"]
            + c["_communication_per_token"] * tokens
            + c["_fixed"]
            + self.sequence_overhead * sequences
        )
        memory = c["_kv_memory"]
        compute = c["_decode_attention"] * queries
        return [(fixed, memory if memory > compute else compute)]


def tokens_per_step(acceptance_rate: float, draft_tokens: int) -> float:
    """Tokens a sequence gains per speculative step: the first rejected draft token is
    replaced by the target's own, so (1 - a^(k+1)) / (1 - a) on average."""
    a, k = acceptance_rate, draft_tokens
    return (1.0 - a ** (k + 1)) / (1.0 - a)


@dataclass(frozen=True)
class SpeculativeModel:
    """Speculative decoding on a roofline replica. A step: the draft's k steps, then the
    target's verification of k + 1 tokens a sequence; it yields tokens_per_step tokens a
    sequence. The replica sees the step's time per token gained (both lines of the step
    divided by it), so a sequence's tokens keep coming one a "step": TPOT and throughput are
    right on average, the burstiness of accepted runs is not modeled. At small batch the
    step is memory bound and verification costs about one decode step: gains approach the
    tokens per step; as the batch grows the FLOPs of k + 1 tokens a sequence dominate and
    the gain shrinks, then turns into a loss."""

    target: RooflineModel
    draft: RooflineModel | None  # None: EAGLE-style, a decoder layer and the output head
    draft_tokens: int
    acceptance_rate: float
    kv_capacity_tokens: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lines", {})

    @property
    def tokens_per_step(self) -> float:
        return tokens_per_step(self.acceptance_rate, self.draft_tokens)

    def prefill_time(self, tokens: int, squared_tokens: float) -> float:
        draft = self.draft.prefill_time(tokens, squared_tokens) if self.draft else 0.0
        return self.target.prefill_time(tokens, squared_tokens) + draft

    def decode_lines(self, batch: int) -> list[Line]:
        cache: dict[int, list[Line]] = self._lines  # type: ignore[attr-defined]
        lines = cache.get(batch)
        if lines is None:
            k = self.draft_tokens
            verify = self.target.verify_lines(batch, k + 1)
            if self.draft is not None:
                step = self.draft.decode_lines(batch)
            else:  # a decoder layer's share of the step, then the output head
                layers = self.target.arch.layers
                head = self.target.head_time(batch)
                step = [(a / layers + head, b / layers) for a, b in self.target.decode_lines(batch)]
            drafting = [(k * a, k * b) for a, b in step]
            tau = self.tokens_per_step
            # max(verify) + max(drafting) is the max of every pairwise sum
            lines = cache[batch] = [
                ((a1 + a2) / tau, (b1 + b2) / tau) for a1, b1 in verify for a2, b2 in drafting
            ]
        return lines

    def mixed_lines(self, batch: int, chunk: int) -> list[Line]:
        raise NotImplementedError("speculative decoding is not modeled with chunked prefill")


def default_performance(
    gpu: str,
    gpus: int,
    arch: Architecture | None,
    precision: str = "fp8",
    engine: str | None = None,
    engine_version: str = "latest",
    speculative: bool = False,
) -> tuple[dict[str, str], str | None]:
    """The performance model a replica gets when none is given, as a scenario's
    `performance` mapping, and why it is the roofline (None when it is the kernels):
    measured kernels where the database covers the GPU, the architecture and the precision
    (`kernels.uncovered`), the roofline elsewhere — and where published measurements say the
    roofline is closer (docs/model.md, "Measured kernels"): Llama 4 models
    (`kernels.ROOFLINE_CLOSER`), and L40S replicas of more than one GPU, whose all-reduce
    over PCIe the database makes 53-83% too slow. With `engine` the kernels are asked for:
    ValueError when they cannot serve."""
    roofline = {"model": "roofline", "precision": precision}
    chosen = engine or kernels.DEFAULT_ENGINE
    reason = kernels.uncovered(gpu, arch, precision, chosen)
    if reason is None and speculative:
        reason = "speculative decoding is modeled with the roofline"
    found = find_gpu(gpu)
    if reason is None and engine is None and arch is not None:
        reason = kernels.ROOFLINE_CLOSER.get(kernels.catalog_name(arch) or "")
    if reason is None and found is not None and found.name == "L40S" and gpus > 1:
        reason = (
            "L40S over PCIe: the measured all-reduce is too slow against published "
            "throughput; the roofline is closer"
        )
        if engine is not None:  # asked for: the user's call
            reason = None
    if reason is None:  # covered on paper: the shape's every kernel must be measured too
        assert found is not None and arch is not None
        shape = kernels.Shape(
            model=kernels.catalog_name(arch) or arch.name,
            gpu=found.name,
            tp=gpus,
            precision=precision,
            kv_precision="bf16" if precision == "bf16" else "fp8",
            engine=chosen,
            engine_version=engine_version,
        )
        table = kernels.table_or_reason(shape)
        reason = table if isinstance(table, str) else None
    if reason is not None:
        if engine is not None:
            raise ValueError(f"engine {engine}: {reason}")
        return roofline, reason
    chosen_kernels = {
        "model": "kernels",
        "engine": chosen,
        "engine_version": engine_version,
        "precision": precision,
    }
    return chosen_kernels, None


def resolve_performance(
    spec: ServingSpec, arch: Architecture | None
) -> tuple[PerformanceSpec, str | None]:
    """The performance model that prices `spec`, and why it is the roofline when that was
    not asked for (None otherwise): the scenario's `performance` when given, else
    `default_performance` in FP8."""
    if spec.performance is not None:
        return spec.performance, None
    chosen, note = default_performance(
        spec.gpu, spec.gpus_per_replica, arch, speculative=spec.speculative is not None
    )
    if chosen["model"] == "kernels":
        return KernelsSpec.model_validate(chosen), None
    return RooflineSpec.model_validate(chosen), note


def performance_fields(
    spec: ServingSpec, arch: Architecture | None, model: StepModel
) -> dict[str, str | None]:
    """What priced a deployment, for its report row: `performance_model` (kernels, roofline,
    table, fixed), `engine` and `engine_version` (kernels only), and `performance_note`, why
    the default is the roofline here (None otherwise)."""
    perf, note = resolve_performance(spec, arch)
    target = model.target if isinstance(model, SpeculativeModel) else model
    return {
        "performance_model": perf.model,
        "engine": target.engine if isinstance(target, kernels.KernelModel) else None,
        "engine_version": (
            target.engine_version if isinstance(target, kernels.KernelModel) else None
        ),
        "performance_note": note,
    }


def kv_capacity(
    perf: RooflineSpec | KernelsSpec,
    arch: Architecture,
    gpu: GPU,
    tp: int,
    replicated: bool = False,
) -> tuple[float, float, float, float]:
    """KV-cache tokens one replica holds, with the KV bytes a token, the weights' bytes and
    the GPUs' free bytes after weights and activations: the weights, the activation
    reserve, then `memory_fraction` of the rest (as TensorRT-LLM sizes its cache). With
    attention data parallel (`replicated`), every GPU holds the weights other than the
    routed experts'."""
    kv_precision = perf.kv_precision or ("bf16" if perf.precision == "bf16" else "fp8")
    kv_bytes = arch.kv_bytes_per_token_bf16 * BYTES_PER_WEIGHT[kv_precision] / 2.0
    params = arch.total_params_b + (arch.shared_params_b * (tp - 1) if replicated else 0.0)
    weights = params * 1e9 * BYTES_PER_WEIGHT[perf.precision]
    reserve_gb = perf.activation_reserve_gb
    reserve = (activation_reserve_bytes(arch, tp) if reserve_gb is None else reserve_gb * 1e9) * tp
    free = gpu.memory_gb * 1e9 * tp - weights - reserve
    capacity = free * perf.memory_fraction / kv_bytes
    if capacity < 1:
        raise ValueError(
            f"{arch.name} in {perf.precision} needs {weights / 1e9:.0f} GB for its weights "
            f"and {reserve / 1e9:.0f} GB for activations; {tp} x {gpu.name} have "
            f"{gpu.memory_gb * tp:.0f} GB: use more GPUs per replica or a lower precision"
        )
    return capacity, kv_bytes, weights, free


def encoder_seconds_per_image_token(
    arch: Architecture, gpu: GPU, tp: int, precision: str, tokens_per_image: int, mfu: float
) -> float:
    """The vision encoder's seconds per image token on `tp` GPUs: a ViT over the image's
    patches (tokens x the patches a token stands for), its GEMMs (2 x parameters a patch)
    and its attention among the patches (4 x layers x width x patches^2), compute bound at
    `mfu`; 0 when the model has no vision tower."""
    if not arch.vision_layers or tokens_per_image <= 0:
        return 0.0
    patches = tokens_per_image * arch.vision_patches_per_token
    flops = 2.0 * arch.vision_params_b * 1e9 * patches
    flops += 4.0 * arch.vision_layers * arch.vision_hidden * patches * patches
    return flops / (gpu.flops[precision] * tp * mfu) / tokens_per_image


def build_step_model(
    spec: ServingSpec, arch: Architecture | None, base_dir: Path | None = None
) -> StepModel:
    """The performance model of one replica of `spec`; ValueError if the model cannot fit.

    Measured performance (`fixed`, `table`) needs no architecture: its KV capacity is
    `kv_capacity_tokens` when given, else unbounded. The roofline and the kernels need one."""
    perf, _ = resolve_performance(spec, arch)
    if isinstance(perf, FixedPerformanceSpec):
        return FixedModel(perf.prefill_tokens_per_s, perf.tpot, perf.kv_capacity_tokens or math.inf)
    if isinstance(perf, TablePerformanceSpec):
        return fit_table(Path(perf.path), perf.kv_capacity_tokens)
    if arch is None:
        raise ValueError(f"the {perf.model} model needs the model's architecture")
    gpu = find_gpu(spec.gpu)
    if gpu is None:
        raise ValueError(f"unknown GPU {spec.gpu!r}")
    if perf.precision not in gpu.flops:
        supported = ", ".join(gpu.flops)
        raise ValueError(
            f"performance.precision: {gpu.name} has no {perf.precision} tensor "
            f"cores (supported: {supported})"
        )
    tp = spec.gpus_per_replica
    capacity, kv_bytes, weights, free = kv_capacity(perf, arch, gpu, tp)
    if isinstance(perf, KernelsSpec):
        reason = kernels.uncovered(spec.gpu, arch, perf.precision, perf.engine)
        if reason is not None:
            raise ValueError(f"performance: kernels: {reason}; use model: roofline")
        shape = kernels.Shape(
            model=kernels.catalog_name(arch) or arch.name,
            gpu=gpu.name,
            tp=tp,
            precision=perf.precision,
            kv_precision=perf.kv_precision or ("bf16" if perf.precision == "bf16" else "fp8"),
            engine=perf.engine,
            engine_version=perf.engine_version,
        )
        table = kernels.kernel_table(shape)
        if table.layout == "dep":  # attention weights on every GPU: less room for KV
            capacity, kv_bytes, _, _ = kv_capacity(perf, arch, gpu, tp, replicated=True)
        return kernels.KernelModel(table, math.floor(capacity), perf.engine, kv_bytes)
    assert isinstance(perf, RooflineSpec)
    kv_precision = perf.kv_precision or ("bf16" if perf.precision == "bf16" else "fp8")
    target = RooflineModel(
        arch,
        gpu,
        tp,
        perf.precision,
        kv_bytes,
        perf.mfu if perf.mfu is not None else DEFAULT_MFU[perf.precision],
        perf.mbu,
        perf.step_overhead,
        perf.allreduce_latency if perf.allreduce_latency is not None else allreduce_latency(gpu),
        math.floor(capacity),
        perf.layer_overhead,
        perf.moe_efficiency,
        perf.link_efficiency,
        perf.sequence_overhead,
    )
    speculative = spec.speculative
    if speculative is None:
        return target
    draft = None
    draft_weights = weights / arch.layers  # an EAGLE-style head: one decoder layer
    draft_kv = kv_bytes / arch.layers
    if speculative.draft is not None:
        draft_arch = find_architecture(speculative.draft)
        if draft_arch is None:
            raise ValueError(f"speculative.draft: unknown architecture {speculative.draft!r}")
        draft_weights = draft_arch.total_params_b * 1e9 * BYTES_PER_WEIGHT[perf.precision]
        draft_kv = draft_arch.kv_bytes_per_token_bf16 * BYTES_PER_WEIGHT[kv_precision] / 2.0
        draft = RooflineModel(
            draft_arch, gpu, tp, perf.precision, draft_kv, target.mfu, target.mbu,
            0.0, target.allreduce_latency, math.inf, target.layer_overhead,
            target.moe_efficiency, target.link_efficiency, 0.0,
        )  # fmt: skip
    # the draft's weights, and its KV cache beside the target's for every token
    capacity = (free - draft_weights) * perf.memory_fraction / (kv_bytes + draft_kv)
    if capacity < 1:
        raise ValueError("speculative: the draft's weights leave no room for the KV cache")
    return SpeculativeModel(
        target,
        draft,
        speculative.draft_tokens,
        speculative.acceptance_rate,
        math.floor(capacity),
    )
