"""Load published runs and curated reviews into a warehouse: idempotent, incremental, one
transaction per load.

Each published run not loaded yet is applied oldest first: every document it holds replaces the
rows the warehouse has for that document (in every table), unless the warehouse already holds a
later run's reading of it. So the warehouse keeps one current row set per document (the latest
published run's) and loading twice changes nothing. Files that could not be read at all have no
doc_id and are keyed by their path. Quarantined runs are never loaded. The curated tables (after
``apply-reviews``) replace the warehouse's as a whole. A load interrupted at any point leaves the
previous state: everything happens in one transaction.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from docingest.outdir import OutLayout
from docingest.schemas.tables import CONTRACT_VERSION, CURATED_TABLES, TABLES
from docingest.warehouse.backends import Warehouse, connect, describe
from docingest.warehouse.schema import STATE_TABLES, ensure_schema, q, table


class LoadSummary(BaseModel):
    warehouse: str
    schema_name: str
    contract_version: str
    runs_loaded: list[str]
    documents_replaced: int
    rows_inserted: dict[str, int]
    curated_rows: dict[str, int]
    migrations: list[str]
    seconds: float


def load(out: Path, url: str, schema: str = "docingest") -> LoadSummary:
    t0 = time.perf_counter()
    wh = connect(url, schema)
    try:
        with wh.transaction():
            migrations = ensure_schema(wh)
            loaded = {r[0] for r in wh.query(f"SELECT run_id FROM {table(wh, 'load_runs')}")}
            runs = [r for r in OutLayout(out).published_runs() if r.name not in loaded]
            inserted = dict.fromkeys(TABLES, 0)
            replaced = 0
            for run in runs:
                replaced += _load_run(wh, run, inserted)
            curated = _load_curated(wh, out)
    finally:
        wh.close()
    return LoadSummary(warehouse=describe(url), schema_name=schema, contract_version=CONTRACT_VERSION,
                       runs_loaded=[r.name for r in runs], documents_replaced=replaced, rows_inserted=inserted,
                       curated_rows=curated, migrations=migrations, seconds=round(time.perf_counter() - t0, 2))


def _load_run(wh: Warehouse, run: Path, inserted: dict[str, int]) -> int:
    """Apply one published run; returns the documents whose rows it replaced or added."""
    run_id = run.name
    documents = _read(run, "documents")
    ids = [d for d in documents["doc_id"].to_pylist() if d is not None]
    unreadable = documents.filter(pc.is_null(documents["doc_id"]))["source_path"].to_pylist()
    # A later run's reading already in the warehouse stays (runs loaded out of order).
    newer = set()
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        newer |= {r[0] for r in wh.query(
            f"SELECT doc_id FROM {table(wh, 'documents')} WHERE doc_id IN ({marks}) AND run_id > ?",
            (*chunk, run_id))}
    take = [d for d in ids if d not in newer]
    for name in TABLES:
        rows = _read(run, name)
        for chunk in _chunks(take):
            marks = ", ".join("?" * len(chunk))
            wh.execute(f"DELETE FROM {table(wh, name)} WHERE doc_id IN ({marks})", chunk)
        if "source_path" in rows.column_names:
            for chunk in _chunks(unreadable):
                marks = ", ".join("?" * len(chunk))
                wh.execute(f"DELETE FROM {table(wh, name)} WHERE doc_id IS NULL AND source_path IN ({marks})", chunk)
        keep = pc.or_(pc.is_in(rows["doc_id"], pa.array(take, pa.string())), pc.is_null(rows["doc_id"]))
        rows = rows.filter(pc.fill_null(keep, True))
        wh.insert(name, _conform(rows, TABLES[name]))
        inserted[name] += rows.num_rows
    run_date = run.parent.name.removeprefix("run_date=")
    wh.insert("load_runs", pa.table({"run_id": [run_id], "run_date": [run_date], "documents": [len(take)],
                                     "loaded_at": [datetime.now(timezone.utc)]}, schema=STATE_TABLES["load_runs"]))
    return len(take) + len(unreadable)


def _load_curated(wh: Warehouse, out: Path) -> dict[str, int]:
    counts = {}
    for name, schema in CURATED_TABLES.items():
        path = out / "curated" / f"{name}.parquet"
        if not path.exists():
            continue
        wh.execute(f"DELETE FROM {table(wh, 'curated_' + name)}")
        rows = _conform(pq.read_table(path), schema)
        wh.insert(f"curated_{name}", rows)
        counts[name] = rows.num_rows
    return counts


def _read(run: Path, name: str) -> pa.Table:
    path = run / f"{name}.parquet"
    return pq.read_table(path) if path.exists() else TABLES[name].empty_table()


def _conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """The rows in the contract's column order and types; columns an older run lacks are null."""
    columns = [rows[f.name].cast(f.type) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _chunks(values: list, size: int = 500):
    for i in range(0, len(values), size):
        yield values[i:i + size]


def counts(url: str, schema: str = "docingest") -> dict[str, int]:
    """Rows per table and view (for tests and the CLI summary)."""
    wh = connect(url, schema)
    try:
        from docingest.warehouse.schema import VIEWS, WAREHOUSE_TABLES

        return {name: wh.query(f"SELECT COUNT(*) FROM {q(schema)}.{q(name)}")[0][0]
                for name in (*WAREHOUSE_TABLES, *VIEWS)}
    finally:
        wh.close()


