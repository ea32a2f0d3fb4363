"""What one replica sustains: a closed-loop run of fixed-length requests on one replica,
through the same engine as every scenario (`capsim probe`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.scenario.format import ArchitectureSpec
from simulator.scenario.loader import load_scenario
from simulator.serving.architecture import Architecture
from simulator.serving.performance import build_step_model, default_performance
from simulator.serving.step import StepModel, decode_time
from simulator.studies.run import run


@dataclass(frozen=True)
class ProbeResult:
    output_tokens_per_s: float
    requests_per_s: float
    ttft_s: float
    tpot_s: float | None  # None when every answer is one token
    e2e_s: float
    kv_capacity_tokens: float
    concurrency: int | None  # None with a rate
    max_batch_reached: int
    rate: float | None = None
    performance_model: str = "roofline"
    engine: str | None = None
    engine_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def architecture_spec(model: str) -> dict[str, str]:
    """`{like: NAME}` for a bundled architecture, `{config: PATH}` for a Hugging Face
    config.json file."""
    path = Path(model)
    if model.endswith(".json") or path.is_file():
        return {"config": str(path.resolve())}
    return {"like": model}


def default_precision(gpu: str) -> str:
    """The precision a replica of `gpu` serves in unless told: FP8 where the GPU has FP8
    tensor cores, else BF16."""
    from simulator.serving.hardware import find_gpu

    found = find_gpu(gpu)
    return "fp8" if found is not None and "fp8" in found.flops else "bf16"


def _lengths(tokens: int, varied: bool) -> dict[str, Any]:
    """A token length of mean `tokens`: spread +-10% (uniform) when `varied`, so that clients
    do not finish in the same step forever, as fixed-length benchmarks' clients drift apart."""
    spread = tokens // 10
    if not varied or spread < 1:
        return {"dist": "fixed", "value": tokens}
    return {"dist": "uniform", "low": tokens - spread, "high": tokens + spread}


def _architecture(model: str) -> Architecture:
    return ArchitectureSpec.model_validate(architecture_spec(model)).resolve(model)


def replica_performance(
    model: str,
    gpu: str,
    gpus: int,
    precision: str,
    performance: dict[str, Any] | None = None,
    engine: str | None = None,
    engine_version: str = "latest",
    speculative: bool = False,
) -> dict[str, Any]:
    """The replica's `performance` mapping: `performance` when it names a model; roofline
    overrides (mfu, mbu, ...) when it has keys but no model; else the default a scenario's
    deployment gets (measured kernels where they cover the shape, `engine` if given)."""
    if performance and "model" in performance:
        if performance["model"] in ("roofline", "kernels"):
            return {"precision": precision, **performance}
        return dict(performance)
    if performance:
        if engine is not None:
            raise ValueError(f"{', '.join(performance)}: tune the roofline, not the kernels")
        return {"model": "roofline", "precision": precision, **performance}
    chosen, _ = default_performance(
        gpu, gpus, _architecture(model), precision, engine, engine_version, speculative
    )
    return chosen


def _replica(
    gpu: str,
    gpus: int,
    max_batch: int,
    performance: dict[str, Any],
    chunked_prefill: bool,
    speculative: dict[str, Any] | None,
    kv_admission: str,
    prefill: str,
) -> dict[str, Any]:
    """The one dedicated replica a probe measures (it prices nothing: any catalog GPU)."""
    deployment: dict[str, Any] = {
        "name": "replica",
        "kind": "dedicated",
        "model": "m",
        "gpu": gpu,
        "gpus_per_replica": gpus,
        "replicas": 1,
        "price_per_gpu_hour": 0.0,
        "max_batch": max_batch,
        "chunked_prefill": chunked_prefill,
        "kv_admission": kv_admission,
        "prefill": prefill,
        "performance": performance,
    }
    if speculative:
        deployment["speculative"] = speculative
    return deployment


def _step_model(model: str, deployment: dict[str, Any], tokens: int) -> StepModel:
    """The replica's step model; ValueError when one request of `tokens` does not fit its
    KV cache."""
    from pydantic import ValidationError

    from simulator.scenario.deployments import DedicatedSpec
    from simulator.scenario.loader import format_validation_error

    arch = _architecture(model)
    try:
        spec = DedicatedSpec.model_validate(deployment)
    except ValidationError as exc:  # options that do not go together, in one line each
        raise ValueError("; ".join(format_validation_error(exc, deployment))) from None
    step = build_step_model(spec, arch)
    if step.kv_capacity_tokens < tokens:
        raise ValueError(
            f"one request of {tokens} tokens does not fit the KV cache "
            f"({step.kv_capacity_tokens:,.0f} tokens)"
        )
    return step


