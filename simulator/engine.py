"""The engine: one run of a scenario — traffic through routes to deployments, into records.

The SimPy environment lives only here. Arrivals are generated up front in numpy, merged in
time order (ties broken by workload order) and fed by one dispatcher process; a request goes
to the first deployment of its workload's route that admits it. Deployments whose latency is
closed-form (serverless, batch) fill the record at once; models that need the clock
(dedicated replicas) schedule their own SimPy events. After the horizon, arrivals stop and
the environment runs until every request in flight has finished (drain).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from simulator.deployments import DEPLOYMENT_MODELS, DeploymentModel, DeploymentSummary
from simulator.deployments.base import EngineContext
from simulator.records import Outcome, Reason, Records
from simulator.scenario import Scenario
from simulator.streams import DEPLOYMENT, stream
from simulator.traffic import scenario_traffic

ProgressCallback = Callable[[float], None]
_PROGRESS_EVERY = 1 << 16


@dataclass
class RunResult:
    """Everything one run produced; the report is computed from it, never the other way."""

    scenario: Scenario
    replication: int
    records: Records
    deployment_names: list[str]
    summaries: list[DeploymentSummary]
    spilled: list[int]
    end_time: float


def _merge_traffic(scenario: Scenario, replication: int) -> Records:
    traffic = scenario_traffic(scenario, replication)
    times = np.concatenate([t.times for t in traffic])
    workload = np.concatenate(
        [np.full(len(t.times), w, dtype=np.int32) for w, t in enumerate(traffic)]
    )
    order = np.lexsort((workload, times))
    return Records.allocate(
        workload[order],
        times[order],
        np.concatenate([t.input_tokens for t in traffic])[order],
        np.concatenate([t.output_tokens for t in traffic])[order],
    )


def _reject_over_context(scenario: Scenario, records: Records) -> np.ndarray:
    """Mark requests longer than their model's context window; returns the admissible mask."""
    limits = np.array(
        [
            scenario.models[w.model].context_length or np.iinfo(np.int64).max
            for w in scenario.workloads
        ],
        dtype=np.int64,
    )
    too_long = records.input_tokens + records.output_tokens > limits[records.workload]
    records.outcome[too_long] = Outcome.REJECTED
    records.reason[too_long] = Reason.CONTEXT_LENGTH
    admissible: np.ndarray = ~too_long
    return admissible


def _dispatch(
    env: simpy.Environment,
    records: Records,
    admissible: np.ndarray,
    routes: list[list[DeploymentModel]],
    clocked: bool,
    progress: ProgressCallback | None,
) -> Generator[Any, Any, None]:
    arrival = records.arrival
    workload = records.workload
    n = len(records)
    for i in range(n):
        t = float(arrival[i])
        if clocked and t > env.now:
            yield env.timeout(t - env.now)
        if progress is not None and i % _PROGRESS_EVERY == 0:
            progress(i / n)
        if not admissible[i]:
            continue
        spills = 0
        for deployment in routes[workload[i]]:
            if deployment.offer(i, t):
                records.deployment[i] = deployment.index
                break
            deployment.spilled += 1
            spills += 1
        else:
            records.outcome[i] = Outcome.REJECTED
            records.reason[i] = Reason.NO_CAPACITY
        records.spills[i] = spills
    if progress is not None:
        progress(1.0)
    yield from ()  # a SimPy process even when no deployment needs the clock


def simulate(
    scenario: Scenario, replication: int = 0, progress: ProgressCallback | None = None
) -> RunResult:
    """Run the scenario once (replication `replication` of its seed) and return the records."""
    records = _merge_traffic(scenario, replication)
    admissible = _reject_over_context(scenario, records)
    env = simpy.Environment()
    models: list[DeploymentModel] = []
    for index, spec in enumerate(scenario.deployments):
        rng = stream(scenario.seed, replication, DEPLOYMENT, spec.name)
        context = EngineContext(scenario, records, env, rng)
        models.append(DEPLOYMENT_MODELS[spec.kind](spec, index, context))
    by_name = {m.name: m for m in models}
    routes = [[by_name[name] for name in w.route] for w in scenario.workloads]
    clocked = any(m.uses_clock for m in models)
    env.process(_dispatch(env, records, admissible, routes, clocked, progress))
    env.run()
    if np.any(records.outcome == Outcome.PENDING):
        raise RuntimeError("engine bug: requests left pending after the drain")
    finished = records.finish[records.outcome == Outcome.COMPLETED]
    end_time = max(scenario.horizon, float(finished.max()) if len(finished) else 0.0)
    return RunResult(
        scenario=scenario,
        replication=replication,
        records=records,
        deployment_names=[m.name for m in models],
        summaries=[m.summary() for m in models],
        spilled=[m.spilled for m in models],
        end_time=end_time,
    )
