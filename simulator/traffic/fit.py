"""Fitting a traffic profile to a usage log: an arrival model and token-length laws, printed
as a scenario workload, with how well each part fits the log.

Arrival model, chosen from the log's statistics:
- more than two days long: `diurnal` with 24 hourly weights (and 7 weekly weights from two
  weeks on), the daily cycle being what dominates such logs;
- per-minute counts over-dispersed (index of dispersion > 2, bursts that last minutes):
  a two-state `mmpp` whose states are the minutes above and below the mean count;
- otherwise a renewal process with the log's rate and gap CV: `poisson` when the CV is within
  5% of 1, else `gamma`.
Token lengths: a lognormal with the log's mean and CV when it fits (KS statistic < 0.05),
else an empirical law of 100 quantiles; a `token_correlation` (Gaussian copula) when the
Spearman correlation of input and output is beyond +-0.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.scenario.format import Workload
from simulator.traffic.arrivals import ArrivalProcess
from simulator.traffic.traces import Trace

DAY = 86400.0


@dataclass(frozen=True)
class TrafficStats:
    """What the fit is judged on: rate, gap CV, per-minute burstiness."""

    requests: int
    span_s: float
    rate: float
    gap_cv: float
    minute_peak_to_mean: float
    minute_dispersion: float


def traffic_stats(times: np.ndarray, span: float | None = None) -> TrafficStats:
    """Statistics of sorted arrival times (span: the observed window, default last - first)."""
    span = float(times[-1] - times[0]) if span is None else span
    gaps = np.diff(times)
    minutes = max(1, math.ceil(span / 60.0))
    counts = np.bincount(((times - times[0]) // 60).astype(np.int64), minlength=minutes)[:minutes]
    mean = counts.mean()
    return TrafficStats(
        requests=len(times),
        span_s=span,
        rate=len(times) / span if span > 0 else math.inf,
        gap_cv=float(gaps.std() / gaps.mean()) if len(gaps) > 1 and gaps.mean() > 0 else 0.0,
        minute_peak_to_mean=float(counts.max() / mean) if mean > 0 else 0.0,
        minute_dispersion=float(counts.var(ddof=1) / mean) if mean > 0 and minutes > 1 else 0.0,
    )


def _arrival_model(trace: Trace, stats: TrafficStats) -> dict[str, Any]:
    rate = stats.rate
    if stats.span_s > 2 * DAY:
        hours = ((trace.times % DAY) // 3600).astype(np.int64)
        days = np.maximum(1.0, stats.span_s / DAY)
        hourly = np.bincount(hours, minlength=24) / days
        spec: dict[str, Any] = {
            "process": "diurnal",
            "rate": _round(rate),
            "hourly": [_round(h / hourly.mean()) for h in hourly],
        }
        if stats.span_s >= 14 * DAY:
            weekday = ((trace.times // DAY) % 7).astype(np.int64)
            weekly = np.bincount(weekday, minlength=7).astype(np.float64)
            spec["weekly"] = [_round(w / weekly.mean()) for w in weekly]
        return spec
    if stats.minute_dispersion > 2:
        return _two_state_mmpp(trace, stats)
    if abs(stats.gap_cv - 1) <= 0.05:
        return {"process": "poisson", "rate": _round(rate)}
    # perfectly regular gaps (a cron job, a load generator) have CV 0, which no renewal law
    # draws: the smallest CV a gamma takes here, 0.01, is regular to the millisecond
    return {"process": "gamma", "rate": _round(rate), "cv": _round(max(stats.gap_cv, 0.01))}


def _two_state_mmpp(trace: Trace, stats: TrafficStats) -> dict[str, Any]:
    """Minutes above the mean count form the burst state, the rest the base state; each
    state's rate is its mean count per second, its mean duration its mean run of minutes."""
    minutes = max(2, math.ceil(stats.span_s / 60.0))
    counts = np.bincount((trace.times // 60).astype(np.int64), minlength=minutes)[:minutes]
    high = counts > counts.mean()
    states = []
    for flag in (True, False):
        mask = high == flag
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]]))))
        run_lengths = runs[::2]
        states.append(
            {
                "rate": _round(counts[mask].sum() / (mask.sum() * 60.0)),
                "mean_duration": f"{_round(run_lengths.mean() * 60.0):g}s",
            }
        )
    return {"process": "mmpp", "states": states}


