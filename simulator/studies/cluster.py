"""Studies on a Dask cluster (`--dask ADDRESS`): the address checked before any work, the
connection, and an executor that runs a study's simulations there or on local processes.

Every study's runs are plain functions of (scenario, replication), so where they run does
not change the answer: `plan`, the forecast, `compare` and `sweep` give the same on a
cluster as on one machine (tests/test_studies.py checks it on a LocalCluster).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol

from simulator.engine import RunResult, simulate
from simulator.errors import CapsimError
from simulator.scenario.format import Scenario

MISSING = "--dask needs the dask extra: pip install 'capsim[dask]'"


def check_dask_address(address: str) -> str:
    """`address` if it reads as a Dask scheduler's (tcp://HOST:PORT, tls://..., HOST:PORT),
    else CapsimError saying what is expected; checked before any work starts."""
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:
        raise CapsimError(MISSING) from None
    expected = "expected a scheduler address such as tcp://10.0.0.5:8786"
    if not address.isascii() or not address.strip() or any(c.isspace() for c in address):
        raise CapsimError(f"--dask: {expected}, got {address!r}")
    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(location)
            if not host or port is None or not 0 < int(port) < 65536:
                raise ValueError("no host or port")
    except (ValueError, TypeError):
        raise CapsimError(f"--dask: {expected}, got {address!r}") from None
    return address


def connect(address: str) -> Any:
    """A Dask client of the scheduler at `address` (CapsimError if it cannot be reached)."""
    try:
        from distributed import Client
    except ImportError:
        raise CapsimError(MISSING) from None
    try:
        return Client(address, timeout="10s")  # type: ignore[no-untyped-call]
    except (OSError, ValueError, TypeError) as exc:
        raise CapsimError(f"--dask: cannot reach the scheduler at {address!r} ({exc})") from None


@contextmanager
def executor(workers: int, dask_address: str | None = None) -> Iterator[Executor]:
    """`workers` local processes, or the Dask cluster at `dask_address` when given."""
    if dask_address is None:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield pool
        return
    client = connect(dask_address)
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()


class Search(Protocol):
    """What `evaluate_all` needs of a plan's search over fleet sizes (`plan._Search`)."""

    runs: int

    def missing(self, n: int, spillover: bool, replications: int) -> range: ...

    def variant(self, n: int, spillover: bool) -> Scenario: ...

    def store(self, n: int, spillover: bool, variant: Scenario, new: list[RunResult]) -> Any: ...


def evaluate_all(
    wanted: Sequence[tuple[Search, int, bool]],
    replications: int,
    workers: int,
    progress: Callable[[float], None] | None = None,
    dask: str | None = None,
) -> None:
    """Run, on `workers` processes at once or on the Dask cluster at `dask`, the
    replications not run yet of many sizes (each a search, a size and whether it overflows):
    the runs the search would make one by one, so the same answers, and later evaluations
    of them cost nothing. With one worker and no cluster, nothing: each is run when it is
    asked for."""
    jobs: list[tuple[Search, int, bool, Scenario, range]] = []
    seen: set[tuple[int, int, bool]] = set()
    for search, n, spillover in wanted:
        if (id(search), n, spillover) in seen:
            continue
        seen.add((id(search), n, spillover))
        todo = search.missing(n, spillover, replications)
        if todo:
            jobs.append((search, n, spillover, search.variant(n, spillover), todo))
    total = sum(len(todo) for *_, todo in jobs)
    if (workers <= 1 and dask is None) or total <= 1:
        return
    done = 0
    with executor(min(max(workers, 1), total), dask) as pool:
        futures = [[pool.submit(simulate, job[3], rep) for rep in job[4]] for job in jobs]
        for (search, n, spillover, variant, _), runs in zip(jobs, futures, strict=True):
            new = []
            for future in runs:
                new.append(future.result())
                search.runs += 1
                done += 1
                if progress is not None:
                    progress(done / total)
            search.store(n, spillover, variant, new)
