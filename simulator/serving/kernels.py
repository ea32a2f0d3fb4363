"""The `kernels` performance model: a replica's step times from GPU kernels measured per GPU,
engine and engine version (NVIDIA's `aiconfigurator-core` database and estimator).

The estimator costs 3-440 us a call, far too slow for every simulated step, so each
deployment shape (model, GPU, GPUs a replica, precision, engine, version) is tabulated once
into array data (`KernelTable`): the step's non-attention time (GEMMs, communication, norms:
a function of the tokens in the step, whether prompt or decode tokens), one prompt's causal
attention by its length, and the decode attention of a batch by its size and context. A step
is composed from them (`KernelModel`): non-attention over all its tokens, plus the prompts'
attention, plus the batch's attention over its actual context — not one context for the
whole batch, as the estimator's own mixed step assumes. Tables are kept in memory for the
process and on disk (`cache_dir()`), keyed by the shape and the package's version; the
estimator is imported only when a table must be built, so start-up does not pay for it.
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from simulator.serving.architecture import Architecture
from simulator.serving.hardware import architecture_catalog, find_gpu
from simulator.serving.step import Line

PACKAGE = "aiconfigurator-core"
PACKAGE_VERSION = "0.12.0"  # pinned in pyproject.toml; the coverage below is this version's
ENGINES = ("trtllm", "vllm", "sglang")
# TensorRT-LLM by default: the published measurements the model is checked against are
# TensorRT-LLM's (docs/model.md, "Measured kernels"), NVIDIA NIM serves with it, and it has
# the database's newest data on every GPU it covers.
DEFAULT_ENGINE = "trtllm"

# capsim's GPU -> the database's system. A100-40GB (other bandwidth), the PCIe parts, L4,
# GH200 and AMD's GPUs have no measured data in it: the roofline serves them.
SYSTEMS = {
    "H100-SXM": "h100_sxm",
    "H200": "h200_sxm",
    "B200": "b200_sxm",
    "GB200": "gb200",
    "A100-80GB": "a100_sxm",
    "L40S": "l40s",
    "RTX-PRO-6000": "rtx_pro_6000_server",
}
# capsim's architecture -> the model config the package bundles (model_configs/)
MODELS = {
    "llama-3.1-8b": "meta-llama--Meta-Llama-3.1-8B",
    "llama-3.1-70b": "meta-llama--Meta-Llama-3.1-70B",
    "llama-3.1-405b": "meta-llama--Meta-Llama-3.1-405B",
    "mixtral-8x7b": "mistralai--Mixtral-8x7B-v0.1",
    "mixtral-8x22b": "mistralai--Mixtral-8x22B-v0.1",
    "qwen3-8b": "Qwen--Qwen3-8B",
    "qwen3-32b": "Qwen--Qwen3-32B",
    "qwen3-30b-a3b": "Qwen--Qwen3-30B-A3B",
    "qwen3-235b-a22b": "Qwen--Qwen3-235B-A22B",
    "llama-4-scout": "meta-llama--Llama-4-Scout-17B-16E-Instruct",
    "llama-4-maverick": "meta-llama--Llama-4-Maverick-17B-128E-Instruct",
    "deepseek-v3": "deepseek-ai--DeepSeek-V3",
}
# Where published measurements say the roofline is closer than the kernels, by evidence
# (benchmarks/README.md, "Measured kernels"): decided on the Llama 4 Scout rows of
# TensorRT-LLM's performance overview (median error 41% kernels, 22% roofline) and checked
# on the Maverick rows, which played no part (50% against 34%). The database's estimate of
# Llama 4's chunked attention and interleaved MoE layers is the likely cause.
ROOFLINE_CLOSER = {
    "llama-4-scout": "Llama 4: published throughput is closer to the roofline than to the "
    "measured kernels",
    "llama-4-maverick": "Llama 4: published throughput is closer to the roofline than to the "
    "measured kernels",
}
# GEMM precisions measured per (system, engine) in the 0.12.0 data (gemm_perf.parquet's
# gemm_dtype, capsim's names); MoE models also need their experts' precision measured.
_BLACKWELL = {"b200_sxm", "gb200", "rtx_pro_6000_server"}
_GEMM = {"bf16": "bfloat16", "fp8": "fp8", "fp4": "nvfp4"}
_MOE = {"bf16": "bfloat16", "fp8": "fp8", "fp4": "nvfp4"}
_SGLANG_MOE_FP8 = "fp8_block"  # SGLang's measured FP8 MoE kernels are block-scaled


def available() -> bool:
    """Whether the kernel database is installed (no wheel on some platforms)."""
    return importlib.util.find_spec("aiconfigurator_core") is not None


def catalog_name(arch: Architecture) -> str | None:
    """The bundled architecture `arch` is: the same shape (layers, widths, heads, experts,
    KV bytes, vocabulary) and parameters within 1% (a Hugging Face config of the model counts
    them from its shapes), or None."""
    shape = ("layers", "hidden", "attn_heads", "kv_heads", "head_dim", "experts",
             "experts_per_token", "kv_bytes_per_token_bf16", "vocab")  # fmt: skip
    for known in architecture_catalog().values():
        if all(getattr(arch, f) == getattr(known, f) for f in shape) and all(
            abs(getattr(arch, f) / getattr(known, f) - 1) <= 0.01
            for f in ("total_params_b", "active_params_b")
        ):
            return known.name
    return None


def uncovered(gpu: str, arch: Architecture | None, precision: str, engine: str) -> str | None:
    """Why the database cannot price this shape, or None when it can."""
    if not available():
        return f"{PACKAGE} is not installed on this platform"
    known = find_gpu(gpu)
    system = SYSTEMS.get(known.name) if known is not None else None
    if system is None:
        return f"no measured kernels for {gpu} (measured: {', '.join(SYSTEMS)})"
    name = catalog_name(arch) if arch is not None else None
    if name not in MODELS:
        return (
            "no measured-kernel model config for this architecture (covered: "
            + ", ".join(MODELS)
            + ")"
        )
    if precision == "fp4" and system not in _BLACKWELL:
        return f"no FP4 kernels on {known.name}"  # type: ignore[union-attr]
    if precision == "fp8" and system == "a100_sxm":
        return "the A100 has no FP8 kernels (use bf16)"
    moe = arch is not None and arch.experts > arch.experts_per_token > 0
    if moe and engine == "sglang" and system == "l40s" and precision == "fp8":
        return "no FP8 MoE kernels for SGLang on L40S"
    if moe and engine == "vllm" and system == "a100_sxm" and precision != "bf16":
        return "no quantized MoE kernels for vLLM on A100"
    return None


def resolve_version(gpu: str, engine: str, version: str) -> str:
    """The database's version for `version` ('latest', or a version it lists)."""
    from aiconfigurator_core.sdk.engine import _literal_backend_version

    known = find_gpu(gpu)
    assert known is not None
    system = SYSTEMS[known.name]
    asked = None if version == "latest" else version
    try:
        return str(_literal_backend_version(system, engine, asked, None, None))
    except Exception as exc:  # the package's own message names the versions it has
        where = f"{engine} on {known.name}"
        raise UnknownVersion(f"engine_version {version!r} for {where}: {exc}") from None


