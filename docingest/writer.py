"""The one writer of outputs: table schemas, row layout, staging a run and publishing it.

A run's tables are streamed, a batch of documents at a time, into its staging folder
(``OUT/_state/staging/<run_id>/``); the batch gate reads them there; the run's manifest joins
them; then one rename of that folder publishes the run (``OUT/published/run_date=D/<run_id>/``)
or quarantines it (``OUT/quarantine/<run_id>/``). A reader sees all of a run's tables or none,
and a kill at any moment leaves only a staging folder, which the next run removes. Every file
is fsynced before the rename and every folder after it. Layout: ``docingest.outdir``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from docingest.errors import RunError, failure_cause
from docingest.fsio import atomic_write, fsync_dir, fsync_file, write_text_atomic
from docingest.outdir import MANIFEST, OutLayout
from docingest.schemas.records import DocumentResult, Stage, StageError, Status
from docingest.schemas.tables import CURATED_TABLES, TABLES

# Documents whose rows are converted and written at once: bounds memory, amortizes Arrow calls.
BATCH_DOCUMENTS = 256


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as exc:
        raise RunError(f"output folder {out} is not writable: {exc}") from exc


def rows_for(results: Iterable[DocumentResult], run_id: str, processing_key: str | None = None,
             reused: frozenset[str] = frozenset()) -> dict[str, list[dict[str, Any]]]:
    """Flatten document results into the rows of every table. ``reused``: the doc_ids whose
    result an earlier run computed."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for r in results:
        doc_type = r.classification.doc_type.value if r.classification else None
        rows["documents"].append({
            "doc_id": r.doc_id, "source_path": r.source_path, "source_paths": r.source_paths,
            "media_type": r.media_type, "size_bytes": r.size_bytes, "doc_type": doc_type,
            "doc_type_confidence": r.classification.confidence if r.classification else None,
            "page_count": r.page_count, "status": r.status.value, "duplicate_of": r.duplicate_of,
            "review_reasons": r.review_reasons, "error_count": len(r.errors),
            "duration_ms": r.duration_ms,
            "failure_cause": failure_cause(r.errors).value if r.status == Status.FAILED else None,
            "reused": r.doc_id in reused,
            "processing_key": processing_key,
            "credit_note": bool(r.extraction and r.extraction.credit_note),
            "reliability_kind": r.reliability.kind if r.reliability else None,
            "reliability_n": r.reliability.n if r.reliability else None,
            "reliability_lower_bound": r.reliability.lower_bound if r.reliability else None,
            "e_invoice_profile": r.e_invoice.profile if r.e_invoice else None,
            "e_invoice_guideline": r.e_invoice.guideline if r.e_invoice else None,
            "e_invoice_type_code": r.e_invoice.type_code if r.e_invoice else None,
            "line_items_sum": _dec(r.extraction.line_items_sum) if r.extraction else None,
            "vlm_requests": r.vlm_usage.requests, "vlm_cache_hits": r.vlm_usage.cache_hits,
            "vlm_prompt_tokens": r.vlm_usage.prompt_tokens,
            "vlm_completion_tokens": r.vlm_usage.completion_tokens,
            "vlm_estimated_prompt_tokens": r.vlm_usage.estimated_prompt_tokens,
            "vlm_cost_usd": round(r.vlm_usage.cost_usd, 6),
            "run_id": run_id, "processed_at": r.processed_at,
        })
        for p in r.pages:
            rows["pages"].append({
                "doc_id": r.doc_id, "page": p.page, "width_px": p.width_px, "height_px": p.height_px,
                "text_source": p.text_source.value if p.text_source else None,
                "strategy": p.strategy.value if p.strategy else None,
                "word_count": p.word_count, "mean_confidence": p.mean_confidence,
                "strategy_reason": p.strategy_reason, "render_ms": p.render_ms,
                "read_ms": p.read_ms, "run_id": run_id,
            })
        if r.extraction is not None:
            for v in r.extraction.values:
                rows["fields"].append({
                    "doc_id": r.doc_id, "doc_type": doc_type, "field_name": v.field_name,
                    "key": v.key, "value_raw": v.value_raw, "value": v.value,
                    "confidence": v.confidence, "confidence_raw": v.confidence_raw, "page": v.page,
                    "bbox": list(v.bbox) if v.bbox else None, "grounded": v.grounded,
                    "source": v.source.value, "agrees_with_local": v.agrees_with_local,
                    "method": v.method, "withheld": v.withheld, "evidence": v.evidence, "run_id": run_id,
                })
            for li in r.extraction.line_items:
                rows["line_items"].append({
                    "doc_id": r.doc_id, "line_no": li.line_no, "description": li.description,
                    "quantity": _dec(li.quantity), "unit_price": _dec(li.unit_price),
                    "amount": _dec(li.amount), "page": li.page, "confidence": li.confidence,
                    "run_id": run_id,
                })
        for rr in r.rule_results:
            rows["rule_results"].append({
                "doc_id": r.doc_id, "rule_id": rr.rule_id, "severity": rr.severity.value,
                "passed": rr.passed, "message": rr.message, "run_id": run_id,
            })
        if r.status.value == "needs_review":
            rows["review_queue"].append({
                "doc_id": r.doc_id, "source_path": r.source_path, "doc_type": doc_type,
                "reasons": r.review_reasons, "run_id": run_id, "queued_at": r.processed_at,
            })
        for e in r.errors:
            rows["failures"].append({
                "doc_id": r.doc_id, "source_path": r.source_path, "page": e.page,
                "stage": e.stage.value, "error_kind": e.kind, "message": e.message,
                "run_id": run_id,
            })
    return rows


