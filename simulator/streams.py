"""Seeded random streams: one independent generator per entity, keyed by its name.

Streams are `SeedSequence(seed, spawn_key=(replication, role, crc32(name), part))`, the
same mechanism as `SeedSequence.spawn`, but keyed by name instead of position, so adding,
removing or reordering a workload leaves every other workload's draws unchanged.
"""

from __future__ import annotations

import zlib

import numpy as np

WORKLOAD = 1
DEPLOYMENT = 2


def stream(seed: int, replication: int, role: int, name: str, part: int = 0) -> np.random.Generator:
    """The generator of one entity's draws (`part` separates e.g. arrivals from token lengths)."""
    key = (replication, role, zlib.crc32(name.encode("utf-8")), part)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))
