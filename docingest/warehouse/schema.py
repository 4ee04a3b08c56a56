"""The warehouse's tables and views, derived from the output contract (``schemas/tables.py``) and
the field lists (``schemas/fields.py``): nothing here lists a column by hand.

Tables: the published tables under their own names, holding each document's *current* rows
(those of the latest published run that holds it); the curated tables as ``curated_<table>``;
``load_runs`` (the runs loaded, the load state) and ``contract`` (the output contract version and
the columns each table was created with). Views: ``invoices`` (invoices and receipts, a row each
with their fields as typed columns), ``contracts``, ``review_queue_current``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow as pa

from docingest.errors import RunError
from docingest.schemas.fields import DocType, FieldKind, field_specs
from docingest.schemas.tables import CONTRACT_VERSION, CURATED_TABLES, TABLES
from docingest.warehouse.backends import Warehouse

_TS = pa.timestamp("us", tz="UTC")
STATE_TABLES = {
    "load_runs": pa.schema([("run_id", pa.string()), ("run_date", pa.string()), ("documents", pa.int64()),
                            ("loaded_at", _TS)]),
    "contract": pa.schema([("name", pa.string()), ("version", pa.string()), ("columns", pa.string()),
                           ("updated_at", _TS)]),
}
WAREHOUSE_TABLES: dict[str, pa.Schema] = {
    **TABLES, **{f"curated_{name}": schema for name, schema in CURATED_TABLES.items()}, **STATE_TABLES}
VIEWS = ("invoices", "contracts", "review_queue_current")


class ContractMismatch(RunError):
    """The warehouse was created by a contract this version cannot extend by adding columns."""


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table(wh: Warehouse, name: str) -> str:
    return f"{q(wh.schema)}.{q(name)}"


def ensure_schema(wh: Warehouse) -> list[str]:
    """Create what is missing; add the columns a newer contract added; refuse a change that is
    not additive (a column gone or of another type). Returns what was done, a line each."""
    stored = _stored_columns(wh)
    done = []
    for name, schema in WAREHOUSE_TABLES.items():
        wanted = {f.name: wh.sql_type(f.type) for f in schema}
        have = wh.existing_columns(name)
        if not have:
            columns = ", ".join(f"{q(c)} {t}" for c, t in wanted.items())
            wh.execute(f"CREATE TABLE {table(wh, name)} ({columns})")
            done.append(f"created table {name}")
            continue
        recorded = stored.get(name, {})
        gone = sorted(set(recorded) - set(wanted))
        changed = sorted(c for c in recorded if c in wanted and recorded[c] != wanted[c])
        if gone or changed:
            raise ContractMismatch(
                f"the warehouse schema {wh.schema!r} holds table {name} as an earlier output contract made it; "
                f"contract {CONTRACT_VERSION} " + "; ".join(
                    ([f"no longer has column(s) {', '.join(gone)}"] if gone else [])
                    + [f"changes {c} from {recorded[c]} to {wanted[c]}" for c in changed])
                + ". That is not an additive change: load into a new schema (--schema) or migrate by hand.")
        for column, kind in wanted.items():
            if column not in have:
                wh.execute(f"ALTER TABLE {table(wh, name)} ADD COLUMN {q(column)} {kind}")
                done.append(f"added column {name}.{column}")
    _record(wh, {name: {f.name: wh.sql_type(f.type) for f in schema} for name, schema in WAREHOUSE_TABLES.items()})
    create_views(wh)
    return done


def _stored_columns(wh: Warehouse) -> dict[str, dict[str, str]]:
    if not wh.existing_columns("contract"):
        return {}
    rows = wh.query(f"SELECT columns FROM {table(wh, 'contract')} WHERE name = ?", ("output",))
    return json.loads(rows[0][0]) if rows else {}


def _record(wh: Warehouse, columns: dict[str, dict[str, str]]) -> None:
    wh.execute(f"DELETE FROM {table(wh, 'contract')} WHERE name = ?", ("output",))
    wh.insert("contract", pa.table({"name": ["output"], "version": [CONTRACT_VERSION],
                                    "columns": [json.dumps(columns, sort_keys=True)],
                                    "updated_at": [datetime.now(timezone.utc)]}, schema=STATE_TABLES["contract"]))


def stored_version(wh: Warehouse) -> str | None:
    if not wh.existing_columns("contract"):
        return None
    rows = wh.query(f"SELECT version FROM {table(wh, 'contract')} WHERE name = ?", ("output",))
    return rows[0][0] if rows else None


def create_views(wh: Warehouse) -> None:
    for view in VIEWS:
        wh.execute(f"DROP VIEW IF EXISTS {table(wh, view)}")
    wh.execute(f"CREATE VIEW {table(wh, 'invoices')} AS {_documents_view(wh, [DocType.INVOICE, DocType.RECEIPT])}")
    wh.execute(f"CREATE VIEW {table(wh, 'contracts')} AS {_documents_view(wh, [DocType.CONTRACT])}")
    wh.execute(f"CREATE VIEW {table(wh, 'review_queue_current')} AS " + _review_queue(wh))


def _values(wh: Warehouse) -> str:
    """Each current document's values: a reviewed document's curated values (a reviewer's
    decision wins over the extraction, removed values included), any other's extracted values
    that are not withheld."""
    return (
        f"SELECT f.doc_id, f.field_name, f.value FROM {table(wh, 'fields')} f "
        f"WHERE f.key IS NULL AND NOT COALESCE(f.withheld, FALSE) AND f.doc_id NOT IN ({_reviewed(wh)}) "
        f"UNION ALL SELECT c.doc_id, c.field_name, c.value FROM {table(wh, 'curated_fields')} c "
        f"WHERE c.key IS NULL AND c.value IS NOT NULL AND c.doc_id IN ({_reviewed(wh)})")


def _reviewed(wh: Warehouse) -> str:
    return f"SELECT doc_id FROM {table(wh, 'curated_documents')} WHERE review_action IS NOT NULL"


def _documents_view(wh: Warehouse, doc_types: list[DocType]) -> str:
    specs = {s.name: s for t in doc_types for s in field_specs(t)}
    columns = []
    for name, spec in specs.items():
        value = f"v.field_name = '{name}'"
        if spec.kind == FieldKind.TEXT_LIST:
            columns.append(f"{wh.list_agg('v.value', 'v.value')} FILTER (WHERE {value}) AS {q(name)}")
            continue
        picked = f"MAX(CASE WHEN {value} THEN v.value END)"
        if spec.kind == FieldKind.AMOUNT:
            picked = wh.try_decimal(picked)
        elif spec.kind == FieldKind.DATE:
            picked = wh.try_date(picked)
        columns.append(f"{picked} AS {q(name)}")
    types = ", ".join(f"'{t.value}'" for t in doc_types)
    return (
        "SELECT d.doc_id, COALESCE(c.doc_type, d.doc_type) AS doc_type, COALESCE(c.status, d.status) AS status, "
        "d.status AS status_extracted, c.review_action, c.reviewer, c.reviewed_at, d.source_path, d.run_id, "
        "d.processed_at, d.credit_note, " + ", ".join(columns) + " "
        f"FROM {table(wh, 'documents')} d LEFT JOIN {table(wh, 'curated_documents')} c ON c.doc_id = d.doc_id "
        f"LEFT JOIN ({_values(wh)}) v ON v.doc_id = d.doc_id "
        f"WHERE COALESCE(c.doc_type, d.doc_type) IN ({types}) "
        "GROUP BY d.doc_id, c.doc_type, d.doc_type, c.status, d.status, c.review_action, c.reviewer, "
        "c.reviewed_at, d.source_path, d.run_id, d.processed_at, d.credit_note")


def _review_queue(wh: Warehouse) -> str:
    """Documents waiting for a person now: sent to review by their current run, no decision yet."""
    return (
        "SELECT d.doc_id, d.source_path, d.doc_type, d.review_reasons, d.run_id, d.processed_at "
        f"FROM {table(wh, 'documents')} d "
        f"WHERE d.status = 'needs_review' AND d.doc_id NOT IN ({_reviewed(wh)})")