# --- tabulation ---------------------------------------------------------------------------

# tokens in a step: the non-attention time is tabulated at these, and one prompt's attention
TOKENS = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072,
          4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536, 98304,
          131072)  # fmt: skip
# decode: batch sizes, and each sequence's context tokens
BATCHES = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048)
CONTEXTS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
FORMAT = 4  # of the cached tables; bump when the tabulation changes
# a MoE replica of several GPUs: the layouts tried, in order. Expert parallel first: the
# closest on the published rows the roofline was fitted on (Qwen3-235B-A22B on 8 GPUs:
# median error 16.9% ep, 19.9% dep, 28.9% tp; benchmarks/README.md, "Measured kernels")
MOE_LAYOUTS = ("ep", "dep", "tp")


@dataclass(frozen=True)
class KernelTable:
    """A replica's step function as arrays (seconds): `non_attention[i]` for a step of
    `tokens[i]` tokens, `prefill_attention[i]` for one prompt of `tokens[i]` tokens, and
    `decode_attention[j, k]` for `batches[j]` sequences each holding `contexts[k]` tokens."""

    tokens: np.ndarray
    non_attention: np.ndarray
    prefill_attention: np.ndarray
    batches: np.ndarray
    contexts: np.ndarray
    decode_attention: np.ndarray
    engine_version: str
    # how the replica's GPUs split the model: tp (all of it tensor parallel), ep (MoE experts
    # expert parallel, attention tensor parallel), dep (experts expert parallel, attention
    # data parallel: each GPU a rank with its own share of the batch)
    layout: str = "tp"
    ranks: int = 1  # attention data-parallel ranks the batch is spread over (dep: the GPUs)


