"""capsim: a discrete-event simulator of LLM inference spend and latency.

The public API: load a scenario, run it, read the result.

    >>> import simulator
    >>> scenario = simulator.load_scenario("scenarios/serverless_pricing_guide.yaml")
    >>> result = simulator.run(scenario)
    >>> result.report["totals"]["monthly_cost_usd"]
    >>> busier = simulator.vary(scenario, {"workloads.chat.arrivals.rate": "4000000/month"})
"""

from typing import TYPE_CHECKING, Any

from simulator.errors import CapsimError, RunTooLargeError, ScenarioError
from simulator.version import __version__

if TYPE_CHECKING:
    from simulator.report.result import Result
    from simulator.scenario.format import Scenario
    from simulator.scenario.loader import load_scenario
    from simulator.scenario.variants import vary
    from simulator.studies.run import run

# imported on first use, so that `capsim --help` does not load the simulator (PEP 562)
_LAZY = {
    "Result": "simulator.report.result",
    "Scenario": "simulator.scenario.format",
    "load_scenario": "simulator.scenario.loader",
    "vary": "simulator.scenario.variants",
    "run": "simulator.studies.run",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CapsimError",
    "Result",
    "RunTooLargeError",
    "Scenario",
    "ScenarioError",
    "__version__",
    "load_scenario",
    "run",
    "vary",
]
