"""The one writer of outputs: table layout, schemas, atomic files, the run manifest.

Layout: ``OUT/<table>/run_date=YYYY-MM-DD/part-<run_id>.parquet`` (hive-partitioned) and
``OUT/runs/<run_id>.json``. A run the batch gate stops goes to
``OUT/quarantine/<run_id>/<table>.parquet`` instead, outside every published table's folder;
its Data Docs are at ``OUT/data_docs/<run_id>/index.html`` either way. Every file is written under a dot-name in its final folder,
fsynced and renamed into place: readers (pyarrow datasets, Spark, DuckDB) skip dot-files,
and a rename within one folder is atomic, so a crash never leaves a half file where a
reader would pick it up. The manifest is written last: a run without one did not finish.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from docingest.errors import RunError
from schemas.records import DocumentResult, PriorDocument
from schemas.tables import CURATED_TABLES, TABLES


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as exc:
        raise RunError(f"output folder {out} is not writable: {exc}") from exc


def rows_for(results: list[DocumentResult], run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Flatten document results into the rows of every table."""
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
            "credit_note": bool(r.extraction and r.extraction.credit_note),
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
                    "method": v.method, "withheld": v.withheld, "run_id": run_id,
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


def _dec(value: str | None) -> Decimal | None:
    if value is None:
        return None
    # The column holds 6 decimals; a longer value is rounded rather than failing the write.
    return Decimal(value).quantize(Decimal("0.000001"))


class OutputWriter:
    def __init__(self, out: Path, run_id: str, run_date: str):
        self.out = out
        self.run_id = run_id
        self.run_date = run_date

    def table_path(self, table: str, quarantined: bool = False) -> Path:
        if quarantined:
            return self.out / "quarantine" / self.run_id / f"{table}.parquet"
        return self.out / table / f"run_date={self.run_date}" / f"part-{self.run_id}.parquet"

    @property
    def data_docs_dir(self) -> Path:
        return self.out / "data_docs" / self.run_id

    def write_tables(self, rows_by_table: dict[str, list[dict[str, Any]]],
                     quarantined: bool = False) -> dict[str, dict[str, Any]]:
        written: dict[str, dict[str, Any]] = {}
        for table, rows in rows_by_table.items():
            arrow = pa.Table.from_pylist(rows, schema=TABLES[table])
            path = self.table_path(table, quarantined)
            _atomic_write(path, lambda tmp: pq.write_table(arrow, tmp, compression="zstd"))
            written[table] = {"path": str(path.relative_to(self.out)), "rows": arrow.num_rows}
        return written

    def write_manifest(self, manifest: dict[str, Any]) -> Path:
        path = self.out / "runs" / f"{self.run_id}.json"
        text = json.dumps(manifest, indent=2, default=_json_default, sort_keys=False)
        _atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
        return path


def write_curated(out: Path, rows_by_table: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Replace ``OUT/curated/<table>.parquet`` as a whole (each file atomically)."""
    written: dict[str, dict[str, Any]] = {}
    for table, rows in rows_by_table.items():
        arrow = pa.Table.from_pylist(rows, schema=CURATED_TABLES[table])
        path = out / "curated" / f"{table}.parquet"
        _atomic_write(path, lambda tmp: pq.write_table(arrow, tmp, compression="zstd"))
        written[table] = {"path": str(path.relative_to(out)), "rows": arrow.num_rows}
    return written


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, default=_json_default, ensure_ascii=False) + "\n" for r in records)
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def run_table_rows(out: Path, table: str, run_id: str) -> list[dict[str, Any]]:
    """One run's rows of a table, published or quarantined."""
    files = sorted(out.glob(f"{table}/run_date=*/part-{run_id}.parquet"))
    quarantined = out / "quarantine" / run_id / f"{table}.parquet"
    if not files and quarantined.exists():
        files = [quarantined]
    rows: list[dict[str, Any]] = []
    for f in files:
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def published_rows(out: Path, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Every published run's rows of a table (quarantined runs are not published)."""
    published = _published_table(out, table, columns)
    return published.to_pylist() if published is not None else []


def prior_documents(out: Path) -> list[PriorDocument]:
    """What earlier published runs hold, for the duplicate checks: each document once, as its
    latest published run read it, with every path it was published from. Nightly runs over a
    folder publish the same documents night after night, so the history is reduced in Arrow
    before any Python object is made."""
    docs = _published_table(out, "documents", ["doc_id", "source_paths", "run_id", "status"])
    if docs is None:
        return []
    docs = docs.filter(pc.is_valid(docs["doc_id"]))
    latest = docs.group_by("doc_id").aggregate([("run_id", "max")])
    latest = pa.table({"doc_id": latest["doc_id"], "run_id": latest["run_id_max"]})
    current = docs.select(["doc_id", "run_id", "status"]).join(latest, keys=["doc_id", "run_id"], join_type="inner")
    paths_column = docs["source_paths"]
    paths = pa.table({
        "doc_id": pc.take(docs["doc_id"], pc.list_parent_indices(paths_column)),
        "path": pc.list_flatten(paths_column),
    }).group_by("doc_id").aggregate([("path", "distinct")])
    paths_by_doc = dict(zip(paths["doc_id"].to_pylist(), paths["path_distinct"].to_pylist()))

    values: dict[str, dict[str, list[str]]] = {}
    fields = _published_table(out, "fields", ["doc_id", "doc_type", "field_name", "value", "value_raw", "run_id"])
    if fields is not None:
        wanted = pc.and_(pc.is_in(fields["doc_type"], pa.array(["invoice", "receipt"])),
                         pc.not_equal(fields["field_name"], "key_values"))
        fields = fields.filter(wanted).join(latest, keys=["doc_id", "run_id"], join_type="inner")
        for f in fields.select(["doc_id", "field_name", "value", "value_raw"]).to_pylist():
            values.setdefault(f["doc_id"], {}).setdefault(f["field_name"], []).append(f["value"] or f["value_raw"])
    prior = []
    for d in current.to_pylist():
        read = {name: sorted(v) for name, v in values.get(d["doc_id"], {}).items()}
        prior.append(PriorDocument(
            doc_id=d["doc_id"], source_paths=sorted(paths_by_doc.get(d["doc_id"]) or []), run_id=d["run_id"],
            status=d["status"], vendor_name=(read.get("vendor_name") or [None])[0],
            invoice_number=(read.get("invoice_number") or [None])[0], values=read))
    return prior


def _published_table(out: Path, table: str, columns: list[str] | None) -> pa.Table | None:
    files = sorted(out.glob(f"{table}/run_date=*/part-*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files], promote_options="default")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, (Path, Decimal)):
        return str(value)
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
