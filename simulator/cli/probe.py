"""`capsim probe`: what one replica sustains (throughput, TTFT, TPOT, KV capacity)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from simulator.errors import CapsimError

MAX_PROBE_CLIENTS = 10_000


def _speculative(
    draft_tokens: int | None, acceptance_rate: float, draft: str | None
) -> dict[str, Any] | None:
    if draft_tokens is None:
        if draft is not None:
            raise CapsimError("--draft: give --draft-tokens too")
        return None
    spec: dict[str, Any] = {"draft_tokens": draft_tokens, "acceptance_rate": acceptance_rate}
    if draft is not None:
        spec["draft"] = draft
    return spec


@click.command("probe")
@click.option(
    "--model",
    "--architecture",
    "model",
    required=True,
    help="a bundled architecture (llama-3.1-8b, qwen3-30b-a3b, ...) or a Hugging Face config.json",
)
@click.option("--gpu", required=True, help="H100-SXM, H200, B200, A100-80GB, L40S, ...")
@click.option(
    "--gpus",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="GPUs in the replica (tensor parallel)",
)
@click.option(
    "--precision",
    type=click.Choice(["bf16", "fp8", "fp4"]),
    help="default: fp8 where the GPU has it, else bf16",
)
@click.option("--input-tokens", required=True, type=click.IntRange(1, 10_000_000))
@click.option("--output-tokens", required=True, type=click.IntRange(1, 10_000_000))
@click.option(
    "--concurrency",
    default="max",
    show_default=True,
    help="clients with a request in flight (staggered starts, lengths +-10%), or max: as "
    "many as the batch or the KV cache holds",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, 100_000, min_open=True),
    help="requests/s, Poisson, instead of a fixed concurrency",
)
@click.option(
    "--batch",
    type=click.IntRange(1, MAX_PROBE_CLIENTS),
    help="instead: the latency of this many prompts sent at once, every answer exactly "
    "--output-tokens long, in waves of --max-batch (vLLM's `bench latency`)",
)
@click.option(
    "--chunked-prefill", is_flag=True, help="prefill prompts in chunks inside decode steps"
)
@click.option(
    "--kv-admission",
    type=click.Choice(["reserve", "optimistic"]),
    default="reserve",
    show_default=True,
    help="reserve each request's whole KV at admission, or admit on the prompt and preempt",
)
@click.option(
    "--prefill",
    type=click.Choice(["fused", "separate"]),
    default="fused",
    show_default=True,
    help="prefill admitted prompts in the batch's next step (TensorRT-LLM's in-flight "
    "batching), or in a step of their own while the batch waits",
)
@click.option(
    "--draft-tokens",
    type=click.IntRange(1, 16),
    help="speculative decoding: draft tokens a step (an EAGLE-style head unless --draft)",
)
@click.option(
    "--acceptance-rate",
    type=click.FloatRange(0, 0.99),
    default=0.7,
    show_default=True,
    help="with --draft-tokens: the chance each draft token is kept",
)
@click.option("--draft", help="with --draft-tokens: a bundled architecture as the draft model")
@click.option("--max-batch", default=256, show_default=True, type=click.IntRange(1))
@click.option(
    "--engine",
    type=click.Choice(["trtllm", "vllm", "sglang"]),
    help="measured kernels of this engine (default: TensorRT-LLM's where the database covers "
    "the GPU, model and precision, else the roofline)",
)
@click.option(
    "--engine-version",
    default="latest",
    show_default=True,
    help="with --engine: a version the kernel database lists",
)
@click.option("--roofline", is_flag=True, help="the roofline model, not measured kernels")
@click.option("--mfu", type=click.FloatRange(0, 1, min_open=True), help="override the default")
@click.option("--mbu", type=click.FloatRange(0, 1, min_open=True), help="override the default")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def probe_command(
    model: str,
    gpu: str,
    gpus: int,
    precision: str | None,
    input_tokens: int,
    output_tokens: int,
    concurrency: str,
    rate: float | None,
    batch: int | None,
    chunked_prefill: bool,
    kv_admission: str,
    prefill: str,
    draft_tokens: int | None,
    acceptance_rate: float,
    draft: str | None,
    max_batch: int,
    engine: str | None,
    engine_version: str,
    roofline: bool,
    mfu: float | None,
    mbu: float | None,
    fmt: str,
) -> None:
    """What one replica sustains: throughput, TTFT, TPOT, KV capacity (measured kernels
    where they cover the shape, else the roofline)."""
    from simulator.serving.hardware import (
        architecture_names,
        config_architecture,
        find_architecture,
        find_gpu,
        gpu_names,
    )
    from simulator.studies.probe import architecture_spec, default_precision, probe

    shape = architecture_spec(model)
    if "config" in shape:
        try:
            config_architecture(shape["config"])
        except ValueError as exc:
            raise CapsimError(f"--architecture: {str(exc).removeprefix('config: ')}") from None
    elif find_architecture(model) is None:
        raise CapsimError(
            f"--model: unknown architecture {model!r} (known: {', '.join(architecture_names())}"
            ", or a config.json)"
        )
    if find_gpu(gpu) is None:
        raise CapsimError(f"--gpu: unknown GPU {gpu!r} (known: {', '.join(gpu_names())})")
    clients: int | None = None
    if concurrency != "max":
        if not (concurrency.isascii() and concurrency.isdigit()) or int(concurrency) < 1:
            raise CapsimError(
                f"--concurrency: expected a whole number >= 1 or max, got {concurrency!r}"
            )
        clients = int(concurrency)
        if clients > MAX_PROBE_CLIENTS:  # each sends ~40 requests: millions beyond this
            raise CapsimError(
                f"--concurrency: at most {MAX_PROBE_CLIENTS:,} clients, got {clients:,}"
            )
    if rate is not None and concurrency != "max":
        raise CapsimError("--rate and --concurrency: give one or the other")
    if batch is not None and (rate is not None or concurrency != "max"):
        raise CapsimError("--batch: not with --rate or --concurrency (it sends one batch)")
    overrides: dict[str, Any] = {k: v for k, v in (("mfu", mfu), ("mbu", mbu)) if v is not None}
    if engine is not None and (roofline or overrides):
        raise CapsimError("--engine: measured kernels; --roofline, --mfu and --mbu: the roofline")
    if engine is None and engine_version != "latest":
        raise CapsimError("--engine-version: give --engine too")
    if roofline:
        overrides["model"] = "roofline"
    precision = precision or default_precision(gpu)
    options: dict[str, Any] = {  # the replica's, for either experiment
        "max_batch": max_batch,
        "performance": overrides,
        "engine": engine,
        "engine_version": engine_version,
        "chunked_prefill": chunked_prefill,
        "speculative": _speculative(draft_tokens, acceptance_rate, draft),
        "kv_admission": kv_admission,
        "prefill": prefill,
    }
    if batch is not None:
        _probe_batch(model, gpu, gpus, precision, batch, input_tokens, output_tokens, options, fmt)
        return
    try:
        result = probe(
            model,
            gpu,
            gpus,
            precision,
            input_tokens,
            output_tokens,
            clients,
            rate=rate,
            **options,
        )
    except (ValueError, CapsimError) as exc:
        raise CapsimError(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    load = f"concurrency {result.concurrency}" if rate is None else f"{rate:g} requests/s"
    priced = result.performance_model
    if result.engine is not None:
        priced += f", {result.engine} {result.engine_version}"
    tpot = "-" if result.tpot_s is None else f"{result.tpot_s * 1000:,.1f} ms"
    _print_figures(
        f"{model} on {gpus} x {gpu} ({precision}), {input_tokens} in / {output_tokens} out, {load}",
        [
            ("output tokens/s", f"{result.output_tokens_per_s:,.0f}"),
            ("requests/s", f"{result.requests_per_s:,.2f}"),
            ("TTFT (mean)", f"{result.ttft_s * 1000:,.0f} ms"),
            ("TPOT (mean)", tpot),
            ("E2E (mean)", f"{result.e2e_s:,.2f} s"),
            ("KV capacity", f"{result.kv_capacity_tokens:,.0f} tokens"),
            ("max batch reached", f"{result.max_batch_reached:,}"),
            ("performance model", priced),
        ],
    )


def _print_figures(title: str, rows: list[tuple[str, str]]) -> None:
    """A probe's figures: a two-column table under its title."""
    from simulator.report.tables import console_for_tables

    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for figure, value in rows:
        table.add_row(figure, value)
    console_for_tables().print(table)


