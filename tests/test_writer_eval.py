"""The writer's contract (schemas, a run published as one folder, recovery) and the evaluation scorer."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from docingest.evaluate import Report, score
import pyarrow as pa

from docingest.outdir import recover
from docingest.published import published_rows, run_table_rows
from docingest.writer import RunWriter, rows_for
from docingest.schemas import (Classification, DocType, DocumentResult, ExtractedValue, Extraction, LineItem,
                     Stage, StageError, Status)
from docingest.schemas.tables import TABLES


def _result(doc_id="d1", status=Status.ACCEPTED):
    return DocumentResult(
        doc_id=doc_id, source_path=f"/in/{doc_id}.pdf", source_paths=[f"/in/{doc_id}.pdf"],
        page_count=1, classification=Classification(doc_type=DocType.INVOICE, confidence=0.9),
        extraction=Extraction(doc_type=DocType.INVOICE, values=[ExtractedValue(
            field_name="total", value_raw="1.234,50", value="1234.50", confidence=0.9, page=1,
            bbox=(0.1, 0.2, 0.3, 0.25), grounded=True)],
            line_items=[LineItem(line_no=1, description="x", quantity="2", unit_price="617.25", amount="1234.50")]),
        status=status, review_reasons=[] if status == Status.ACCEPTED else ["x"],
        errors=[] if status != Status.FAILED else [StageError(stage=Stage.RENDER, kind="corrupt_document", message="m")],
        processed_at=datetime.now(timezone.utc),
    )


def test_writer_stages_every_table_with_its_schema_and_publishes_the_run_as_one_folder(tmp_path):
    writer = RunWriter(tmp_path, "run1", "2026-11-23")
    counts = writer.stage([_result("a"), _result("b", Status.NEEDS_REVIEW), _result("c", Status.FAILED)],
                          processing_key="k1", reused=frozenset({"b"}))
    assert set(counts) == set(TABLES)
    assert counts["documents"] == 3 and counts["review_queue"] == 1 and counts["failures"] == 1
    # Staged, not published: no reader sees any of it yet.
    assert published_rows(tmp_path, "documents") == []
    assert not (tmp_path / "published").exists()
    written = writer.files_written(counts, published=True)
    index = writer.commit({"run_id": "run1", "at": datetime(2026, 1, 1, tzinfo=timezone.utc),
                           "files_written": written}, published=True)
    run_dir = tmp_path / "published" / "run_date=2026-11-23" / "run1"
    for table, schema in TABLES.items():
        path = tmp_path / written[table]["path"]
        assert path.parent == run_dir
        assert pq.read_schema(path).equals(schema, check_metadata=False), table
    assert json.loads((run_dir / "manifest.json").read_text())["at"] == "2026-01-01T00:00:00+00:00"
    assert json.loads(index.read_text()) == json.loads((run_dir / "manifest.json").read_text())
    li = pq.read_table(tmp_path / written["line_items"]["path"]).to_pylist()
    assert str(li[0]["amount"]) == "1234.500000"
    docs = {d["doc_id"]: d for d in published_rows(tmp_path, "documents")}
    assert docs["b"]["reused"] and not docs["a"]["reused"] and docs["a"]["processing_key"] == "k1"
    assert docs["c"]["failure_cause"] == "input" and docs["a"]["failure_cause"] is None
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert not any((tmp_path / "_state" / "staging").iterdir())


def test_rows_are_written_a_batch_of_documents_at_a_time(tmp_path, monkeypatch):
    import docingest.writer as w

    monkeypatch.setattr(w, "BATCH_DOCUMENTS", 2)
    writer = RunWriter(tmp_path, "run1", "2026-11-23")
    counts = writer.stage(_result(f"d{i}") for i in range(5))
    assert counts["documents"] == 5
    # Three batches of rows: 2 + 2 + 1 documents, each its own row group.
    assert pq.ParquetFile(writer.staging / "documents.parquet").num_row_groups == 3
    assert [r["doc_id"] for r in writer.read_staged("documents").to_pylist()] == [f"d{i}" for i in range(5)]


def test_a_quarantined_run_is_written_outside_the_published_tables(tmp_path):
    writer = RunWriter(tmp_path, "run1", "2026-11-23")
    counts = writer.stage([_result("a")])
    written = writer.files_written(counts, published=False)
    assert written["documents"]["path"] == "quarantine/run1/documents.parquet"
    writer.commit({"run_id": "run1", "published": False}, published=False)
    assert (tmp_path / "quarantine" / "run1" / "manifest.json").exists()
    assert not (tmp_path / "published").exists()
    assert published_rows(tmp_path, "documents") == []
    assert [r["doc_id"] for r in run_table_rows(tmp_path, "documents", "run1")] == ["a"]


def test_a_failed_write_publishes_nothing_and_the_next_run_removes_its_leftovers(tmp_path, monkeypatch):
    import docingest.writer as w

    real = w.pq.ParquetWriter.write_table

    def boom(self, table, *args, **kwargs):
        real(self, table, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(w.pq.ParquetWriter, "write_table", boom)
    writer = RunWriter(tmp_path, "run1", "2026-11-23")
    with pytest.raises(OSError):
        writer.stage([_result()])
    assert published_rows(tmp_path, "documents") == []
    assert writer.staging.exists()
    done = recover(tmp_path)
    assert done == ["removed the staging folder of unfinished run run1"]
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "lock"] == []


def test_recovery_restores_a_committed_runs_index_and_drops_data_docs_of_unfinished_runs(tmp_path):
    writer = RunWriter(tmp_path, "run1", "2026-11-23")
    writer.commit({"run_id": "run1", "files_written": writer.files_written(writer.stage([_result("a")]), True)}, True)
    (tmp_path / "runs" / "run1.json").unlink()  # killed right after the rename
    (tmp_path / "data_docs" / "run2").mkdir(parents=True)  # a run killed in its batch gate
    (tmp_path / "data_docs" / "run1").mkdir(parents=True)
    stray = tmp_path / "runs" / ".run3.json.abc.tmp"
    stray.write_text("{")
    done = recover(tmp_path)
    assert json.loads((tmp_path / "runs" / "run1.json").read_text())["run_id"] == "run1"
    assert not (tmp_path / "data_docs" / "run2").exists() and (tmp_path / "data_docs" / "run1").exists()
    assert not stray.exists()
    assert len(done) == 3, done


def test_contract_7_output_folders_move_to_the_run_layout_and_torn_runs_go(tmp_path):
    """Before contract 8 each table was published on its own; a kill between them left a torn run."""
    rows = rows_for([_result("a")], "old1")
    for run_id, tables in (("old1", TABLES), ("torn", ["documents", "pages"])):
        for table in tables:
            path = tmp_path / table / "run_date=2026-11-20" / f"part-{run_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows[table], schema=TABLES[table]), path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "old1.json").write_text(json.dumps({"run_id": "old1", "published": True, "files_written": {
        t: {"path": f"{t}/run_date=2026-11-20/part-old1.parquet", "rows": len(rows[t])} for t in TABLES}}))
    done = recover(tmp_path)
    assert [d["doc_id"] for d in published_rows(tmp_path, "documents")] == ["a"]
    manifest = json.loads((tmp_path / "runs" / "old1.json").read_text())
    assert manifest["files_written"]["fields"]["path"] == "published/run_date=2026-11-20/old1/fields.parquet"
    assert all((tmp_path / w["path"]).exists() for w in manifest["files_written"].values())
    for table in TABLES:
        assert not (tmp_path / table).exists()
    assert any("torn" in line for line in done), done


def test_score_counts_precision_recall_and_accepted_precision(tmp_path):
    labels = [
        {"path": "a.pdf", "source_set": "s", "doc_type": "invoice", "classify": True,
         "fields": {"total": "10.00", "invoice_number": "A-1"}},
        {"path": "b.pdf", "source_set": "s", "doc_type": "receipt", "classify": True,
         "fields": {"total": "5.00"}},
    ]
    documents = [
        {"doc_id": "a", "source_path": str(tmp_path / "a.pdf"), "source_paths": [str(tmp_path / "a.pdf")],
         "status": "accepted", "doc_type": "invoice"},
        {"doc_id": "b", "source_path": str(tmp_path / "b.pdf"), "source_paths": [str(tmp_path / "b.pdf")],
         "status": "accepted", "doc_type": "invoice"},
    ]
    fields = [
        {"doc_id": "a", "field_name": "total", "value": "10.0", "value_raw": "10,00", "key": None},
        {"doc_id": "a", "field_name": "invoice_number", "value": "A-1", "value_raw": "A-1", "key": None},
        {"doc_id": "b", "field_name": "total", "value": "6.00", "value_raw": "6.00", "key": None},
        {"doc_id": "b", "field_name": "invoice_number", "value": "Z", "value_raw": "Z", "key": None},
    ]
    overall, per_set, per_field, confusion = score(labels, documents, fields, tmp_path)
    assert per_field["total"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1}
    # invoice_number is labelled in set "s", so the unlabelled "Z" on b is a false positive.
    assert per_field["invoice_number"]["fp"] == 1 and per_field["invoice_number"]["tp"] == 1
    assert overall["classification_accuracy"] == 0.5
    assert overall["automation_rate"] == 1.0
    assert overall["accepted_precision"] == 0.5
    assert confusion == {"invoice": {"invoice": 1}, "receipt": {"invoice": 1}}


def test_score_counts_why_documents_went_to_review_per_set(tmp_path):
    labels = [{"path": f"{n}.pdf", "source_set": "s", "doc_type": "invoice", "classify": True,
               "fields": {"total": "1.00"}} for n in "abcd"]
    reasons = {"a": ["rule_failed:duplicates.invoice"],
               "b": ["rule_failed:duplicates.invoice", "low_field_confidence:total:0.70", "low_field_confidence:total:0.60"],
               "c": [], "d": ["low_field_confidence:key_values[Date]:0.40", "low_classification_confidence:0.50"]}
    documents = [{"doc_id": n, "source_path": str(tmp_path / f"{n}.pdf"), "source_paths": None, "doc_type": "invoice",
                  "status": "needs_review" if reasons[n] else "accepted", "review_reasons": reasons[n]} for n in "abcd"]
    overall, per_set, per_field, confusion = score(labels, documents, [], tmp_path)
    text = Report(labels="l", out="o", seconds=1.0, documents=4, overall=overall, per_set=per_set,
                  per_field=per_field, confusion=confusion).render_text()
    assert "rule_failed:duplicates.invoice" in text
    assert per_set["s"]["review_reasons"] == [
        {"reason": "rule_failed:duplicates.invoice", "documents": 2, "only_reason": 1},
        {"reason": "low_classification_confidence", "documents": 1, "only_reason": 0},
        {"reason": "low_field_confidence:key_values", "documents": 1, "only_reason": 0},
        {"reason": "low_field_confidence:total", "documents": 1, "only_reason": 0},
    ]


def test_line_items_are_scored_on_their_numbers_per_set(tmp_path):
    from docingest.evaluate import score_line_items

    def item(q, p, a):
        return {"description": "wrapped\ntext", "quantity": q, "unit_price": p, "amount": a}

    labels = [
        {"path": "a.pdf", "source_set": "s", "line_items": [item("15", "12.00", "180.00"), item("2", "29.10", "58.20")]},
        {"path": "b.pdf", "source_set": "s", "line_items": [item("1", "5.00", "5.00")]},
        {"path": "c.pdf", "source_set": "t", "line_items": [item("3", "1.00", "3.00")]},
        {"path": "d.pdf", "source_set": "t"},  # no line items labelled: not scored
    ]
    documents = [{"doc_id": n, "source_path": str(tmp_path / f"{n}.pdf"), "source_paths": None} for n in "abcd"]
    read = [
        # a: one right (as stored: numbers, trailing zeros), quantity and price swapped on the other.
        {"doc_id": "a", "quantity": 15.0, "unit_price": 12.0, "amount": 180.0},
        {"doc_id": "a", "quantity": "29.1", "unit_price": "2", "amount": "58.20"},
        {"doc_id": "b", "quantity": "1", "unit_price": "5", "amount": "5.00"},  # exact
        {"doc_id": "d", "quantity": "1", "unit_price": "1", "amount": "1.00"},  # unlabelled document
    ]  # c: nothing read
    scores = score_line_items(labels, documents, read, tmp_path)
    assert scores["s"] == {"documents": 2, "exact": 1, "none_read": 0, "precision": 0.6667, "recall": 0.6667,
                           "f1": 0.6667, "tp": 2, "fp": 1, "fn": 1}
    assert scores["t"]["documents"] == 1 and scores["t"]["none_read"] == 1 and scores["t"]["fn"] == 1
    assert scores["overall"]["tp"] == 2 and scores["overall"]["fn"] == 2 and scores["overall"]["documents"] == 3
    text = Report(labels="l", out="o", seconds=1.0, documents=4, overall={
        "classification_accuracy": None, "automation_rate": None, "accepted_precision": None, "accepted": 0,
        "duplicates": 0, "failed": 0}, line_items=scores).render_text()
    assert "line items" in text and "0.667" in text