def batch_latency(
    model: str,
    gpu: str,
    gpus: int,
    precision: str,
    batch: int,
    input_tokens: int,
    output_tokens: int,
    performance: dict[str, Any] | None = None,
    max_batch: int | None = None,
    chunked_prefill: bool = False,
    speculative: dict[str, Any] | None = None,
    kv_admission: str = "reserve",
    prefill: str = "fused",
    engine: str | None = None,
    engine_version: str = "latest",
) -> float:
    """Seconds from submitting `batch` prompts of `input_tokens` at once to one replica until
    the last of their answers, every one exactly `output_tokens` long, ends: the experiment of
    vLLM's `bench latency` (`benchmark_latency.py`), through the same engine as every
    scenario (the prompts prefilled together, then decoded as one batch; in waves when
    `max_batch` or the KV cache holds fewer)."""
    chosen = replica_performance(
        model, gpu, gpus, precision, performance, engine, engine_version, bool(speculative)
    )
    deployment = _replica(
        gpu, gpus, batch if max_batch is None else max_batch, chosen,
        chunked_prefill, speculative, kv_admission, prefill,
    )  # fmt: skip
    _step_model(model, deployment, input_tokens + output_tokens)
    scenario = load_scenario(
        {
            "name": f"batch-latency-{model}-{gpu}",
            "seed": 0,
            "horizon": "1d",
            "models": {
                "m": {"price": {"input": 0, "output": 0}, "architecture": architecture_spec(model)}
            },
            "workloads": [
                {
                    "name": "batch",
                    "model": "m",
                    "arrivals": {"process": "batch_jobs", "every": "1d", "requests": batch},
                    "input_tokens": {"dist": "fixed", "value": input_tokens},
                    "output_tokens": {"dist": "fixed", "value": output_tokens},
                    "route": ["replica"],
                }
            ],
            "deployments": [deployment],
        }
    )
    records = run(scenario, force=True).runs[0].records
    if not (records.finish <= 86400.0).all():
        raise ValueError(f"a batch of {batch} did not finish within a day on one replica")
    return float(records.finish.max() - records.arrival.min())


def probe(
    model: str,
    gpu: str,
    gpus: int = 1,
    precision: str | None = None,
    input_tokens: int = 1000,
    output_tokens: int = 1000,
    concurrency: int | None = None,
    max_batch: int = 256,
    performance: dict[str, Any] | None = None,
    rate: float | None = None,
    chunked_prefill: bool = False,
    speculative: dict[str, Any] | None = None,
    kv_admission: str = "reserve",
    prefill: str = "fused",
    engine: str | None = None,
    engine_version: str = "latest",
) -> ProbeResult:
    """Measure one replica as fixed-concurrency benchmarks do (NVIDIA GenAI-Perf / AIPerf,
    vLLM `bench serve --max-concurrency`): `concurrency` clients (None: enough to fill the
    batch or the KV cache) each sending the next request when its answer ends, their starts
    spread over one request's life and their lengths +-10% around the asked ones so they do
    not move in lockstep; or, with `rate`, Poisson arrivals at that rate. Measured in steady
    state: requests sent after the ramp and a warm-up, finished within the run."""
    shape = architecture_spec(model)
    precision = precision or default_precision(gpu)
    chosen = replica_performance(
        model, gpu, gpus, precision, performance, engine, engine_version, bool(speculative)
    )
    deployment = _replica(
        gpu, gpus, max_batch, chosen, chunked_prefill, speculative, kv_admission, prefill
    )
    step = _step_model(model, deployment, input_tokens + output_tokens)
    # whole requests reserved; optimistic: what they hold on average
    held = input_tokens + (output_tokens / 2 if kv_admission == "optimistic" else output_tokens)
    fits = step.kv_capacity_tokens // held
    full = int(min(max_batch, fits))
    clients = full if concurrency is None else concurrency
    # a request's life at full load, to size the run: ~40 turnovers of the batch
    batch = min(clients, full)
    life = step.prefill_time(batch * input_tokens, batch * input_tokens**2) + decode_time(
        step, batch, batch * (input_tokens + output_tokens / 2), output_tokens
    )
    if rate is not None:
        arrivals: dict[str, Any] = {"process": "poisson", "rate": rate}
        ramp = 0.0
        horizon = max(60.0, 40 * life, 2000 / rate)
    else:
        ramp = life * math.ceil(clients / batch)
        arrivals = {"process": "closed", "concurrency": clients, "ramp": ramp}
        horizon = max(60.0, ramp + 40 * life * math.ceil(clients / batch))
    warm = ramp + max(life, (horizon - ramp) / 10)
    varied = rate is None
    scenario = load_scenario(
        {
            "name": f"probe-{model}-{gpu}",
            "seed": 0,
            "horizon": horizon,
            "warmup": warm,
            "models": {"m": {"price": {"input": 0, "output": 0}, "architecture": shape}},
            "workloads": [
                {
                    "name": "probe",
                    "model": "m",
                    "arrivals": arrivals,
                    "input_tokens": _lengths(input_tokens, varied),
                    "output_tokens": _lengths(output_tokens, varied),
                    "route": ["replica"],
                }
            ],
            "deployments": [deployment],
        }
    )
    result = run(scenario, force=True)
    records = result.runs[0].records
    measured = (records.arrival >= warm) & (records.finish <= horizon)
    window = horizon - warm
    done = (records.finish > warm) & (records.finish <= horizon)
    first = records.first_token[measured]
    ttft = first - records.arrival[measured]
    out = records.output_tokens[measured]
    streams = out > 1
    tpot = (records.finish[measured][streams] - first[streams]) / (out[streams] - 1)
    deployment_report = result.report["deployments"][0]
    return ProbeResult(
        output_tokens_per_s=float(records.output_tokens[done].sum()) / window,
        requests_per_s=float(done.sum()) / window,
        ttft_s=float(ttft.mean()),
        tpot_s=float(tpot.mean()) if len(tpot) else None,
        e2e_s=float((records.finish - records.arrival)[measured].mean()),
        kv_capacity_tokens=float(step.kv_capacity_tokens),
        concurrency=clients if rate is None else None,
        max_batch_reached=int(deployment_report["peak_batch"]),
        rate=rate,
        performance_model=str(deployment_report["performance_model"]),
        engine=deployment_report["engine"],
        engine_version=deployment_report["engine_version"],
    )