class UnknownVersion(ValueError):
    """An engine version the database does not list for the GPU."""


class KernelDataMissing(ValueError):
    """The database lacks a kernel this shape needs (the estimator refused it)."""


@dataclass(frozen=True)
class Shape:
    """What a table is measured for."""

    model: str  # the bundled architecture's name
    gpu: str  # capsim's GPU name
    tp: int
    precision: str
    kv_precision: str
    engine: str
    engine_version: str  # as asked ('latest' or a version)
    layout: str = "auto"  # or tp, ep, dep (KernelTable.layout)

    def key(self) -> str:
        text = json.dumps([FORMAT, PACKAGE_VERSION, *self.__dict__.values()])
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def cache_dir() -> Path | None:
    """Where tables are kept between runs: $CAPSIM_CACHE_DIR, else the user's cache folder;
    None when set to an empty string (no disk cache)."""
    given = os.environ.get("CAPSIM_CACHE_DIR")
    if given is not None:
        return Path(given) if given else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "capsim" / "kernels"


def compile_spec(shape: Shape, layout: str = "tp") -> tuple[bytes, str]:
    """The estimator's engine spec for `shape` (bytes, which worker processes can rebuild
    it from) and the engine version it resolved to, for a `layout` of the GPUs (see
    `KernelTable.layout`)."""
    import aiconfigurator_core
    from aiconfigurator_core.sdk.engine import compile_engine

    # its warnings (attention-lane defaults it lacks for an engine) are its own business
    logging.getLogger("aiconfigurator_core").setLevel(logging.ERROR)
    system = SYSTEMS[shape.gpu]
    version = resolve_version(shape.gpu, shape.engine, shape.engine_version)
    arch = architecture_catalog()[shape.model]
    moe = arch.experts > arch.experts_per_token > 0
    moe_quant = _MOE[shape.precision]
    if moe and shape.engine == "sglang" and moe_quant == "fp8":
        moe_quant = _SGLANG_MOE_FP8
    configs = Path(aiconfigurator_core.__file__).parent / "model_configs"
    with tempfile.TemporaryDirectory(prefix="capsim-kernels-") as folder:
        # a local folder, so the package never tries to download the config
        shutil.copy(configs / f"{MODELS[shape.model]}_config.json", Path(folder) / "config.json")
        spec = compile_engine(
            folder,
            system,
            shape.engine,
            version,
            tp_size=1 if layout == "dep" else shape.tp,
            attention_dp_size=shape.tp if layout == "dep" else 1,
            gemm_quant_mode=_GEMM[shape.precision],
            kvcache_quant_mode="bfloat16" if shape.kv_precision == "bf16" else "fp8",
            moe_quant_mode=moe_quant if moe else None,
            moe_tp_size=(shape.tp if layout == "tp" else 1) if moe else None,
            moe_ep_size=(1 if layout == "tp" else shape.tp) if moe else None,
        )
    return bytes(spec), version


