"""Tasks around the per-document work: discover inputs, reuse stored results, cross-document
checks, stage the run's tables, the batch gate, publish."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from docingest.config import GateOptions
from docingest.errors import RunError
from docingest.ledger import RunLedger
from docingest.published import prior_documents
from docingest.result_store import ResultStore, summarize
from docingest.stages.discover import RejectedInput, discover
from docingest.stages.duplicates import (
    apply_verdict,
    check_duplicates,
    checked,
    invoice_key,
    no_duplicate,
    published_to_compare,
)
from docingest.stages.gate import run_gate
from docingest.tasks.retry import retry_if_unavailable
from docingest.warehouse.load import LoadSummary, load
from docingest.writer import RunWriter
from docingest.schemas.gate import GateVerdict
from docingest.schemas.records import DocumentResult, SourceDocument
from docingest.schemas.runs import DuplicateVerdict

# The columns the batch gate's views read.
GATE_COLUMNS = {
    "documents": ["doc_id", "doc_type", "status", "error_count", "page_count", "size_bytes", "credit_note",
                  "failure_cause"],
    "fields": ["doc_id", "field_name", "key", "value"],
    "line_items": ["doc_id", "line_no", "amount", "page"],
}


@task(name="discover", cache_policy=NO_CACHE)
def discover_task(source: Path | list[Path], follow_symlinks: bool,
                  max_file_bytes: int) -> tuple[list[SourceDocument], list[RejectedInput]]:
    return discover(source, follow_symlinks=follow_symlinks, max_file_bytes=max_file_bytes)


@task(name="reuse-results", cache_policy=NO_CACHE)
def reuse_task(store: ResultStore, documents: list[SourceDocument], ledger: RunLedger) -> None:
    """Put in the ledger the documents already processed in OUT under this run's processing
    key, under the paths this run found them at."""
    logger = get_run_logger()
    for doc in documents:
        result = store.reusable(doc.doc_id)
        if result is not None:
            summary = summarize(result, reused=True)
            summary.source_path, summary.source_paths = doc.path, list(doc.paths)
            ledger.add(summary)
            logger.info("%s: %s, reused%s", doc.path, summary.status.value,
                        f" ({'; '.join(summary.review_reasons)})" if summary.review_reasons else "")


@task(name="check-duplicates", cache_policy=NO_CACHE)
def check_duplicates_task(ledger: RunLedger, out: Path) -> dict[str, DuplicateVerdict]:
    """Verdicts for the invoices and receipts that share a vendor and number with another
    document of this run or a published one; every other one has none (``no_duplicate``)."""
    prior = prior_documents(out)
    candidates = ledger.sharing_keys({k for p in prior if (k := invoice_key(p.vendor_name, p.invoice_number))})
    return check_duplicates(candidates, published_to_compare(prior, candidates, ledger.doc_ids()))


@task(name="stage-tables", cache_policy=NO_CACHE, retries=0)
def stage_tables_task(writer: RunWriter, ledger: RunLedger, verdicts: dict[str, DuplicateVerdict],
                      store: ResultStore, unreadable: list[DocumentResult]) -> dict[str, int]:
    """Every table of the run, assembled a document at a time from the result store."""
    by_path = {r.source_path: r for r in unreadable}
    reused = frozenset(d for d, r in zip(ledger.column("doc_id").to_pylist(), ledger.column("reused").to_pylist())
                       if r and d)

    def results():
        for s in ledger.summaries():
            result = store.load(s.doc_id) if s.doc_id else by_path[s.source_path]
            if result is None:
                raise RunError(f"the stored result of {s.source_path} ({s.doc_id}) is gone from {store.root}")
            result.source_path, result.source_paths = s.source_path, s.source_paths
            verdict = verdicts.get(s.doc_id) or (no_duplicate(s) if checked(s) else None)
            if verdict is not None:
                apply_verdict(result, verdict)
            yield result

    return writer.stage(results(), processing_key=store.key.digest, reused=reused)


@task(name="batch-gate", cache_policy=NO_CACHE, retries=0)
def batch_gate_task(writer: RunWriter, options: GateOptions, run_date: date, out: Path) -> GateVerdict:
    if not options.enabled:
        return GateVerdict(enabled=False)
    tables = {t: writer.read_staged(t, columns) for t, columns in GATE_COLUMNS.items()}
    return run_gate(tables, options, run_date, writer.data_docs_dir, out)


@task(name="publish", cache_policy=NO_CACHE, retries=0)
def publish_task(writer: RunWriter, manifest: dict, published: bool) -> Path:
    return writer.commit(manifest, published)


@task(name="load-warehouse", cache_policy=NO_CACHE, retry_condition_fn=retry_if_unavailable)
def load_task(out: Path, url: str, schema: str) -> LoadSummary:
    """Load OUT into the warehouse: one transaction, idempotent."""
    return load(out, url, schema)
