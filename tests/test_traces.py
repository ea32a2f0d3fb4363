"""Replaying real traces bills every request exactly; bad traces fail clearly, up front."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.traffic.fit import fit_quality, fit_workload
from simulator.traffic.traces import load_trace
from tests.helpers import BASE, make_scenario, run_checked, scenario_dict
from tests.test_cli import capsim

TRACES = Path(__file__).resolve().parent.parent / "scenarios" / "traces"
FORMATS = {
    "AzureLLMInferenceTrace_code.csv": "azure",
    "AzureLLMInferenceTrace_conv.csv": "azure",
    "mooncake_conversation_trace.jsonl": "mooncake",
    "ragpulse_week_trace.jsonl": "ragpulse",
}


def _raw_file_totals(path: Path) -> tuple[int, int, int, float]:
    """Count, token sums and span straight from the file, without capsim's reader."""
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        stamps = pd.to_datetime(frame["TIMESTAMP"]).astype("int64") / 1e9
        return (
            len(frame),
            int(frame["ContextTokens"].sum()),
            int(frame["GeneratedTokens"].sum()),
            float(stamps.max() - stamps.min()),
        )
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    scale = 1e-3 if "mooncake" in path.name else 1.0
    stamps = [float(r["timestamp"]) * scale for r in rows]
    return (
        len(rows),
        sum(r["input_length"] for r in rows),
        sum(r["output_length"] for r in rows),
        max(stamps) - min(stamps),
    )


def _replay(path: Path, fmt: str, horizon: float, **extra: object) -> object:
    workload = {
        "name": "replay",
        "model": "m",
        "route": ["serverless"],
        "arrivals": {"process": "trace", "path": str(path), "format": fmt, **extra},
    }
    models = {"m": {"price": {"input": 1.0, "output": 2.0}}}  # no context limit
    return run_checked(make_scenario(horizon=horizon, workloads=[workload], models=models))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_replay_bills_every_request_of_the_file_exactly(name: str) -> None:
    path = TRACES / name
    count, tokens_in, tokens_out, span = _raw_file_totals(path)
    result = _replay(path, FORMATS[name], horizon=span + 1)
    totals = result.report["totals"]  # type: ignore[attr-defined]
    assert totals["requests"] == totals["completed"] == count
    assert totals["input_tokens"] == tokens_in and totals["output_tokens"] == tokens_out
    assert math.isclose(totals["cost_usd"], (tokens_in * 1.0 + tokens_out * 2.0) / 1e6)
    r = result.runs[0].records  # type: ignore[attr-defined]
    assert r.arrival[-1] == pytest.approx(span, abs=1e-3)


def test_time_scale_and_loop() -> None:
    path = TRACES / "AzureLLMInferenceTrace_conv.csv"
    count, tokens_in, _, span = _raw_file_totals(path)
    fast = _replay(path, "azure", horizon=span / 2 + 1, time_scale=0.5)
    assert fast.report["totals"]["requests"] == count  # type: ignore[attr-defined]
    trace = load_trace(path, "azure")
    period = trace.span + trace.span / (count - 1)
    looped = _replay(path, "azure", horizon=3 * period, loop=True)
    totals = looped.report["totals"]  # type: ignore[attr-defined]
    assert totals["requests"] == 3 * count and totals["input_tokens"] == 3 * tokens_in
    arrivals = looped.runs[0].records.arrival  # type: ignore[attr-defined]
    assert np.allclose(arrivals[count : 2 * count] - period, trace.times)


def test_openai_and_together_batch_output_lines(tmp_path: Path) -> None:
    lines = [
        {
            "id": "batch_req_1",
            "custom_id": "r1",
            "response": {
                "status_code": 200,
                "body": {
                    "object": "chat.completion",
                    "usage": {"prompt_tokens": 8, "completion_tokens": 3},
                },
            },
            "error": None,
        },
        {
            "custom_id": "r2",
            "response": {
                "status_code": 200,
                "body": {"usage": {"prompt_tokens": 12, "completion_tokens": 5}},
            },
        },
        {"custom_id": "r3", "response": None, "error": {"code": "expired"}},
    ]
    batch = tmp_path / "batch_output.jsonl"
    batch.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    trace = load_trace(batch, "openai-usage")
    assert trace.times.tolist() == [0, 0]  # no time stamps: one batch submitted at t = 0
    assert trace.input_tokens.tolist() == [8, 12] and trace.output_tokens.tolist() == [3, 5]
    logs = tmp_path / "responses.jsonl"
    logs.write_text(
        "\n".join(
            json.dumps(
                {
                    "created": 1_700_000_000 + 7 * k,
                    "usage": {"prompt_tokens": 100 + k, "completion_tokens": 10},
                }
            )
            for k in range(5)
        )
        + "\n"
    )
    trace = load_trace(logs, "openai-usage")
    assert trace.times.tolist() == [0, 7, 14, 21, 28]
    assert int(trace.input_tokens.sum()) == 510