# What converting one document's rows can raise: a value the contract's types cannot hold.
_UNSTORABLE = (pa.ArrowException, ValueError, TypeError, ArithmeticError, UnicodeError)


def _batch_tables(batch: list[DocumentResult], run_id: str, processing_key: str | None,
                  reused: frozenset[str]) -> dict[str, pa.Table]:
    """The batch's rows as Arrow tables. A document whose rows cannot be stored (a value that
    does not fit its column) becomes a failure row of its own: one document never costs the
    run its tables."""
    try:
        return arrow_tables(rows_for(batch, run_id, processing_key, reused))
    except _UNSTORABLE:
        pass
    parts: list[dict[str, pa.Table]] = []
    for result in batch:
        try:
            parts.append(arrow_tables(rows_for([result], run_id, processing_key, reused)))
        except _UNSTORABLE as exc:
            parts.append(arrow_tables(rows_for([unstorable(result, exc)], run_id, processing_key, reused)))
    return {t: pa.concat_tables([p[t] for p in parts]) for t in TABLES}


def unstorable(result: DocumentResult, exc: Exception) -> DocumentResult:
    """``result`` reduced to what always fits: its identity, a failed status and the reason."""
    def text(value: str) -> str:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")

    return DocumentResult(
        doc_id=result.doc_id, source_path=text(result.source_path),
        source_paths=[text(p) for p in result.source_paths], media_type=result.media_type,
        size_bytes=result.size_bytes, page_count=result.page_count, status=Status.FAILED,
        review_reasons=["write:unstorable_result"],
        errors=[StageError(stage=Stage.WRITE, kind="unstorable_result",
                           message=text(f"the result cannot be stored in the tables: {type(exc).__name__}: {exc}")[:2000])],
        processed_at=result.processed_at, duration_ms=result.duration_ms,
    )


def _dec(value: str | None) -> Decimal | None:
    if value is None:
        return None
    # The column holds 6 decimals; a longer value is rounded rather than failing the write.
    return Decimal(value).quantize(Decimal("0.000001"))


