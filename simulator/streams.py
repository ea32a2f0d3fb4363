"""Seeded random streams: one independent generator per entity, keyed by its name.

Streams are `SeedSequence(seed, spawn_key=(replication, role, *digest(name), part))`, the
same mechanism as `SeedSequence.spawn`, but keyed by name instead of position, so adding,
removing or reordering a workload leaves every other workload's draws unchanged. The name
enters as its SHA-256 digest (eight 32-bit words): two different names never share a
stream (keyed by a CRC32 of the name, as before, `plumless` and `buckeroo` did, and drew
identical traffic).
"""

from __future__ import annotations

import hashlib

import numpy as np

WORKLOAD = 1
DEPLOYMENT = 2


def name_key(name: str) -> tuple[int, ...]:
    """The name's SHA-256 digest as eight 32-bit words."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4))


def stream(seed: int, replication: int, role: int, name: str, part: int = 0) -> np.random.Generator:
    """The generator of one entity's draws (`part` separates e.g. arrivals from token lengths)."""
    key = (replication, role, *name_key(name), part)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))
