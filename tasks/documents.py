"""Per-document task: one Prefect task per document, its pages inside (≈70 ms per task call
makes per-page tasks too costly)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from docingest.config import Settings
from docingest.pipeline import Engines, build_engines, process_document
from docingest.result_store import ResultStore
from docingest.schemas.records import DocumentResult, SourceDocument, Status
from docingest.tasks.retry import retry_if_transient
from docingest.workers import DocumentWorkers

# The name of the Failed state of a document that failed (corrupt, an engine error): its result
# is stored like any other. A task that raised after its retries ends in another failed state.
DOCUMENT_FAILED = "Document failed"
_STATE_NAMES = {Status.ACCEPTED: "Accepted", Status.NEEDS_REVIEW: "Needs review", Status.DUPLICATE: "Duplicate"}

_engines: dict[str, Engines] = {}  # run id -> that run's engines, in this process
_engines_lock = threading.Lock()
_workers: dict[str, DocumentWorkers] = {}  # run id -> its worker processes (the process runner)


@contextmanager
def document_workers(run_id: str, settings: Settings) -> Iterator[DocumentWorkers]:
    """Worker processes for the run's documents while the context lasts; the run's tasks
    in this process hand their documents to them."""
    workers = DocumentWorkers(settings, settings.workers)
    with _engines_lock:
        _workers[run_id] = workers
    try:
        yield workers
    finally:
        with _engines_lock:
            _workers.pop(run_id, None)
        workers.close()


def workers_for(run_id: str) -> DocumentWorkers | None:
    """The run's worker processes, if the run uses the process runner in this process. (A
    function, not module state read in the task: Dask pickles the task's body by value.)"""
    with _engines_lock:
        return _workers.get(run_id)


def engines_for(run_id: str, settings: Settings) -> Engines:
    """The run's engines, built once per process: once for a thread pool, once per worker
    process on Dask. Never a task parameter: OCR model sessions are not pickled per task. Only
    the latest run's are kept (a long-lived Dask worker serves run after run)."""
    with _engines_lock:
        if run_id not in _engines:
            _engines.clear()
            _engines[run_id] = build_engines(settings)
        return _engines[run_id]


def cached_engines(run_id: str) -> Engines | None:
    """The run's engines if documents of it ran in this process (none are built here)."""
    with _engines_lock:
        return _engines.get(run_id)


def document_state(result: DocumentResult) -> State:
    """A state the Prefect UI tells apart at a glance: Completed named Accepted or Needs review
    (with the reasons), Failed for a failed document. None of them fails the flow run."""
    if result.status == Status.FAILED:
        return Failed(name=DOCUMENT_FAILED, message="; ".join(f"{e.stage.value}:{e.kind}: {e.message}"
                                                              for e in result.errors)[:500])
    return Completed(name=_STATE_NAMES[result.status], message="; ".join(result.review_reasons)[:500] or None)


@task(
    name="process-document",
    task_run_name="{source.name}",
    # The inputs are file paths and the result is in the result store: nothing for Prefect to
    # hash or persist.
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_if_transient,
    retry_jitter_factor=0.5,
)
def process_document_task(source: SourceDocument, settings: Settings, store: ResultStore, run_id: str) -> State:
    """The result is stored durably before the task ends (a kill loses at most the documents in
    flight); the flow reads its summary back from the store. The returned state carries no
    data: Prefect keeps a state for every result object until the flow run ends."""
    workers = workers_for(run_id)
    result = (workers.result(source) if workers is not None
              else process_document(source, settings, engines_for(run_id, settings)))
    store.save(result)
    get_run_logger().info("%s: %s%s", source.path, result.status.value,
                          f" ({'; '.join(result.review_reasons)})" if result.review_reasons else "")
    return document_state(result)
