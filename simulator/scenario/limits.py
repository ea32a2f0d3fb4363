"""Bounds on what a scenario may ask for: past them a value is a typo or an attack, not a
plan. Each is far beyond any real deployment and keeps the arithmetic exact (token counts
and their sums stay well inside int64 and float64's exact integers)."""

from __future__ import annotations

MAX_TOKENS = 10_000_000
"""Tokens of one request's prompt or answer (the longest context windows are ~10M)."""

MAX_REPLICAS = 10_000
"""Replicas of one deployment (reserved, autoscaled or a cluster's)."""

MAX_CLUSTER_GPUS = 100_000
"""GPUs of one cluster."""

MAX_USD_PER_1M_TOKENS = 100_000.0
"""A token price (the dearest published ones are a few hundred dollars per 1M tokens)."""

MAX_USD_PER_GPU_HOUR = 10_000.0
"""A GPU-hour (a rented GPU costs a few dollars an hour)."""

MAX_TOKENS_PER_S = 1e9
"""Any speed in tokens per second (prefill, output, batch processing)."""

MAX_CLOSED_LOOP_REQUESTS = 30_000_000
"""Requests closed-loop clients may issue in one run (their count is known only as it runs)."""

MAX_TIMER_TICKS = 10_000_000
"""Timer events a run may schedule (autoscaler intervals, traffic state switches)."""

# deployments in a scenario: a record's deployment index and spill count are 16-bit
MAX_DEPLOYMENTS = 10_000
