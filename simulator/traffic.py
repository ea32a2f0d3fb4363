"""Traffic: each workload's arrival times and token lengths, drawn from its own streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from simulator.scenario import Scenario, Workload
from simulator.streams import WORKLOAD, stream

ARRIVALS, INPUT_TOKENS, OUTPUT_TOKENS = 0, 1, 2


@dataclass(frozen=True)
class WorkloadTraffic:
    """The requests one workload offers over the horizon, in arrival order."""

    times: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray


class TokenSampler:
    """Draws a workload's (input, output) token lengths from its own two streams."""

    def __init__(self, workload: Workload, seed: int, replication: int) -> None:
        self.workload = workload
        self.rng_in = stream(seed, replication, WORKLOAD, workload.name, INPUT_TOKENS)
        self.rng_out = stream(seed, replication, WORKLOAD, workload.name, OUTPUT_TOKENS)

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        w = self.workload
        if w.token_pairs is not None:
            return w.token_pairs.sample(self.rng_in, n)
        if w.input_tokens is None or w.output_tokens is None:
            raise ValueError(f"workload {w.name!r} has no token-length model")
        if w.token_correlation is not None:
            # Gaussian copula: correlated normals mapped through each law's quantile function
            rho = w.token_correlation
            z_in = self.rng_in.standard_normal(n)
            z_out = rho * z_in + np.sqrt(1.0 - rho * rho) * self.rng_out.standard_normal(n)
            return w.input_tokens.sample_at(ndtr(z_in)), w.output_tokens.sample_at(ndtr(z_out))
        return w.input_tokens.sample(self.rng_in, n), w.output_tokens.sample(self.rng_out, n)


def workload_traffic(
    workload: Workload, horizon: float, seed: int, replication: int = 0, clock: float = 0.0
) -> WorkloadTraffic:
    """Arrivals from the workload's process, lengths from its distributions (or the trace)."""
    rng = stream(seed, replication, WORKLOAD, workload.name, ARRIVALS)
    arrivals = workload.arrivals.generate(rng, horizon, clock)
    if arrivals.input_tokens is not None and arrivals.output_tokens is not None:
        input_tokens = arrivals.input_tokens.astype(np.int64)
        output_tokens = arrivals.output_tokens.astype(np.int64)
    else:
        input_tokens, output_tokens = TokenSampler(workload, seed, replication).sample(
            len(arrivals.times)
        )
    return WorkloadTraffic(arrivals.times.astype(np.float64), input_tokens, output_tokens)


def scenario_traffic(scenario: Scenario, replication: int = 0) -> list[WorkloadTraffic]:
    """Every workload's traffic, in the scenario's workload order."""
    return [
        workload_traffic(w, scenario.horizon, scenario.seed, replication, scenario.clock)
        for w in scenario.workloads
    ]
