"""Traffic: each workload's arrival times and token lengths, drawn from its own streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.scenario import Scenario, Workload
from simulator.streams import WORKLOAD, stream

ARRIVALS, INPUT_TOKENS, OUTPUT_TOKENS = 0, 1, 2


@dataclass(frozen=True)
class WorkloadTraffic:
    """The requests one workload offers over the horizon, in arrival order."""

    times: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray


def workload_traffic(
    workload: Workload, horizon: float, seed: int, replication: int = 0
) -> WorkloadTraffic:
    """Arrivals from the workload's process, lengths from its distributions (or the trace)."""
    rng = stream(seed, replication, WORKLOAD, workload.name, ARRIVALS)
    arrivals = workload.arrivals.generate(rng, horizon)
    n = len(arrivals.times)
    if arrivals.input_tokens is not None:
        input_tokens = arrivals.input_tokens.astype(np.int64)
    else:
        rng_in = stream(seed, replication, WORKLOAD, workload.name, INPUT_TOKENS)
        input_tokens = workload.input_tokens.sample(rng_in, n)
    if arrivals.output_tokens is not None:
        output_tokens = arrivals.output_tokens.astype(np.int64)
    else:
        rng_out = stream(seed, replication, WORKLOAD, workload.name, OUTPUT_TOKENS)
        output_tokens = workload.output_tokens.sample(rng_out, n)
    return WorkloadTraffic(arrivals.times.astype(np.float64), input_tokens, output_tokens)


def scenario_traffic(scenario: Scenario, replication: int = 0) -> list[WorkloadTraffic]:
    """Every workload's traffic, in the scenario's workload order."""
    return [
        workload_traffic(w, scenario.horizon, scenario.seed, replication)
        for w in scenario.workloads
    ]
