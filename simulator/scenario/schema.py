"""The JSON Schema of the scenario format as editors see it (`capsim schema`): pydantic's
schema with an `$id`, a description on every property, and the patterns the loader checks
where JSON Schema can say them (SLO keys, start, peak_at)."""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "https://github.com/capsim/capsim/schema/scenario-v1.json"

# by "Definition.field" first (the same name means something else there), then by field
DESCRIPTIONS: dict[str, str] = {
    # the scenario
    "name": "a name, unique among its siblings (workloads, deployments, states)",
    "Scenario.name": "the scenario's name, shown in reports",
    "seed": "seed of every random stream: same scenario, same seed, same report",
    "replications": "independent runs averaged, each with its own streams (1 to 1,000)",
    "catalog": "a LiteLLM-format price map (JSON) used instead of the bundled catalog",
    "models": "the LLMs the workloads call, by name",
    "workloads": "traffic: who calls which model, how often, with which lengths and SLOs",
    "deployments": "where requests are served: serverless, batch, dedicated or cluster",
    # models
    "id": "a price-catalog model id (e.g. meta-llama/Llama-3.3-70B-Instruct-Turbo): price, "
    "context length and architecture from the catalogs",
    "price": "USD per 1M tokens: {input, output[, cached_input]}",
    "batch_price": "USD per 1M tokens through the batch API; default half the price",
    "context_length": "the most input + output tokens a request may hold",
    "architecture": "the model's shape for the roofline: {like: NAME}, {config: config.json} "
    "or the numbers",
    "input": "USD per 1M input (prompt) tokens",
    "output": "USD per 1M output (generated) tokens",
    "cached_input": "USD per 1M input tokens served from the provider's prompt cache",
    "like": "a bundled architecture to start from (capsim probe --help lists them)",
    "config": "a Hugging Face config.json to read the architecture from",
    "layers": "decoder layers",
    "hidden": "hidden size",
    "attn_heads": "attention (query) heads",
    "kv_heads": "key/value heads (grouped-query attention)",
    "head_dim": "size of one attention head",
    "experts": "routed experts per MoE layer (0: dense)",
    "experts_per_token": "routed experts each token uses",
    "vocab": "vocabulary size: rows of the output head (an EAGLE-style draft runs it a token)",
    # workloads
    "model": "the name of a model under `models`",
    "arrivals": "when requests arrive: poisson, gamma, mmpp, diurnal, batch_jobs, closed or "
    "trace",
    "input_tokens": "the law of prompt lengths, in tokens",
    "output_tokens": "the law of answer lengths, in tokens",
    "token_correlation": "correlation between a request's input and output lengths (-1 to 1)",
    "token_pairs": "(input, output) pairs drawn together instead of two laws",
    "pairs": "(input, output) token pairs",
    "slo": "latency targets: {ttft|tpot|e2e|queue}_p{50,90,95,99,99.9}: duration, or "
    "completion: duration for batch",
    "route": "deployment names tried in order: a request goes to the first with room",
    "tags": "labels for cost breakdowns (team, feature, tenant, ...)",
    "prefix": "prompts sharing a prefix: {shared_tokens, groups[, block_tokens]}",
    "shared_tokens": "leading prompt tokens the requests of a group share",
    "groups": "groups of prompts, each with its own shared prefix",
    "block_tokens": "tokens in one KV-cache block the prefix cache keeps",
    "rate_limit": "a provider's limits on this workload: {requests_per_min, tokens_per_min, "
    "on_limit}",
    "requests_per_min": "requests allowed a minute",
    "tokens_per_min": "tokens allowed a minute",
    "on_limit": "what a request over the limit does: reject, or wait (retry)",
    # arrival processes
    "process": "the arrival process",
    "cv": "coefficient of variation (standard deviation / mean)",
    "states": "the MMPP's states: a rate and a mean duration each",
    "peak_to_mean": "the daily peak's rate over the mean rate (>= 1)",
    "peak_at": "time of day of the daily peak, HH:MM",
    "hourly": "24 weights, one per hour of the day, instead of peak_to_mean",
    "weekly": "7 weights, Monday first",
    "requests": "requests in each batch job",
    "concurrency": "clients, each sending its next request when its answer ends",
    "path": "a file, relative to the scenario's folder",
    "format": "the file's format",
    "time_scale": "multiplies the trace's times (0.5: twice as fast)",
    "loop": "replay the trace again when it ends, until the horizon",
    "columns": "column names of a generic CSV trace",
    "timestamp": "the column of request times",
    "time_unit": "unit of the timestamp column: s, ms, us or datetime (ISO 8601)",
    # distributions
    "dist": "the law of the lengths",
    "mean": "mean, in tokens",
    "value": "the one value",
    "values": "the values drawn from",
    "weights": "the values' relative weights (default equal)",
    "low": "smallest value",
    "high": "largest value",
    "min": "smallest value (shorter draws are raised to it)",
    "max": "largest value (longer draws are cut to it)",
    "AutoscaleSpec.min": "fewest replicas up",
    "AutoscaleSpec.max": "most replicas up",
    "target_utilization": "the batch-slot utilization the autoscaler aims at",
    # deployments
    "kind": "serverless, batch, dedicated or cluster",
    "DedicatedSpec.model": "the name of the model this deployment serves",
    "ClusterSpec.model": "the name of the model this deployment serves",
    "gpu": "a catalog GPU (H100-SXM, H200, B200, ...)",
    "gpus_per_replica": "GPUs in one replica (tensor parallel)",
    "gpus": "GPUs in the cluster (a multiple of 8)",
    "replicas": "reserved replicas, or {min, max, ...} to autoscale",
    "price_per_gpu_hour": "USD per GPU-hour; default the GPU's bundled price",
    "max_batch": "sequences a replica decodes at once",
    "max_queue": "requests that may wait for a replica before the route's next entry takes "
    "them (default unbounded: nothing overflows)",
    "performance": "how fast a replica is: measured kernels, roofline, fixed speeds or a "
    "measured table (default: kernels where they cover the GPU and model, else roofline)",
    "billing": "a commitment: {term_months, price_per_gpu_hour, minimum_monthly_usd}",
    "term_months": "months the commitment runs",
    "BillingSpec.price_per_gpu_hour": "the commitment's USD per GPU-hour",
    "minimum_monthly_usd": "the least billed a month, whatever the usage",
    "speculative": "speculative decoding: {draft_tokens, acceptance_rate[, draft]}",
    "draft_tokens": "tokens the draft proposes a step",
    "acceptance_rate": "the chance each draft token is accepted",
    "discount": "share off the serverless price through the batch API",
    "max_enqueued_tokens": "tokens the batch API holds at once per model",
    "FixedPerformanceSpec.model": "fixed: constant speeds",
    "TablePerformanceSpec.model": "table: step times fitted from measurements",
    "RooflineSpec.model": "roofline: step times from GPU and model specs",
    "KernelsSpec.model": "kernels: step times from GPU kernels measured per engine",
    "engine": "the serving engine whose kernels were measured: trtllm, vllm or sglang",
    "engine_version": "latest, or a version the kernel database lists",
    "prefill_tokens_per_s": "prompt tokens prefilled a second",
    "output_tokens_per_s": "tokens generated a second per request",
    "kv_capacity_tokens": "tokens of KV cache a replica holds (default unbounded)",
    "precision": "weights' precision: bf16, fp8 or fp4",
}

