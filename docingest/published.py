"""Reading what was published. Every reader goes through here: only committed runs exist under
``OUT/published`` (a run appears by one rename, with all its tables and its manifest), so no
reader ever sees part of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from docingest.outdir import OutLayout
from docingest.schemas.records import PriorDocument


def table_files(out: Path, table: str) -> list[Path]:
    """The table's file in every published run, oldest run first."""
    return [f for run in OutLayout(out).published_runs() if (f := run / f"{table}.parquet").exists()]


def published_table(out: Path, table: str, columns: list[str] | None = None) -> pa.Table | None:
    files = table_files(out, table)
    if not files:
        return None
    # Runs of an older contract lack newer (additive) columns: they read as nulls.
    parts = [pq.read_table(f, columns=[c for c in columns if c in pq.read_schema(f).names] if columns else None)
             for f in files]
    return pa.concat_tables(parts, promote_options="default")


def published_rows(out: Path, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Every published run's rows of a table (quarantined runs are not published)."""
    published = published_table(out, table, columns)
    return published.to_pylist() if published is not None else []


def run_table_rows(out: Path, table: str, run_id: str) -> list[dict[str, Any]]:
    """One run's rows of a table, published or quarantined."""
    layout = OutLayout(out)
    candidates = [*layout.published.glob(f"run_date=*/{run_id}/{table}.parquet"),
                  layout.quarantined_run(run_id) / f"{table}.parquet"]
    for f in candidates:
        if f.exists():
            return pq.read_table(f).to_pylist()
    return []


def prior_documents(out: Path) -> list[PriorDocument]:
    """What earlier published runs hold, for the duplicate checks: each document once, as its
    latest published run read it, with the first run that published it and every path it was
    published from. Nightly runs over a folder publish the same documents night after night,
    so the history is reduced in Arrow before any Python object is made."""
    docs = published_table(out, "documents", ["doc_id", "source_paths", "run_id", "status"])
    if docs is None:
        return []
    docs = docs.filter(pc.is_valid(docs["doc_id"]))
    runs = docs.group_by("doc_id").aggregate([("run_id", "max"), ("run_id", "min")])
    first_run = dict(zip(runs["doc_id"].to_pylist(), runs["run_id_min"].to_pylist()))
    latest = pa.table({"doc_id": runs["doc_id"], "run_id": runs["run_id_max"]})
    current = docs.select(["doc_id", "run_id", "status"]).join(latest, keys=["doc_id", "run_id"], join_type="inner")
    paths_column = docs["source_paths"]
    paths = pa.table({
        "doc_id": pc.take(docs["doc_id"], pc.list_parent_indices(paths_column)),
        "path": pc.list_flatten(paths_column),
    }).group_by("doc_id").aggregate([("path", "distinct")])
    paths_by_doc = dict(zip(paths["doc_id"].to_pylist(), paths["path_distinct"].to_pylist()))

    values: dict[str, dict[str, list[str]]] = {}
    fields = published_table(out, "fields", ["doc_id", "doc_type", "field_name", "value", "value_raw", "run_id"])
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
            first_run_id=first_run[d["doc_id"]], status=d["status"],
            vendor_name=(read.get("vendor_name") or [None])[0],
            invoice_number=(read.get("invoice_number") or [None])[0], values=read))
    return prior
