"""Arrival processes by name (`arrivals.process` in a scenario): one registration each."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from simulator.arrivals.base import ArrivalProcess, Arrivals
from simulator.arrivals.closed import Closed
from simulator.arrivals.diurnal import Diurnal
from simulator.arrivals.jobs import BatchJobs
from simulator.arrivals.mmpp import MMPP
from simulator.arrivals.renewal import Gamma, Poisson
from simulator.arrivals.trace import TraceReplay

ArrivalSpec = Annotated[
    Poisson | Gamma | MMPP | Diurnal | BatchJobs | Closed | TraceReplay,
    Field(discriminator="process"),
]

__all__ = [
    "MMPP",
    "ArrivalProcess",
    "ArrivalSpec",
    "Arrivals",
    "BatchJobs",
    "Closed",
    "Diurnal",
    "Gamma",
    "Poisson",
    "TraceReplay",
]