def tabulate(spec: bytes, version: str, layout: str = "tp", ranks: int = 1) -> KernelTable:
    """Query the estimator built from `spec` over the grids (ms -> s); with attention data
    parallel (`ranks` > 1) the grids are one rank's tokens and batch."""
    import aiconfigurator_core

    engine = aiconfigurator_core.AicEngine.from_spec(spec, None)
    tokens = np.asarray(TOKENS, dtype=np.int64)
    non_attention = np.empty(len(tokens))
    prefill = np.empty(len(tokens))
    for i, t in enumerate(TOKENS):
        # one prompt of t tokens: (total, non-attention, prefill attention, decode attention)
        _, rest, attention, _ = engine.mixed_step_breakdown(t, 0, t, 2)
        non_attention[i], prefill[i] = rest / 1e3, attention / 1e3
    decode = np.empty((len(BATCHES), len(CONTEXTS)))
    for j, b in enumerate(BATCHES):
        for k, c in enumerate(CONTEXTS):
            # the estimator's decode context is isl + osl/2 + 1 for every sequence
            decode[j, k] = engine.mixed_step_breakdown(0, b, c - 2, 2)[3] / 1e3
    return KernelTable(
        tokens=tokens,
        non_attention=non_attention,
        prefill_attention=prefill,
        batches=np.asarray(BATCHES, dtype=np.int64),
        contexts=np.asarray(CONTEXTS, dtype=np.int64),
        decode_attention=decode,
        engine_version=version,
        layout=layout,
        ranks=ranks,
    )


def _read(path: Path) -> KernelTable | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return KernelTable(
                tokens=data["tokens"],
                non_attention=data["non_attention"],
                prefill_attention=data["prefill_attention"],
                batches=data["batches"],
                contexts=data["contexts"],
                decode_attention=data["decode_attention"],
                engine_version=str(data["engine_version"]),
                layout=str(data["layout"]),
                ranks=int(data["ranks"]),
            )
    except (OSError, KeyError, ValueError):
        return None


