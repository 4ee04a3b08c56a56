"""Per-document task: one Prefect task per document, its pages inside (≈70 ms per task call
makes per-page tasks too costly)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from docingest.config import Settings
from docingest.pipeline import Engines, process_document
from docingest.result_store import ResultStore
from docingest.schemas.records import SourceDocument
from docingest.tasks.retry import retry_if_transient


@task(
    name="process-document",
    task_run_name="{source.name}",
    # Engines hold model sessions and the inputs are file paths: nothing for Prefect to hash or
    # persist. The result store is the durable record of each document.
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_if_transient,
    retry_jitter_factor=0.5,
)
def process_document_task(source: SourceDocument, settings: Settings, engines: Engines,
                          store: ResultStore) -> None:
    """The result is stored durably before the task ends (a kill loses at most the documents in
    flight); the flow reads back its summary. Returns None on purpose: Prefect keeps a state
    for every task result an object can be traced to until the flow run ends, which would
    make memory grow with the number of documents."""
    store.save(process_document(source, settings, engines))