def test_generic_csv_with_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("t_ms,prompt,completion\n2500,10,5\n500,20,6\n1500,30,7\n")
    workload = {
        "name": "w",
        "model": "m",
        "route": ["serverless"],
        "arrivals": {
            "process": "trace",
            "path": str(path),
            "format": "csv",
            "columns": {
                "timestamp": "t_ms",
                "input_tokens": "prompt",
                "output_tokens": "completion",
                "time_unit": "ms",
            },
        },
    }
    result = run_checked(make_scenario(horizon=10, workloads=[workload]))
    r = result.runs[0].records
    assert r.arrival.tolist() == [0.0, 1.0, 2.0]  # sorted, from the first request
    assert r.input_tokens.tolist() == [20, 30, 10]



def test_a_log_whose_utc_offset_changes_is_read_in_utc(tmp_path: Path) -> None:
    """A proxy spend log across a daylight-saving change (-05:00 to -04:00 an hour later on
    the wall clock, two minutes later in fact): times are put in UTC, not refused; a log
    mixing times with and without an offset is refused naming the line."""
    from simulator.errors import ScenarioError
    from simulator.traffic.traces import CsvColumns

    columns = CsvColumns(time_unit="datetime")
    path = tmp_path / "spend.csv"
    path.write_text(
        "timestamp,input_tokens,output_tokens\n"
        "2024-03-10T01:59:00-05:00,10,5\n"
        "2024-03-10T03:01:00-04:00,20,6\n"
        "2024-03-10T07:02:30Z,30,7\n"
    )
    trace = load_trace(path, "csv", columns)
    assert trace.times.tolist() == [0.0, 120.0, 210.0]
    path.write_text(
        "timestamp,input_tokens,output_tokens\n"
        "2024-03-10T01:59:00-05:00,10,5\n"
        "2024-03-10T03:01:00,20,6\n"
    )
    with pytest.raises(ScenarioError, match=r"line 3.*no UTC offset"):
        load_trace(path, "csv", columns)

BAD_TRACES = {
    "missing column": (
        "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,374\n",
        "azure",
        "missing column 'GeneratedTokens'",
    ),
    "negative": (
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,374,44\n"
        "2023-11-16 18:15:47,-3,44\n",
        "azure",
        "line 3, column 'ContextTokens'",
    ),
    "unparsable": (
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,374,4x4\n",
        "azure",
        "line 2, column 'GeneratedTokens'",
    ),
    "bad date": (
        "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,374,44\n",
        "azure",
        "line 2, column 'TIMESTAMP'",
    ),
    "empty": ("", "azure", "empty"),
    "header only": ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "azure", "no rows"),
    "bad json": (
        '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": \n',
        "mooncake",
        "line 2",
    ),
    "missing field": (
        '{"timestamp": 0, "input_length": 5}\n',
        "mooncake",
        "line 1: missing field 'output_length'",
    ),
    "string number": (
        '{"timestamp": "12", "input_length": 5, "output_length": 1}\n'
        '{"timestamp": "soon", "input_length": 5, "output_length": 1}\n',
        "ragpulse",
        "line 2, column 'timestamp'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TRACES))
def test_bad_traces_exit_2_naming_file_and_line(tmp_path: Path, case: str) -> None:
    text, fmt, expected = BAD_TRACES[case]
    trace = tmp_path / ("trace.csv" if fmt == "azure" else "trace.jsonl")
    trace.write_text(text)
    data = scenario_dict()
    data["workloads"][0]["arrivals"] = {"process": "trace", "path": trace.name, "format": fmt}
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(data))
    for args in (
        ("run", str(scenario)),
        ("validate", str(scenario)),
        ("fit", str(trace), "--format", fmt),
    ):
        out = capsim(*args)
        assert out.returncode == 2, (args, out.stdout)
        assert "Traceback" not in out.stderr
        assert str(trace) in out.stderr and expected in out.stderr, out.stderr


def test_missing_trace_file_exits_2(tmp_path: Path) -> None:
    data = scenario_dict()
    data["workloads"][0]["arrivals"] = {"process": "trace", "path": "gone.csv", "format": "azure"}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    out = capsim("run", str(tmp_path / "s.yaml"))
    assert (
        out.returncode == 2
        and "gone.csv" in out.stderr
        and "no such file (the trace file)" in out.stderr
    )


