"""What one replica sustains: a closed-loop run of fixed-length requests on one replica,
through the same engine as every scenario (`capsim probe`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from simulator.loader import load_scenario
from simulator.performance import build_step_model, decode_time
from simulator.runner import run
from simulator.scenario import ArchitectureSpec


@dataclass(frozen=True)
class ProbeResult:
    output_tokens_per_s: float
    requests_per_s: float
    ttft_s: float
    tpot_s: float
    e2e_s: float
    kv_capacity_tokens: float
    concurrency: int
    max_batch_reached: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def probe(
    model: str,
    gpu: str,
    gpus: int = 1,
    precision: str = "fp8",
    input_tokens: int = 1000,
    output_tokens: int = 1000,
    concurrency: int | None = None,
    max_batch: int = 256,
    performance: dict[str, Any] | None = None,
) -> ProbeResult:
    """Run `concurrency` clients (None: enough to fill the batch or the KV cache) against one
    replica long enough for steady state, and measure after the first tenth of the run."""
    arch = ArchitectureSpec(like=model).resolve(model)
    perf = {"model": "roofline", "precision": precision, **(performance or {})}
    deployment = {
        "name": "replica",
        "kind": "dedicated",
        "model": "m",
        "gpu": gpu,
        "gpus_per_replica": gpus,
        "replicas": 1,
        "max_batch": max_batch,
        "performance": perf,
    }
    from simulator.deployment_specs import DedicatedSpec

    step = build_step_model(DedicatedSpec.model_validate(deployment), arch)
    fits = step.kv_capacity_tokens // (input_tokens + output_tokens)
    if fits < 1:
        raise ValueError(
            f"one request of {input_tokens + output_tokens} tokens does not fit "
            f"the KV cache ({step.kv_capacity_tokens:,.0f} tokens)"
        )
    full = int(min(max_batch, fits))
    clients = full if concurrency is None else concurrency
    # a request's life at full load, to size the run: ~40 turnovers of the batch
    batch = min(clients, full)
    life = step.prefill_time(batch * input_tokens, batch * input_tokens**2) + decode_time(
        step, batch, batch * (input_tokens + output_tokens / 2), output_tokens
    )
    horizon = max(60.0, 40 * life * math.ceil(clients / batch))
    scenario = load_scenario(
        {
            "name": f"probe-{model}-{gpu}",
            "seed": 0,
            "horizon": horizon,
            "warmup": horizon / 10,
            "models": {"m": {"price": {"input": 0, "output": 0}, "architecture": {"like": model}}},
            "workloads": [
                {
                    "name": "probe",
                    "model": "m",
                    "arrivals": {"process": "closed", "concurrency": clients},
                    "input_tokens": {"dist": "fixed", "value": input_tokens},
                    "output_tokens": {"dist": "fixed", "value": output_tokens},
                    "route": ["replica"],
                }
            ],
            "deployments": [deployment],
        }
    )
    result = run(scenario, force=True)
    records = result.runs[0].records
    measured = (records.arrival >= horizon / 10) & (records.finish <= horizon)
    window = horizon - horizon / 10
    done = (records.finish > horizon / 10) & (records.finish <= horizon)
    latency = result.report["workloads"][0]["latency"]
    deployment_report = result.report["deployments"][0]
    return ProbeResult(
        output_tokens_per_s=float(records.output_tokens[done].sum()) / window,
        requests_per_s=float(done.sum()) / window,
        ttft_s=float((records.first_token - records.arrival)[measured].mean()),
        tpot_s=float(latency["tpot_s"]["mean"]),
        e2e_s=float(latency["e2e_s"]["mean"]),
        kv_capacity_tokens=float(step.kv_capacity_tokens),
        concurrency=clients,
        max_batch_reached=int(deployment_report["peak_batch"]),
    )
