"""A replica's saturated throughput in closed form (`replica_capacity`): what `plan`'s
capacity bound, the report's `offered_load` and `throughput_utilization` divide by."""

from __future__ import annotations

from simulator.scenario.deployments import ServingSpec
from simulator.serving.step import StepModel, decode_time, fused_time


def spec_capacity(model: StepModel, spec: ServingSpec, n_in: float, n_out: float) -> float:
    """`replica_capacity` of one replica of `spec` (its batch limit, admission, prefill
    scheduling and disaggregation), for requests of `n_in` / `n_out` tokens."""
    return replica_capacity(
        model,
        spec.max_batch,
        n_in,
        n_out,
        spec.kv_admission == "optimistic",
        spec.prefill == "fused" or spec.chunked_prefill,
        getattr(spec, "disaggregation", None) is not None,
    )


def replica_capacity(
    model: StepModel,
    max_batch: int,
    n_in: float,
    n_out: float,
    optimistic: bool = False,
    fused: bool = False,
    decode_only: bool = False,
) -> float:
    """Output tokens/s one replica sustains when saturated with requests of `n_in` input and
    `n_out` output tokens, its batch full (`max_batch`, or what the KV cache holds: whole
    requests reserved, or with optimistic admission what they hold on average, the prompt
    and half the answer). Separate prefill: the batch prefilled, then decoded to the end,
    over and over. Fused: in steady state every step decodes the batch and prefills the
    prompts of the 1 / n_out of it that finished (one step's time at the mean context).
    Decode only (disaggregated): every step decodes the batch, prompts are prefilled
    elsewhere."""
    held = n_in + (n_out / 2 if optimistic else n_out)
    batch = int(max(1, min(max_batch, model.kv_capacity_tokens // held)))
    context = batch * (n_in + n_out / 2)
    if fused or decode_only:
        prompts = 0.0 if decode_only else batch / max(1.0, n_out)
        step = fused_time(model, round(prompts * n_in), prompts * n_in * n_in, batch, context)
        return batch / step
    prefill = model.prefill_time(int(batch * n_in), batch * n_in * n_in)
    decode = decode_time(model, batch, context, max(1, round(n_out)))
    return batch * n_out / (prefill + decode)