def test_fit_of_the_azure_conversation_trace_matches_its_rate_and_cv() -> None:
    trace = load_trace(TRACES / "AzureLLMInferenceTrace_conv.csv", "azure")
    workload = fit_workload(trace, "conv", "m")
    quality = fit_quality(trace, workload)
    log_rate, log_cv = quality["rate_per_s"]["log"], quality["gap_cv"]["log"]
    assert log_rate == pytest.approx(19366 / 3501.721937, rel=1e-6)
    assert abs(quality["rate_per_s"]["model"] / log_rate - 1) < 0.02
    assert abs(quality["gap_cv"]["model"] / log_cv - 1) < 0.10
    assert quality["input_tokens_ks"] < 0.05 and quality["output_tokens_ks"] < 0.05


def test_fit_prints_a_workload_that_runs(tmp_path: Path) -> None:
    out = capsim(
        "fit",
        str(TRACES / "ragpulse_week_trace.jsonl"),
        "--format",
        "ragpulse",
        "--name",
        "rag",
        "--model",
        "m",
    )
    assert out.returncode == 0, out.stderr
    assert "# fit against the log" in out.stdout
    workload = yaml.safe_load(out.stdout)["workloads"][0]
    assert workload["arrivals"]["process"] == "diurnal"  # a week-long log: the daily cycle
    data = {**BASE, "horizon": "2d", "workloads": [workload]}
    run_checked(make_scenario(**{k: v for k, v in data.items() if k != "name"}))


def test_openai_usage_reads_batch_failures_the_responses_api_and_anthropic_results(
    tmp_path: Path,
) -> None:
    """Failed batch lines (HTTP 400 with body.error, Anthropic 'errored') served nothing and
    are skipped; Responses API lines (created_at, usage.input_tokens) and Anthropic batch
    results (result.message.usage) are read."""
    import json

    from simulator.traffic.traces import load_trace

    def chat(created: int, n_in: int, n_out: int) -> dict:
        body = {"created": created, "usage": {"prompt_tokens": n_in, "completion_tokens": n_out}}
        return {"response": {"status_code": 200, "body": body}, "error": None}

    failed = {
        "response": {"status_code": 400, "body": {"error": {"message": "bad request"}}},
        "error": None,
    }
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in [chat(10, 5, 6), failed, chat(12, 7, 8)]))
    trace = load_trace(batch, "openai-usage")
    assert list(trace.input_tokens) == [5, 7] and list(trace.times) == [0, 2]

    responses = tmp_path / "responses.jsonl"
    rows = [
        {"created_at": 100, "usage": {"input_tokens": 11, "output_tokens": 3}},
        {"created_at": 104, "usage": {"input_tokens": 13, "output_tokens": 4}},
    ]
    responses.write_text("\n".join(json.dumps(r) for r in rows))
    trace = load_trace(responses, "openai-usage")
    assert list(trace.output_tokens) == [3, 4] and list(trace.times) == [0, 4]

    anthropic = tmp_path / "anthropic.jsonl"
    message = {"usage": {"input_tokens": 20, "output_tokens": 9}}
    rows = [
        {"custom_id": "a", "result": {"type": "succeeded", "message": message}},
        {"custom_id": "b", "result": {"type": "errored", "error": {"type": "invalid_request"}}},
    ]
    anthropic.write_text("\n".join(json.dumps(r) for r in rows))
    trace = load_trace(anthropic, "openai-usage")
    assert list(trace.input_tokens) == [20] and list(trace.times) == [0]


def test_fit_warns_when_whole_second_timestamps_inflate_the_gap_cv(tmp_path: Path) -> None:
    """Poisson arrivals at 3/s logged to the second: a third of the gaps become 0 and the gap
    CV grows; fit says so on stderr and in its JSON. Sub-second times: no warning."""
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.exponential(1 / 3, 2000))
    for rounded, warned in ((True, True), (False, False)):
        stamps = np.floor(times) if rounded else times
        path = tmp_path / f"log{rounded}.csv"
        path.write_text(
            "timestamp,input_tokens,output_tokens\n"
            + "".join(f"{t:.3f},100,10\n" for t in stamps)
        )
        out = capsim("fit", str(path), "--format", "csv", "--output", "json")
        assert out.returncode == 0, out.stderr
        warnings = json.loads(out.stdout)["fit"]["warnings"]
        assert bool(warnings) is warned
        assert ("whole seconds" in out.stderr) is warned
