"""Warehouse loads into DuckDB and a real PostgreSQL server: idempotent, incremental, one
current row set per document, reviewed values win, an interrupted load changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docingest.warehouse.backends import connect
from docingest.warehouse.load import counts, load
from outputs import latest_manifest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ["digital/invoice-en-001.pdf", "digital/invoice-de-002.pdf", "digital/receipt-001.pdf",
           "digital/contract-nda-001.pdf", "inbox/upload-corrupt.pdf"]


@pytest.fixture(scope="module")
def published(tmp_path_factory, samples_dir) -> Path:
    from docingest.config import Settings
    from docingest.flows.ingest import run_ingest

    inbox = tmp_path_factory.mktemp("inbox")
    for name in SAMPLES:
        shutil.copy(samples_dir / "documents" / name, inbox / Path(name).name)
    out = tmp_path_factory.mktemp("out")
    assert run_ingest(inbox, out, Settings(workers=2, show_progress=False)).published
    return out


@pytest.fixture(params=["duckdb", "postgres"])
def target(request, tmp_path, published):
    """A fresh copy of the published OUT and a fresh warehouse of each kind."""
    out = tmp_path / "out"
    shutil.copytree(published, out)
    if request.param == "duckdb":
        yield out, f"duckdb://{tmp_path / 'warehouse.duckdb'}", "docingest"
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"t_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    yield out, url, schema
    wh = connect(url, schema)
    wh.execute(f'DROP SCHEMA "{schema}" CASCADE')
    wh.close()


def _rows(url: str, schema: str, sql: str) -> list[tuple]:
    wh = connect(url, schema)
    try:
        return wh.query(sql.replace("{s}", f'"{schema}"'))
    finally:
        wh.close()


def _state(url: str, schema: str) -> dict:
    """Everything a consumer reads: rows per table and the fields and invoices as values."""
    return {
        "counts": counts(url, schema),
        "fields": sorted(_rows(url, schema, "SELECT doc_id, field_name, COALESCE(key, ''), value, run_id FROM {s}.fields")),
        "invoices": sorted(_rows(url, schema, "SELECT doc_id, status, CAST(total AS VARCHAR), CAST(invoice_date AS VARCHAR) "
                                              "FROM {s}.invoices")),
    }


def _republish(out: Path, run_id: str, changed_total: str) -> str:
    """A later published run in which one invoice reads another total (as after a reprocessing)."""
    from docingest.result_store import ResultStore
    from docingest.schemas.runs import ProcessingKey
    from docingest.writer import RunWriter

    results = sorted((out / "_state" / "results").glob("*/*/*.json.gz"))
    store = ResultStore(out, ProcessingKey(digest=results[0].parents[1].name, components={}))
    invoice = next(r for p in results if (r := store.load(p.name.removesuffix(".json.gz"))).extraction
                   and r.extraction.get("total") and r.classification.doc_type.value == "invoice")
    invoice.extraction.get("total").value = changed_total
    writer = RunWriter(out, run_id, "2099-01-01")
    writer.commit({"run_id": run_id, "published": True,
                   "files_written": writer.files_written(writer.stage([invoice]), True)}, True)
    return invoice.doc_id


def test_loading_twice_gives_the_same_rows(target):
    out, url, schema = target
    first = load(out, url, schema)
    assert len(first.runs_loaded) == 1 and "created table documents" in first.migrations
    state = _state(url, schema)
    manifest = latest_manifest(out)
    assert state["counts"]["documents"] == manifest["inputs"]["documents"] == 5
    assert state["counts"]["fields"] == manifest["files_written"]["fields"]["rows"]
    assert state["counts"]["invoices"] == 3 and state["counts"]["contracts"] == 1
    second = load(out, url, schema)
    assert second.runs_loaded == [] and second.migrations == []
    assert _state(url, schema) == state
    # Typed: amounts are decimals and dates are dates in the warehouse.
    total, date = _rows(url, schema, "SELECT total, invoice_date FROM {s}.invoices WHERE total IS NOT NULL")[0]
    assert type(total).__name__ == "Decimal" and type(date).__name__ == "date"


def test_a_reprocessed_document_replaces_its_rows_and_the_others_stay(target):
    out, url, schema = target
    load(out, url, schema)
    before = _state(url, schema)
    doc_id = _republish(out, "20990101T000000Z-later", "999.99")
    summary = load(out, url, schema)
    assert summary.runs_loaded == ["20990101T000000Z-later"] and summary.documents_replaced == 1
    after = _state(url, schema)
    assert after["counts"]["documents"] == before["counts"]["documents"]
    assert [f for f in after["fields"] if f[0] != doc_id] == [f for f in before["fields"] if f[0] != doc_id]
    assert {f[4] for f in after["fields"] if f[0] == doc_id} == {"20990101T000000Z-later"}
    assert ("999.99" in {str(i[2])[:6] for i in after["invoices"] if i[0] == doc_id})
    assert [i for i in after["invoices"] if i[0] != doc_id] == [i for i in before["invoices"] if i[0] != doc_id]
    assert _rows(url, schema, "SELECT COUNT(*) FROM {s}.load_runs")[0][0] == 2


def test_a_reviewed_value_wins_over_the_extraction(target):
    from docingest.config import Settings
    from docingest.flows.apply_reviews import apply_reviews
    from docingest.review.store import DecisionLog
    from docingest.schemas.review import ReviewAction, ReviewDecision, ReviewedValue

    out, url, schema = target
    load(out, url, schema)
    doc_id, run_id = _rows(url, schema, "SELECT doc_id, run_id FROM {s}.invoices WHERE doc_type = 'invoice' "
                                        "ORDER BY doc_id")[0]
    fields = _rows(url, schema, f"SELECT field_name, value_raw, value FROM {{s}}.fields WHERE doc_id = '{doc_id}' "
                                "AND key IS NULL")
    values = [ReviewedValue(field_name=n, value_raw=raw, value=v) for n, raw, v in fields if n != "total"]
    values.append(ReviewedValue(field_name="total", value_raw="1,234.56", value="1234.56"))
    DecisionLog(out).append(ReviewDecision(doc_id=doc_id, run_id=run_id, action=ReviewAction.CORRECTED,
                                           doc_type="invoice", values=values, reviewer="alice"))
    apply_reviews(out, Settings(show_progress=False))
    summary = load(out, url, schema)
    assert summary.curated_rows["documents"] == 5
    (total, action, reviewer), = _rows(url, schema, "SELECT CAST(total AS VARCHAR), review_action, reviewer "
                                                    f"FROM {{s}}.invoices WHERE doc_id = '{doc_id}'")
    assert total.startswith("1234.56") and action == "corrected" and reviewer == "alice"
    queue = {r[0] for r in _rows(url, schema, "SELECT doc_id FROM {s}.review_queue_current")}
    assert doc_id not in queue and queue  # decided: no longer waiting; the others still are
    # The extraction stays in the fields table beside it.
    assert _rows(url, schema, f"SELECT value FROM {{s}}.fields WHERE doc_id = '{doc_id}' AND field_name = 'total'") \
        != [("1234.56",)]


def test_a_load_killed_half_way_leaves_the_previous_state(target):
    out, url, schema = target
    load(out, url, schema)
    before = _state(url, schema)
    _republish(out, "20990101T000000Z-later", "999.99")
    # A real SIGKILL in the middle of the load's transaction: after its first insert.
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "import docingest.warehouse.backends as b\n"
        "from docingest.warehouse.load import load\n"
        "for cls in (b.DuckDBWarehouse, b.PostgresWarehouse):\n"
        "    real = cls.insert\n"
        "    def insert(self, table, rows, real=real):\n"
        "        real(self, table, rows)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    cls.insert = insert\n"
        "load(Path(sys.argv[1]), sys.argv[2], sys.argv[3])\n")
    proc = subprocess.run([sys.executable, "-c", script, str(out), url, schema], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert _state(url, schema) == before
    assert load(out, url, schema).runs_loaded == ["20990101T000000Z-later"]


def test_an_additive_contract_change_migrates_and_a_breaking_one_refuses(target):
    from docingest.warehouse.schema import ContractMismatch

    out, url, schema = target
    load(out, url, schema)
    wh = connect(url, schema)
    try:  # as an older contract left it: no documents.processing_key
        wh.execute(f'ALTER TABLE "{schema}".documents DROP COLUMN processing_key')
        (recorded,), = wh.query(f'SELECT columns FROM "{schema}".contract')
        columns = json.loads(recorded)
        del columns["documents"]["processing_key"]
        wh.execute(f'UPDATE "{schema}".contract SET columns = ?', (json.dumps(columns),))
    finally:
        wh.close()
    assert load(out, url, schema).migrations == ["added column documents.processing_key"]
    wh = connect(url, schema)
    try:  # a column another contract made of another type
        columns["documents"]["page_count"] = "VARCHAR"
        wh.execute(f'UPDATE "{schema}".contract SET columns = ?', (json.dumps(columns),))
    finally:
        wh.close()
    with pytest.raises(ContractMismatch) as err:
        load(out, url, schema)
    assert "page_count" in str(err.value) and "--schema" in str(err.value)


def test_a_run_ends_in_a_load_and_a_failed_load_leaves_the_run_published(tmp_path, samples_dir, capsys):
    from docingest.cli import main

    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(samples_dir / "documents" / "digital" / "invoice-en-001.pdf", inbox)
    url = f"duckdb://{tmp_path / 'w.duckdb'}"
    assert main(["run", str(inbox), "--out", str(tmp_path / "out"), "--no-progress", "--load-to", url]) == 0
    assert counts(url)["invoices"] == 1
    assert "warehouse: loaded 1 new runs" in capsys.readouterr().out
    unreachable = "postgresql://nobody@127.0.0.1:9/none"
    assert main(["run", str(inbox), "--out", str(tmp_path / "out2"), "--no-progress", "--load-to", unreachable]) == 4
    printed = capsys.readouterr().out
    assert "warehouse load FAILED" in printed and "Connection refused" in printed
    assert latest_manifest(tmp_path / "out2")["published"] is True
