"""Task runners for the document batches, chosen by ``Settings.runner`` from a registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from docingest.config import RunnerName, Settings

RunnerFactory = Callable[[], TaskRunner]


@contextmanager
def _threads(settings: Settings) -> Iterator[RunnerFactory]:
    # Bounded: Prefect's thread pool is unbounded unless max_workers is set.
    yield lambda: ThreadPoolTaskRunner(max_workers=settings.effective_workers())


@contextmanager
def _dask(settings: Settings) -> Iterator[RunnerFactory]:
    """An existing cluster at ``dask_address``, or a local cluster of ``workers`` processes of
    one thread each, started once for the run (every batch's runner connects to it, so each
    worker process builds its engines once)."""
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        yield lambda: DaskTaskRunner(address=settings.dask_address)
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=settings.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        yield lambda: DaskTaskRunner(address=cluster.scheduler_address)


RUNNERS = {RunnerName.THREAD: _threads, RunnerName.DASK: _dask}


def task_runners(settings: Settings):
    """A context that yields a factory of task runners, one per batch of documents."""
    return RUNNERS[settings.runner](settings)