def _probe_batch(
    model: str,
    gpu: str,
    gpus: int,
    precision: str,
    batch: int,
    input_tokens: int,
    output_tokens: int,
    options: dict[str, Any],
    fmt: str,
) -> None:
    """`capsim probe --batch`: one batch sent at once (in waves of --max-batch), its
    latency."""
    from simulator.studies.probe import batch_latency, replica_performance

    try:
        seconds = batch_latency(
            model, gpu, gpus, precision, batch, input_tokens, output_tokens, **options
        )
    except (ValueError, CapsimError) as exc:
        raise CapsimError(str(exc)) from None
    chosen = replica_performance(
        model, gpu, gpus, precision, options["performance"], options["engine"],
        options["engine_version"], bool(options["speculative"]),
    )  # fmt: skip
    version = None
    if chosen["model"] == "kernels":
        from simulator.serving.kernels import resolve_version

        version = resolve_version(gpu, chosen["engine"], chosen["engine_version"])
    result = {
        "batch": batch,
        "latency_s": seconds,
        "output_tokens_per_s": batch * output_tokens / seconds,
        "performance_model": chosen["model"],
        "engine": chosen.get("engine"),
        "engine_version": version,
    }
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    _print_figures(
        f"{model} on {gpus} x {gpu} ({precision}), a batch of {batch}, {input_tokens} in / "
        f"{output_tokens} out",
        [
            ("latency (the batch done)", f"{seconds:,.3f} s"),
            ("output tokens/s", f"{result['output_tokens_per_s']:,.0f}"),
            (
                "performance model",
                f"kernels, {chosen['engine']} {version}" if version else chosen["model"],
            ),
        ],
    )
