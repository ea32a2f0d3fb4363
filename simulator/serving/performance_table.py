"""The `table` performance model: step times fitted from measurements.

Two kinds of file:
- a CSV of measured steps, columns `phase` (prefill or decode), `batch_size`,
  `context_tokens` (decode: all the batch's context; prefill: unused), `tokens` (prefill:
  prompt tokens in the step), `seconds`. Decode steps are fitted by least squares to
  a + b x batch + c x context, prefill steps to p0 + p1 x tokens.
- the JSON that `vllm bench serve --save-result` writes (one result, or a list of results at
  several concurrencies). Each result is one decode point: the mean time per output token
  (`mean_tpot_ms`) at the mean number of sequences decoding, output_throughput x TPOT
  (Little's law), with each sequence holding the mean input plus half the mean output of
  context; and one prefill point, the TTFT over the mean input (`mean_ttft_ms`, from the
  lightest-loaded result, where queueing is least), or with `--save-detailed` that result's
  per-request TTFTs against their input lengths (`ttfts`, `input_lens`): a line by least
  squares.
- GuideLLM's `benchmarks.json` (`guidellm benchmark --output-path`): each benchmark of its
  sweep (synchronous, throughput, constant rates) is one such point, read from its metrics'
  successful-request summaries: `request_totals.successful`, the means of
  `prompt_token_count`, `output_token_count`, `time_to_first_token_ms`,
  `time_per_output_token_ms` and `output_tokens_per_second` (field names of guidellm 0.8's
  report schema).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import ScenarioError
from simulator.files import parse_json, read_text
from simulator.serving.step import LinearModel


def _lstsq(columns: list[np.ndarray], target: np.ndarray) -> np.ndarray:
    """Least squares, dropping columns that carry no information (constant ones)."""
    design = np.column_stack(columns)
    keep = [0] + [j for j in range(1, design.shape[1]) if np.ptp(design[:, j]) > 0]
    coefficients = np.zeros(design.shape[1])
    solution = np.linalg.lstsq(design[:, keep], target, rcond=None)[0]
    coefficients[keep] = solution
    return coefficients


def _from_csv(path: Path, kv_capacity: float | None) -> LinearModel:
    import pandas as pd

    source = str(path)
    try:
        frame = pd.read_csv(io.StringIO(read_text(path, "performance table")))
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        del exc  # pandas' message may quote the file's text: not shown
        raise ScenarioError(source, ["not a readable CSV of step times"]) from None
    required = ["phase", "batch_size", "context_tokens", "tokens", "seconds"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ScenarioError(source, [f"missing column {c!r}" for c in missing])
    for column in required[1:]:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | (values < 0) | ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ScenarioError(
                source, [f"line {line}, column {column!r}: expected a finite number >= 0"]
            )
        frame[column] = values
    decode = frame[frame["phase"] == "decode"]
    prefill = frame[frame["phase"] == "prefill"]
    if decode.empty or prefill.empty:
        raise ScenarioError(source, ["needs decode rows and prefill rows (column 'phase')"])
    one = np.ones(len(decode))
    a, b, c = _lstsq(
        [one, decode["batch_size"].to_numpy(float), decode["context_tokens"].to_numpy(float)],
        decode["seconds"].to_numpy(float),
    )
    p0, p1 = _lstsq(
        [np.ones(len(prefill)), prefill["tokens"].to_numpy(float)],
        prefill["seconds"].to_numpy(float),
    )
    return LinearModel(
        max(a, 0.0), max(b, 0.0), max(c, 0.0), max(p0, 0.0), max(p1, 0.0), kv_capacity or math.inf
    )


def _vllm_points(results: list[dict[str, Any]], source: str) -> LinearModel:
    batches, steps, contexts, prefill_rates = [], [], [], []
    for n, result in enumerate(results):
        where = f"result {n + 1}" if len(results) > 1 else "the result"
        try:
            completed = float(result["completed"])
            mean_in = float(result["total_input_tokens"]) / completed
            mean_out = float(result["total_output_tokens"]) / completed
            tpot = float(result["mean_tpot_ms"]) / 1000.0
            ttft = float(result["mean_ttft_ms"]) / 1000.0
            throughput = float(result["output_throughput"])
        except KeyError as exc:
            raise ScenarioError(
                source,
                [
                    f"{where}: missing key {exc.args[0]!r} (a vLLM "
                    "`bench serve --save-result` file?)"
                ],
            ) from None
        except (TypeError, ValueError, ZeroDivisionError):
            raise ScenarioError(
                source,
                [
                    f"{where}: completed, total_input_tokens, "
                    "total_output_tokens, mean_tpot_ms, mean_ttft_ms and "
                    "output_throughput must be numbers > 0"
                ],
            ) from None
        figures = (completed, mean_in, mean_out, tpot, ttft, throughput)
        if not all(math.isfinite(x) for x in figures) or min(tpot, ttft, throughput, mean_in) <= 0:
            raise ScenarioError(source, [f"{where}: times and throughput must be finite and > 0"])
        batches.append(max(1.0, throughput * tpot))
        steps.append(tpot)
        contexts.append(mean_in + mean_out / 2)
        prefill_rates.append((ttft / mean_in, max(1.0, throughput * tpot)))
    batch = np.asarray(batches)
    intercept, per_sequence = _lstsq([np.ones(len(batch)), batch], np.asarray(steps))
    context = float(np.mean(contexts))
    lightest = min(range(len(results)), key=lambda n: prefill_rates[n][1])
    per_token = prefill_rates[lightest][0]
    base = 0.0
    detailed = _detailed_prefill(results[lightest])
    if detailed is not None:
        base, per_token = detailed
    # the per-sequence cost is the cost of its context: a line in C for a fixed batch
    return LinearModel(
        max(intercept, 0.0), 0.0, max(per_sequence, 0.0) / context, base, per_token
    )


def _detailed_prefill(result: dict[str, Any]) -> tuple[float, float] | None:
    """With `--save-detailed`, each request's TTFT against its input length: prefill time =
    base + per token x input, by least squares over the successful requests (TTFT > 0);
    None without the arrays, with too few requests, or with prompts all of one length."""
    lengths, ttfts = result.get("input_lens"), result.get("ttfts")
    if not isinstance(lengths, list) or not isinstance(ttfts, list) or len(lengths) != len(ttfts):
        return None
    try:
        n_in = np.asarray(lengths, dtype=float)
        ttft = np.asarray(ttfts, dtype=float)
    except (TypeError, ValueError):
        return None
    ok = np.isfinite(n_in) & np.isfinite(ttft) & (ttft > 0) & (n_in > 0)
    if ok.sum() < 3 or np.ptp(n_in[ok]) == 0:
        return None
    base, per_token = _lstsq([np.ones(int(ok.sum())), n_in[ok]], ttft[ok])
    if per_token <= 0:
        return None
    return max(float(base), 0.0), float(per_token)


_GUIDELLM_MEANS = {
    "prompt_token_count": "mean_input",
    "output_token_count": "mean_output",
    "time_to_first_token_ms": "mean_ttft_ms",
    "time_per_output_token_ms": "mean_tpot_ms",
    "output_tokens_per_second": "output_throughput",
}


def _guidellm_results(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """GuideLLM's benchmarks as vLLM-shaped results: one a benchmark of the sweep."""
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list) or not benchmarks:
        raise ScenarioError(source, ["benchmarks: expected a non-empty list (GuideLLM report)"])
    results = []
    for n, benchmark in enumerate(benchmarks):
        where = f"benchmarks[{n}]"
        metrics = benchmark.get("metrics") if isinstance(benchmark, dict) else None
        if not isinstance(metrics, dict):
            raise ScenarioError(source, [f"{where}.metrics: missing (a GuideLLM benchmark?)"])
        totals = metrics.get("request_totals")
        completed = totals.get("successful") if isinstance(totals, dict) else None
        if isinstance(completed, bool) or not isinstance(completed, int | float):
            raise ScenarioError(source, [f"{where}.metrics.request_totals.successful: missing"])
        result: dict[str, Any] = {"completed": completed}
        for key, name in _GUIDELLM_MEANS.items():
            summary = metrics.get(key)
            successful = summary.get("successful") if isinstance(summary, dict) else None
            mean = successful.get("mean") if isinstance(successful, dict) else None
            if isinstance(mean, bool) or not isinstance(mean, int | float):
                raise ScenarioError(source, [f"{where}.metrics.{key}.successful.mean: missing"])
            result[name] = mean
        result["total_input_tokens"] = result.pop("mean_input") * completed
        result["total_output_tokens"] = result.pop("mean_output") * completed
        results.append(result)
    return results


def fit_table(path: Path, kv_capacity: float | None) -> LinearModel:
    """A linear step-time model fitted to the measurements in `path`."""
    source = str(path)
    if path.suffix.lower() == ".csv":
        return _from_csv(path, kv_capacity)
    text = read_text(path, "performance table")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) > 1 and all(line.lstrip().startswith("{") for _, line in lines):
        # `vllm bench serve --append-result`: one result object a line
        data: Any = [parse_json(line, source, f"line {n}") for n, line in lines]
    else:
        data = parse_json(text, source)
    if isinstance(data, dict) and "benchmarks" in data:  # GuideLLM's benchmarks.json
        data = _guidellm_results(data, source)
    results = data if isinstance(data, list) else [data]
    if not results or not all(isinstance(r, dict) for r in results):
        raise ScenarioError(
            source, ["expected a vLLM result object, a list of them, or a GuideLLM report"]
        )
    model = _vllm_points(results, source)
    if kv_capacity:
        model = LinearModel(
            model.decode_base,
            model.decode_per_sequence,
            model.decode_per_context_token,
            model.prefill_base,
            model.prefill_per_token,
            kv_capacity,
        )
    return model
