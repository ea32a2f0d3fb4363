"""Running a scenario: replications from one seed, and the result a user reads."""

from __future__ import annotations

from collections.abc import Callable

from simulator.engine import RunResult, simulate
from simulator.errors import RunTooLargeError
from simulator.report.build import build_report, combine_reports
from simulator.report.result import Result
from simulator.scenario.format import Scenario
from simulator.scenario.limits import MAX_TIMER_TICKS

MAX_REQUESTS = 30_000_000
"""Requests per run beyond which a run is refused unless forced (about 60 B of records each)."""
REQUESTS_PER_SECOND = 200_000
"""Rough engine speed (mixed runs, benchmarks/bench_scale.py), only for the estimate in the
refusal message."""


def check_size(scenario: Scenario, replications: int, force: bool = False) -> None:
    """Refuse, up front, a study whose work is absurd for this machine: its requests over
    all replications (their records are all kept), or the timer events of one (thinning
    candidates, traffic state switches, autoscaler evaluations), naming the cause."""
    if force:
        return
    expected = scenario.expected_requests()
    total = expected * replications
    if total > MAX_REQUESTS:
        seconds = total / REQUESTS_PER_SECOND
        raise RunTooLargeError(
            f"horizon, arrivals: scenario {scenario.name!r} would simulate about "
            f"{expected:,.0f} requests per replication x {replications} (about "
            f"{total * 60 / 1e9:.1f} GB of records and {seconds / 60:.0f} min); the limit is "
            f"{MAX_REQUESTS:,}. Shorten the horizon, lower the rate or the replications, or "
            "pass --force to run it anyway."
        )
    for cause, events in scenario.timer_work():
        if events > MAX_TIMER_TICKS:
            raise RunTooLargeError(
                f"{cause}: scenario {scenario.name!r} would schedule about {events:,.0f} "
                f"events per replication besides its requests; the limit is "
                f"{MAX_TIMER_TICKS:,}. Lengthen the interval or durations, shorten the "
                "horizon, or pass --force to run it anyway."
            )


def run(
    scenario: Scenario,
    seed: int | None = None,
    replications: int | None = None,
    progress: Callable[[float], None] | None = None,
    force: bool = False,
) -> Result:
    """Simulate `scenario` (optionally with another seed or replication count)."""
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": seed})
    count = replications if replications is not None else scenario.replications
    if count < 1:
        raise ValueError("replications must be >= 1")
    check_size(scenario, count, force)
    return result_of(scenario, simulate_replications(scenario, range(count), progress))


def simulate_replications(
    scenario: Scenario, replications: range, progress: Callable[[float], None] | None = None
) -> list[RunResult]:
    """Replications `replications` of the scenario (each its own streams of the one seed:
    replication k is the same run whoever asks for it, alone or among others)."""
    runs = []
    for k, rep in enumerate(replications):

        def step(fraction: float, k: int = k) -> None:
            if progress is not None:
                progress((k + fraction) / len(replications))

        runs.append(simulate(scenario, rep, step))
    return runs


def result_of(scenario: Scenario, runs: list[RunResult]) -> Result:
    """The result a user reads from these runs: their reports combined."""
    report = combine_reports([build_report(r) for r in runs])
    return Result(scenario, report, runs)
