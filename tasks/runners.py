"""Task runners for the document batches, chosen by ``Settings.runner`` from a registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from docingest.config import ExtractorName, RunnerName, Settings
from docingest.tasks.documents import document_workers

RunnerFactory = Callable[[], TaskRunner]

# `auto` uses worker processes from this many documents to process on. Each worker costs an
# interpreter start and docingest's pipeline imports (≈ 0.3 s) before its first document, so a
# handful of documents finish sooner on threads. 8 is a judgement, not a measured crossover.
PROCESS_MIN_DOCUMENTS = 8


def choose_runner(settings: Settings, documents: int) -> RunnerName:
    """The runner for ``documents`` documents to process. Worker processes use every core on
    local reading (text layers, OCR, rules hold the GIL, so threads take turns on one core); a
    VLM run's documents mostly wait on the endpoint, and threads wait as well as processes."""
    if settings.runner != RunnerName.AUTO:
        return settings.runner
    if (settings.workers > 1 and documents >= PROCESS_MIN_DOCUMENTS
            and settings.effective_extractor() == ExtractorName.LOCAL):
        return RunnerName.PROCESS
    return RunnerName.THREAD


@contextmanager
def _threads(settings: Settings, run_id: str) -> Iterator[RunnerFactory]:
    # Bounded: Prefect's thread pool is unbounded unless max_workers is set.
    yield lambda: ThreadPoolTaskRunner(max_workers=settings.effective_workers())


@contextmanager
def _processes(settings: Settings, run_id: str) -> Iterator[RunnerFactory]:
    """Each document's task in a thread of this process, its work in one of ``workers``
    worker processes started once for the run (docingest.workers)."""
    with document_workers(run_id, settings):
        # Two tasks per worker: while a task finishes its Prefect bookkeeping, the worker already
        # reads the next document instead of waiting for it (250 generated documents: 14.7 s
        # against 15.4 s, two runs each; the machine's run-to-run noise is about as large).
        yield lambda: ThreadPoolTaskRunner(max_workers=2 * settings.workers)


@contextmanager
def _dask(settings: Settings, run_id: str) -> Iterator[RunnerFactory]:
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


RUNNERS = {RunnerName.THREAD: _threads, RunnerName.PROCESS: _processes, RunnerName.DASK: _dask}


def task_runners(runner: RunnerName, settings: Settings, run_id: str):
    """A context that yields a factory of task runners of kind ``runner`` (see ``choose_runner``),
    one per batch of documents."""
    return RUNNERS[runner](settings, run_id)