# checked by the loader; said here too so editors flag them while typing
SLO_KEY_PATTERN = r"^((ttft|tpot|e2e|queue)_p(50|90|95|99|99\.9)|completion)$"
START_PATTERN = (
    r"^\s*((mon|tue|wed|thu|fri|sat|sun)[a-z]*\s+)?([01]?[0-9]|2[0-3]):[0-5][0-9]\s*$"
)
CLOCK_PATTERN = r"^\s*([01]?[0-9]|2[0-3]):[0-5][0-9]\s*$"


def scenario_schema() -> dict[str, Any]:
    from simulator.scenario.format import Scenario

    schema: dict[str, Any] = Scenario.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "capsim scenario (format v1)"
    _describe("Scenario", schema)
    for name, definition in schema.get("$defs", {}).items():
        _describe(name, definition)
    schema["properties"]["start"]["pattern"] = START_PATTERN
    peak = schema["$defs"].get("Diurnal", {}).get("properties", {}).get("peak_at")
    if peak is not None:
        peak["pattern"] = CLOCK_PATTERN
    slo = schema["$defs"].get("Workload", {}).get("properties", {}).get("slo")
    if slo is not None:
        slo["propertyNames"] = {"pattern": SLO_KEY_PATTERN}
    return schema


def _describe(name: str, definition: dict[str, Any]) -> None:
    for field, prop in definition.get("properties", {}).items():
        if "description" not in prop:
            text = DESCRIPTIONS.get(f"{name}.{field}") or DESCRIPTIONS.get(field)
            if text is not None:
                prop["description"] = text