def _length_model(values: np.ndarray) -> dict[str, Any]:
    from scipy import stats as sps

    mean = float(values.mean())
    cv = float(values.std() / mean) if mean > 0 else 0.0
    if cv == 0:
        return {"dist": "fixed", "value": int(values[0])}
    lognormal = {"dist": "lognormal", "mean": _round(mean), "cv": _round(cv)}
    sigma = math.sqrt(math.log1p(cv * cv))
    mu = math.log(mean) - sigma * sigma / 2
    ks = sps.kstest(values, "lognorm", args=(sigma, 0, math.exp(mu))).statistic
    if ks < 0.05:
        return lognormal
    quantiles = np.quantile(values, (np.arange(100) + 0.5) / 100, method="inverted_cdf")
    points, counts = np.unique(
        np.maximum(1, np.rint(quantiles)).astype(np.int64), return_counts=True
    )
    spec: dict[str, Any] = {"dist": "empirical", "values": points.tolist()}
    if np.any(counts != counts[0]):
        spec["weights"] = counts.tolist()
    return spec


def _round(value: float) -> float:
    """Six significant digits: enough for a scenario file, short enough to read."""
    return float(f"{value:.6g}")


def fit_workload(trace: Trace, name: str, model: str) -> dict[str, Any]:
    """A scenario workload (as plain data) fitted to the trace."""
    from scipy import stats as sps

    stats = traffic_stats(trace.times)
    workload: dict[str, Any] = {
        "name": name,
        "model": model,
        "arrivals": _arrival_model(trace, stats),
        "input_tokens": _length_model(trace.input_tokens.astype(np.float64)),
        "output_tokens": _length_model(trace.output_tokens.astype(np.float64)),
    }
    constant = np.ptp(trace.input_tokens) == 0 or np.ptp(trace.output_tokens) == 0
    spearman = (
        0.0
        if constant  # no rank correlation is defined
        else float(sps.spearmanr(trace.input_tokens, trace.output_tokens).statistic)
    )
    if abs(spearman) > 0.2:
        workload["token_correlation"] = _round(2 * math.sin(math.pi * spearman / 6))
    workload["route"] = ["serverless"]
    return workload


def fit_quality(trace: Trace, workload: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """The fitted model against the log: rate, gap CV, per-minute peak-to-mean, KS of lengths.

    The model's figures come from simulating it over the log's span with `seed`.
    """
    from scipy import stats as sps

    from simulator.traffic.draw import TokenSampler

    spec = Workload.model_validate(workload)
    process: ArrivalProcess = spec.arrivals
    log = traffic_stats(trace.times)
    rng = np.random.default_rng(seed)
    simulated = process.generate(rng, max(log.span_s, 1.0)).times
    model = traffic_stats(simulated, log.span_s) if len(simulated) > 2 else None
    n_in, n_out = TokenSampler(spec, seed, 0).sample(len(trace))
    quality: dict[str, Any] = {
        "requests": {"log": log.requests, "model": model.requests if model else 0},
        "rate_per_s": {
            "log": log.rate,
            "model": process.mean_rate(),
            "simulated": model.rate if model else None,
        },
        "gap_cv": {
            "log": log.gap_cv,
            "model": process.cv(),
            "simulated": model.gap_cv if model else None,
        },
        "minute_peak_to_mean": {
            "log": log.minute_peak_to_mean,
            "simulated": model.minute_peak_to_mean if model else None,
        },
        "minute_dispersion": {
            "log": log.minute_dispersion,
            "simulated": model.minute_dispersion if model else None,
        },
        "input_tokens_ks": float(sps.ks_2samp(trace.input_tokens, n_in).statistic),
        "output_tokens_ks": float(sps.ks_2samp(trace.output_tokens, n_out).statistic),
        "warnings": fit_warnings(trace.times, log),
    }
    return quality


def fit_warnings(times: np.ndarray, log: TrafficStats) -> list[str]:
    """What makes the fit less than it looks: timestamps rounded to whole seconds put
    several requests at the same instant, and those zero gaps inflate the gap CV."""
    warnings = []
    gaps = np.diff(times)
    if len(gaps) > 10 and np.all(times == np.round(times)):
        zero = float((gaps == 0).mean())
        if zero > 0.05:
            warnings.append(
                f"timestamps are whole seconds: {zero:.0%} of the gaps are 0 (requests in the "
                f"same second), which inflates the gap CV ({log.gap_cv:.2f}) and makes the "
                "fitted arrivals burstier than the traffic may be; use sub-second times if "
                "the log has them"
            )
    return warnings
