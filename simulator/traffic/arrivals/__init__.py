"""Arrival processes by name (`arrivals.process` in a scenario): one registration each."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from simulator.traffic.arrivals.base import ArrivalProcess, Arrivals
from simulator.traffic.arrivals.closed import Closed
from simulator.traffic.arrivals.diurnal import Diurnal
from simulator.traffic.arrivals.jobs import BatchJobs
from simulator.traffic.arrivals.mmpp import MMPP
from simulator.traffic.arrivals.renewal import Gamma, Poisson
from simulator.traffic.arrivals.trace import TraceReplay

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
