"""Same seed, same report byte for byte; streams belong to entities, not positions."""

import numpy as np

from simulator import run
from simulator.report.build import to_json
from tests.helpers import BASE, make_scenario

WORKLOADS = [
    {
        **BASE["workloads"][0],
        "name": "a",
        "input_tokens": {"dist": "lognormal", "mean": 1000, "cv": 1.2},
    },
    {
        **BASE["workloads"][0],
        "name": "b",
        "arrivals": {"process": "poisson", "rate": "3/s"},
        "output_tokens": {"dist": "exponential", "mean": 200},
    },
]


def test_same_seed_gives_a_byte_identical_report() -> None:
    scenario = make_scenario(workloads=WORKLOADS)
    assert to_json(run(scenario).report) == to_json(run(scenario).report)


def test_another_seed_gives_another_report() -> None:
    scenario = make_scenario(workloads=WORKLOADS)
    assert to_json(run(scenario).report) != to_json(run(scenario, seed=2).report)


def _draws(result: object, name: str) -> tuple[np.ndarray, ...]:
    run0 = result.runs[0]  # type: ignore[attr-defined]
    index = [w.name for w in run0.scenario.workloads].index(name)
    r = run0.records
    mine = r.workload == index
    return r.arrival[mine], r.input_tokens[mine], r.output_tokens[mine]


def test_adding_or_reordering_workloads_leaves_other_draws_unchanged() -> None:
    alone = run(make_scenario(workloads=WORKLOADS[:1]))
    extra = {**WORKLOADS[1], "name": "c"}
    with_more = run(make_scenario(workloads=[extra, WORKLOADS[0], WORKLOADS[1]]))
    for before, after in zip(_draws(alone, "a"), _draws(with_more, "a"), strict=True):
        assert np.array_equal(before, after)


def test_changing_one_distribution_leaves_the_arrival_times_unchanged() -> None:
    base = run(make_scenario(workloads=WORKLOADS[:1]))
    other = {**WORKLOADS[0], "output_tokens": {"dist": "uniform", "low": 1, "high": 9}}
    changed = run(make_scenario(workloads=[other]))
    assert np.array_equal(_draws(base, "a")[0], _draws(changed, "a")[0])
    assert np.array_equal(_draws(base, "a")[1], _draws(changed, "a")[1])


def test_workloads_whose_names_share_a_crc32_draw_different_traffic() -> None:
    """Streams were keyed by a CRC32 of the name: 'plumless' and 'buckeroo' collide, and drew
    the very same arrivals and lengths. Keyed by the name's SHA-256, they do not."""
    import zlib

    from simulator.traffic.draw import scenario_traffic
    from tests.helpers import BASE, make_scenario

    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")
    workloads = [{**BASE["workloads"][0], "name": name} for name in ("plumless", "buckeroo")]
    for w in workloads:
        w["input_tokens"] = {"dist": "lognormal", "mean": 500, "cv": 1}
    first, second = scenario_traffic(make_scenario(workloads=workloads))
    assert len(first.times) > 100 and len(second.times) > 100
    common = min(len(first.times), len(second.times))
    assert not np.array_equal(first.times[:common], second.times[:common])
    assert not np.array_equal(first.input_tokens[:common], second.input_tokens[:common])
