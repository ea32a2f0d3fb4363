"""capsim: a discrete-event simulator of LLM inference spend and latency.

The public API: load a scenario, run it, read the result.

    >>> import simulator
    >>> scenario = simulator.load_scenario("scenarios/serverless_pricing_guide.yaml")
    >>> result = simulator.run(scenario)
    >>> result.report["totals"]["monthly_cost_usd"]
    >>> busier = simulator.vary(scenario, {"workloads.chat.arrivals.rate": "4000000/month"})
"""

from simulator.errors import CapsimError, RunTooLargeError, ScenarioError
from simulator.report.result import Result
from simulator.scenario.format import Scenario
from simulator.scenario.loader import load_scenario
from simulator.scenario.variants import vary
from simulator.studies.run import run
from simulator.version import __version__

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
