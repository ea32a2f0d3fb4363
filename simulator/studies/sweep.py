"""Sweeps: many runs of one scenario, over a grid of scenario paths and seeds, in parallel
on local processes or on a Dask cluster. Each run is a plain function of (scenario data,
seed), so the table is the same whatever runs it."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from simulator.errors import CapsimError
from simulator.report.build import TOTAL_KEYS as TOTALS
from simulator.scenario.variants import set_path
from simulator.studies.cluster import check_dask_address, connect

__all__ = ["check_dask_address", "grid_points", "run_point", "sweep"]


def grid_points(grid: Any) -> list[dict[str, Any]]:
    """The runs of a grid `{vary: {path: [values]}, seeds: [..]}`: one dict of path values
    and `seed` per run, in a fixed order (paths in file order, then seeds)."""
    if not isinstance(grid, dict):
        raise CapsimError("--grid: expected a mapping with 'vary' and optionally 'seeds'")
    unknown = set(grid) - {"vary", "seeds"}
    if unknown:
        raise CapsimError(f"--grid: unknown key {sorted(unknown)[0]!r} (use vary and seeds)")
    vary = grid.get("vary") or {}
    if not isinstance(vary, dict) or not all(isinstance(v, list) and v for v in vary.values()):
        raise CapsimError("--grid: vary must map each path to a non-empty list of values")
    seeds = grid.get("seeds", [None])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(
            s is None or (isinstance(s, int) and not isinstance(s, bool) and s >= 0)
            for s in seeds
        )
    ):
        raise CapsimError("--grid: seeds must be a list of whole numbers >= 0")
    points = []
    for values in itertools.product(*vary.values()):
        for seed in seeds:
            points.append({**dict(zip(vary, values, strict=True)), "seed": seed})
    return points


def check_points(
    data: dict[str, Any], base_dir: str, source: str, grid: dict[str, Any]
) -> None:
    """Every value of the grid applied to the scenario and validated before the first run:
    CapsimError naming the grid entry (`vary.PATH[i]`) and what the scenario refused, never
    the value's text (a grid is a file the user pointed at)."""
    from simulator.errors import ScenarioError
    from simulator.scenario.loader import scenario_from_data

    for path, values in (grid.get("vary") or {}).items():
        for i, value in enumerate(values):
            try:
                scenario_from_data(set_path(data, path, value), source, Path(base_dir))
            except (ScenarioError, CapsimError) as exc:
                problems = exc.problems if isinstance(exc, ScenarioError) else [str(exc)]
                said = "; ".join(unquoted(p) for p in problems[:3])
                raise CapsimError(f"vary.{path}[{i}]: the scenario refuses it: {said}") from None


def unquoted(problem: str) -> str:
    """A validation problem without the value it quotes (`(got ...)`, `, got ...`)."""
    problem = re.sub(r"\s*\(got .*\)\s*$", "", problem)
    return re.sub(r",? got .*$", "", problem)


def run_point(
    data: dict[str, Any], base_dir: str, source: str, point: dict[str, Any]
) -> dict[str, Any]:
    """One run of the sweep: never raises, a failure is its row's status."""
    from simulator.scenario.loader import scenario_from_data
    from simulator.studies.run import run

    row: dict[str, Any] = dict(point)
    try:
        variant = data
        for path, value in point.items():
            if path != "seed":
                variant = set_path(variant, path, value)
        scenario = scenario_from_data(variant, source, Path(base_dir))
        seed = point.get("seed")
        report = run(scenario, seed=seed).report
        row["seed"] = report["seed"]
        row["status"] = "ok"
        row.update({k: report["totals"][k] for k in TOTALS})
        row.update(outcome_columns(report))
    except CapsimError as exc:
        row["status"] = f"error: {exc}"
        row.update(dict.fromkeys(TOTALS))
    return row


def outcome_columns(report: dict[str, Any]) -> dict[str, Any]:
    """What a sweep row says besides the totals: each workload's TTFT p95, TPOT p95, E2E p99,
    whether its SLOs were all met and its lowest attainment; each deployment's spill (and,
    for a fleet, whether it was overloaded)."""
    columns: dict[str, Any] = {}
    for w in report["workloads"]:
        if w.get("unattributed"):
            continue
        name, latency = w["name"], w["latency"]
        columns[f"{name}.ttft_p95_s"] = latency["ttft_s"]["p95"]
        columns[f"{name}.tpot_p95_s"] = latency["tpot_s"]["p95"]
        columns[f"{name}.e2e_p99_s"] = latency["e2e_s"]["p99"]
        if w["slo"]:
            attainments = [e["attainment"] for e in w["slo"] if e["attainment"] is not None]
            columns[f"{name}.slo_met"] = all(e["met"] for e in w["slo"])
            columns[f"{name}.min_attainment"] = min(attainments) if attainments else None
    for d in report["deployments"]:
        columns[f"{d['name']}.spilled"] = d["spilled"]
        if "overloaded" in d:
            columns[f"{d['name']}.overloaded"] = d["overloaded"]
    return columns


def shipped(
    data: dict[str, Any], base_dir: Path, source: str, points: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], str, str, dict[str, Any]]]:
    """The arguments of `run_point` for each point, as they travel to a worker: the
    scenario's folder made absolute, since a Dask worker (or a process started elsewhere)
    has its own working directory and the traces, tables and catalogs a scenario names
    are relative to that folder."""
    folder = str(Path(base_dir).resolve())
    return [(data, folder, source, p) for p in points]


def sweep(
    data: dict[str, Any],
    base_dir: Path,
    source: str,
    points: list[dict[str, Any]],
    workers: int | None = None,
    dask_address: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[dict[str, Any]]:
    """Every point run once; rows in the order of `points`."""
    args = shipped(data, base_dir, source, points)
    if dask_address is not None:
        return _on_dask(args, dask_address, progress)
    if workers == 1:
        return _collect((run_point(*a) for a in args), len(args), progress)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_point, *a) for a in args]
        return _collect((f.result() for f in futures), len(args), progress)


def _collect(
    rows: Iterable[dict[str, Any]], total: int, progress: Callable[[float], None] | None
) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        out.append(row)
        if progress is not None:
            progress(len(out) / total)
    return out


def _settled(future: Any, point: dict[str, Any]) -> dict[str, Any]:
    """A Dask future's row; a run the cluster lost (its worker killed more times than the
    scheduler retries it, say) is a failed row, not an exception that ends the sweep."""
    try:
        return dict(future.result())
    except Exception as exc:  # distributed's KilledWorker, a lost connection, ...
        row = dict(point)
        row["status"] = f"error: the cluster lost this run ({type(exc).__name__})"
        row.update(dict.fromkeys(TOTALS))
        return row


def _on_dask(
    args: list[tuple[Any, ...]], address: str, progress: Callable[[float], None] | None
) -> list[dict[str, Any]]:
    client = connect(address)
    try:
        futures = [client.submit(run_point, *a, pure=False) for a in args]
        return _collect(
            (_settled(f, a[-1]) for f, a in zip(futures, args, strict=True)), len(args), progress
        )
    finally:
        client.close()
