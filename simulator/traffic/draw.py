"""Traffic: each workload's arrival times and token lengths, drawn from its own streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.records import Blocks
from simulator.scenario.format import PrefixSpec, Scenario, Workload
from simulator.streams import WORKLOAD, name_key, stream
from simulator.traffic.traces import TRACE_BLOCK_TOKENS

ARRIVALS, INPUT_TOKENS, OUTPUT_TOKENS, PREFIX, IMAGES = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class WorkloadTraffic:
    """The requests one workload offers over the horizon, in arrival order."""

    times: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    blocks: Blocks | None = None  # prompts' KV-cache blocks (a trace's, or a `prefix`'s)
    block_tokens: int = 0
    image_tokens: np.ndarray | None = None  # of the input tokens, those images became


def prefix_blocks(
    prefix: PrefixSpec, name: str, input_tokens: np.ndarray, rng: np.random.Generator
) -> Blocks:
    """Block ids of prompts whose first `shared_tokens` are their group's: shared blocks get
    the same id in every prompt of a group, the rest of a prompt ids of its own. Ids are
    negative (a trace's are >= 0) and keyed by the workload's name."""
    block = prefix.block_tokens
    n = len(input_tokens)
    counts = -(-input_tokens // block)
    shared = np.minimum(np.minimum(prefix.shared_tokens, input_tokens) // block, counts)
    groups = rng.integers(0, prefix.groups, n)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    position = np.arange(starts[-1]) - np.repeat(starts[:-1], counts)  # block index in prompt
    owner = np.repeat(np.arange(n), counts)
    namespace = name_key(name)[0] & 0xFFFFF
    shared_ids = -(1 + (namespace * 10_001 + groups[owner]) * 65_536 + position)
    unique_ids = -((1 << 60) + namespace * (1 << 39) + np.arange(starts[-1]))
    ids = np.where(position < shared[owner], shared_ids, unique_ids)
    return Blocks(ids.astype(np.int64), starts)


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
            from scipy.special import ndtr

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
    image_tokens = None
    if workload.images is not None:  # images become input tokens (their own stream)
        rng_images = stream(seed, replication, WORKLOAD, workload.name, IMAGES)
        counts = workload.images.counts(rng_images, len(input_tokens))
        image_tokens = counts * workload.images.tokens_per_image
        input_tokens = input_tokens + image_tokens
    blocks, block_tokens = arrivals.blocks, TRACE_BLOCK_TOKENS
    if workload.prefix is not None:
        rng_prefix = stream(seed, replication, WORKLOAD, workload.name, PREFIX)
        blocks = prefix_blocks(workload.prefix, workload.name, input_tokens, rng_prefix)
        block_tokens = workload.prefix.block_tokens
    return WorkloadTraffic(
        arrivals.times.astype(np.float64),
        input_tokens,
        output_tokens,
        blocks,
        block_tokens if blocks is not None else 0,
        image_tokens,
    )


def scenario_traffic(scenario: Scenario, replication: int = 0) -> list[WorkloadTraffic]:
    """Every workload's traffic, in the scenario's workload order."""
    return [
        workload_traffic(w, scenario.horizon, scenario.seed, replication, scenario.clock)
        for w in scenario.workloads
    ]