class RunWriter:
    """Stages one run's tables and publishes or quarantines them as a whole."""

    def __init__(self, out: Path, run_id: str, run_date: str):
        self.out = out
        self.layout = OutLayout(out)
        self.run_id = run_id
        self.run_date = run_date
        self.staging = self.layout.staging(run_id)

    @property
    def data_docs_dir(self) -> Path:
        return self.layout.data_docs(self.run_id)

    def final_dir(self, published: bool) -> Path:
        return (self.layout.published_run(self.run_date, self.run_id) if published
                else self.layout.quarantined_run(self.run_id))

    def stage(self, results: Iterable[DocumentResult], processing_key: str | None = None,
              reused: frozenset[str] = frozenset()) -> dict[str, int]:
        """Write every table of the run into the staging folder, ``BATCH_DOCUMENTS`` documents
        at a time, so memory holds one batch of rows, never the run. Returns rows per table."""
        self.staging.mkdir(parents=True, exist_ok=True)
        writers = {t: pq.ParquetWriter(self.staging / f"{t}.parquet", schema, compression="zstd")
                   for t, schema in TABLES.items()}
        counts = dict.fromkeys(TABLES, 0)
        batch: list[DocumentResult] = []

        def flush() -> None:
            for table, arrow in _batch_tables(batch, self.run_id, processing_key, reused).items():
                if arrow.num_rows:
                    writers[table].write_table(arrow)
                    counts[table] += arrow.num_rows
            batch.clear()

        try:
            for result in results:
                batch.append(result)
                if len(batch) >= BATCH_DOCUMENTS:
                    flush()
            flush()
        finally:
            for w in writers.values():
                w.close()
        for table in TABLES:
            fsync_file(self.staging / f"{table}.parquet")
        fsync_dir(self.staging)
        return counts

    def read_staged(self, table: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.staging / f"{table}.parquet", columns=columns)

    def files_written(self, counts: dict[str, int], published: bool) -> dict[str, dict[str, Any]]:
        final = self.final_dir(published)
        return {t: {"path": str((final / f"{t}.parquet").relative_to(self.out)), "rows": n} for t, n in counts.items()}

    def commit(self, manifest: dict[str, Any], published: bool) -> Path:
        """The manifest joins the staged tables, and one rename publishes (or quarantines)
        them all: the commit point of the run. Then the run is indexed in ``OUT/runs/``.
        Returns the index entry's path."""
        text = json.dumps(manifest, indent=2, default=_json_default) + "\n"
        write_text_atomic(self.staging / MANIFEST, text)
        final = self.final_dir(published)
        final.parent.mkdir(parents=True, exist_ok=True)
        fsync_dir(final.parent.parent)
        os.rename(self.staging, final)
        fsync_dir(final.parent)
        fsync_dir(self.staging.parent)
        index = self.layout.run_index(self.run_id)
        write_text_atomic(index, text)
        return index


def arrow_tables(rows_by_table: dict[str, list[dict[str, Any]]]) -> dict[str, pa.Table]:
    """Rows as Arrow tables with the output contract's schemas."""
    return {t: pa.Table.from_pylist(rows, schema=TABLES[t]) for t, rows in rows_by_table.items()}


def write_curated(out: Path, rows_by_table: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Replace ``OUT/curated/<table>.parquet`` as a whole (each file atomically)."""
    written: dict[str, dict[str, Any]] = {}
    for table, rows in rows_by_table.items():
        arrow = pa.Table.from_pylist(rows, schema=CURATED_TABLES[table])
        path = out / "curated" / f"{table}.parquet"
        atomic_write(path, lambda tmp: pq.write_table(arrow, tmp, compression="zstd"))
        written[table] = {"path": str(path.relative_to(out)), "rows": arrow.num_rows}
    return written


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, default=_json_default, ensure_ascii=False) + "\n" for r in records)
    write_text_atomic(path, text)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, (Path, Decimal)):
        return str(value)
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