def _write(path: Path, table: KernelTable) -> None:
    """Write atomically (a reader never sees half a table); a cache that cannot be written
    is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            arrays: dict[str, Any] = {k: np.asarray(v) for k, v in table.__dict__.items()}
            np.savez(out, **arrays)
        os.replace(tmp, path)
    except OSError:
        return


def layouts(shape: Shape) -> list[str]:
    """How a replica's GPUs may split the model, in the order tried (`MOE_LAYOUTS` for a
    MoE model on several GPUs; the first the database has every kernel for wins). Dense
    models, and MoE on one GPU: tensor parallel only."""
    arch = architecture_catalog()[shape.model]
    moe = arch.experts > arch.experts_per_token > 0
    if shape.layout != "auto":
        return [shape.layout]
    return list(MOE_LAYOUTS) if moe and shape.tp > 1 else ["tp"]


@lru_cache(maxsize=64)
def kernel_table(shape: Shape) -> KernelTable:
    """The table of `shape`: from this process's memory, the disk cache, or built (the
    first layout the database has every kernel for); KernelDataMissing when none."""
    folder = cache_dir()
    path = folder / f"{shape.key()}.npz" if folder is not None else None
    if path is not None and path.exists():
        found = _read(path)
        if found is not None:
            return found
    problems = []
    for layout in layouts(shape):
        try:
            spec, version = compile_spec(shape, layout)
            table = tabulate(spec, version, layout, shape.tp if layout == "dep" else 1)
        except UnknownVersion:  # the user's to fix, whatever the layout
            raise
        except Exception as exc:  # the estimator's own errors: data it lacks for the shape
            problems.append(_short(exc))
            continue
        if path is not None:
            _write(path, table)
        return table
    raise KernelDataMissing(
        f"the kernel database lacks data for {shape.model} on {shape.tp} x {shape.gpu} "
        f"({shape.precision}, {shape.engine}): {'; '.join(dict.fromkeys(problems))}"
    )


def _short(exc: Exception) -> str:
    """The estimator's message without the installed package's paths."""
    text = str(exc).split(" at /")[0].strip().removeprefix("perf database error: ")
    return text[:160] or type(exc).__name__


@lru_cache(maxsize=64)
def table_or_reason(shape: Shape) -> KernelTable | str:
    """`kernel_table(shape)`, or why the database cannot give it."""
    try:
        return kernel_table(shape)
    except KernelDataMissing as exc:
        return str(exc)


# --- the step model -----------------------------------------------------------------------


class Piecewise:
    """A piecewise-linear function through tabulated points, extended linearly past either
    end, evaluated with one bisection (kept as cut points and a line per piece)."""

    __slots__ = ("cuts", "intercepts", "slopes")

    def __init__(self, xs: list[float], ys: list[float]) -> None:
        self.cuts = xs[1:-1]  # piece i covers [xs[i], xs[i+1]); the ends extend
        pairs = zip(xs, xs[1:], ys, ys[1:], strict=False)
        self.slopes = [(y1 - y0) / (x1 - x0) for x0, x1, y0, y1 in pairs]
        self.intercepts = [y - b * x for x, y, b in zip(xs, ys, self.slopes, strict=False)]

    def __call__(self, x: float) -> float:
        i = bisect.bisect_right(self.cuts, x)
        return self.intercepts[i] + self.slopes[i] * x


def _rising(values: np.ndarray) -> list[float]:
    """`values` (>= 0) made non-decreasing: each the largest of those before it."""
    return [float(x) for x in np.maximum.accumulate(np.maximum(values, 0.0))]


def _lower_hull(xs: list[float], ys: list[float]) -> list[tuple[float, float]]:
    """The points (x ascending) of the lower convex hull: the greatest convex function
    through or below the tabulated points, so that the maximum of its segments' lines is
    the function itself (a point above the hull is left out: the decode attention is not
    quite convex at small contexts, which costs at most ~3% of a step; docs/model.md)."""
    hull: list[tuple[float, float]] = []
    for x, y in zip(xs, ys, strict=True):
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (y1 - y0) * (x - x0) >= (y - y0) * (x1 - x0):  # hull[-1] on or above the chord
                hull.pop()
            else:
                break
        hull.append((x, y))
    return hull


class KernelModel:
    """A replica's step times from a `KernelTable` (see the module's docstring).

    A decode step of B sequences holding C tokens in all: non-attention(B) plus the batch's
    attention, tabulated at per-sequence contexts; between two of them it is a line in C,
    the lines of the tabulated points' lower convex hull, so the step is the maximum of
    those lines and the engine's closed-form sums apply."""

    def __init__(
        self,
        table: KernelTable,
        kv_capacity_tokens: float,
        engine: str,
        kv_bytes_per_token: float,
    ) -> None:
        self.table = table
        self.kv_capacity_tokens = kv_capacity_tokens
        self.engine = engine
        self.kv_bytes_per_token = kv_bytes_per_token  # what a disaggregated replica sends
        # more tokens never take less time: the measured tables' small dips (noise between
        # kernels of neighbouring sizes) are levelled, so that no step time falls as its
        # batch, prompt or context grows (the closed-form sums rely on it)
        tokens = [float(x) for x in table.tokens]
        self._rest = Piecewise(tokens, _rising(table.non_attention))
        # a prompt's attention grows as its length squared: per token, about linearly
        per_token = _rising(table.prefill_attention)
        self._prompt = Piecewise(tokens, [y / x for x, y in zip(tokens, per_token, strict=True)])
        self._batches = [float(x) for x in table.batches]
        self._ranks = max(1, int(table.ranks))
        self._attention: dict[int, Piecewise] = {}
        self._lines: dict[int, list[Line]] = {}
        self._mixed: dict[tuple[int, int], list[Line]] = {}

    def __reduce__(self) -> tuple[type[KernelModel], tuple[KernelTable, float, str, float]]:
        return (
            KernelModel,
            (self.table, self.kv_capacity_tokens, self.engine, self.kv_bytes_per_token),
        )

    @property
    def engine_version(self) -> str:
        return self.table.engine_version

    def non_attention(self, tokens: float) -> float:
        """GEMMs, communication and the rest of a step over `tokens` tokens (spread over
        the attention data-parallel ranks, if any)."""
        ranks = self._ranks
        if ranks == 1:
            return self._rest(tokens)
        return self._rest(max(tokens / ranks, min(tokens, 1.0)))  # the busiest rank's

    def prompt_attention(self, tokens: float, squared_tokens: float) -> float:
        """Causal attention of prompts of `tokens` tokens in all: as many prompts of the
        same length as the two sums give (exact for one prompt and for equal prompts), each
        interpolated per token (a prompt's attention per token is about linear in its
        length; interpolating the whole would overstate it between grid points)."""
        if tokens <= 0 or squared_tokens <= 0:
            return 0.0
        seconds = tokens * max(0.0, self._prompt(squared_tokens / tokens))
        if self._ranks > 1:  # the prompts spread over the ranks, one prompt on one rank
            seconds /= min(self._ranks, tokens * tokens / squared_tokens)
        return seconds

    def attention(self, batch: int) -> Piecewise:
        """The decode attention of `batch` sequences, a convex function of their context."""
        found = self._attention.get(batch)
        if found is None:
            t = self.table
            per_rank = max(1.0, batch / self._ranks)  # the busiest rank's sequences
            j = bisect.bisect_right(self._batches, per_rank)
            j = min(max(j, 1), len(self._batches) - 1)
            b0, b1 = self._batches[j - 1], self._batches[j]
            w = (per_rank - b0) / (b1 - b0)
            row = _rising((1 - w) * t.decode_attention[j - 1] + w * t.decode_attention[j])
            hull = _lower_hull([float(c) * batch for c in t.contexts], row)
            if len(hull) == 1:
                hull.append((hull[0][0] + 1.0, hull[0][1]))
            found = self._attention[batch] = Piecewise(*map(list, zip(*hull, strict=True)))
        return found

    def prefill_time(self, tokens: int, squared_tokens: float) -> float:
        return self.non_attention(tokens) + self.prompt_attention(tokens, squared_tokens)

    def fused_step_time(
        self, tokens: int, squared_tokens: float, batch: int, context: float
    ) -> float:
        """Prompts of `tokens` tokens prefilled while `batch` sequences holding `context`
        tokens in all decode one each (in-flight batching): one pass over all the tokens."""
        if self._ranks > 1:
            seconds = self.non_attention(tokens + batch) + self.prompt_attention(
                tokens, squared_tokens
            )
            if batch:
                seconds += self.attention(batch)(context)
            return seconds
        # asked for at every admission: the three pieces' lookups inlined
        rest = self._rest
        n = tokens + batch
        i = bisect.bisect_right(rest.cuts, n)
        seconds = rest.intercepts[i] + rest.slopes[i] * n
        if tokens > 0 and squared_tokens > 0:
            prompt = self._prompt
            length = squared_tokens / tokens
            i = bisect.bisect_right(prompt.cuts, length)
            per_token = prompt.intercepts[i] + prompt.slopes[i] * length
            if per_token > 0:
                seconds += tokens * per_token
        if batch:
            f = self._attention.get(batch)
            if f is None:
                f = self.attention(batch)
            i = bisect.bisect_right(f.cuts, context)
            seconds += f.intercepts[i] + f.slopes[i] * context
        return seconds

    def decode_lines(self, batch: int) -> list[Line]:
        lines = self._lines.get(batch)
        if lines is None:
            rest = self.non_attention(batch)
            f = self.attention(batch)
            lines = self._lines[batch] = [
                (a + rest, b) for a, b in zip(f.intercepts, f.slopes, strict=True)
            ]
        return lines

    def mixed_lines(self, batch: int, chunk: int) -> list[Line]:
        """A step decoding `batch` sequences and prefilling a `chunk` of prompt tokens (its
        attention to earlier chunks of the same prompt left out, as for the roofline)."""
        lines = self._mixed.get((batch, chunk))
        if lines is None:
            base = self.non_attention(batch + chunk) + self.prompt_attention(
                chunk, float(chunk) * chunk
            )
            if batch:
                f = self.attention(batch)
                lines = [(a + base, b) for a, b in zip(f.intercepts, f.slopes, strict=True)]
            else:
                lines = [(base, 0.0)]
            self._mixed[batch, chunk] = lines
        return lines


def installed_version() -> str | None:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
