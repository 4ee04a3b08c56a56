"""The writer's contract (schemas, atomic files) and the evaluation scorer."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from docingest.evaluate import Report, score
from docingest.writer import OutputWriter, published_rows, rows_for, run_table_rows
from schemas import (Classification, DocType, DocumentResult, ExtractedValue, Extraction, LineItem,
                     Stage, StageError, Status)
from schemas.tables import TABLES


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


def test_writer_writes_every_table_with_its_schema_and_no_temp_files(tmp_path):
    writer = OutputWriter(tmp_path, "run1", "2026-11-23")
    written = writer.write_tables(rows_for([_result("a"), _result("b", Status.NEEDS_REVIEW), _result("c", Status.FAILED)], "run1"))
    assert set(written) == set(TABLES)
    for table, schema in TABLES.items():
        path = tmp_path / written[table]["path"]
        assert path.parent.name == "run_date=2026-11-23"
        assert pq.read_schema(path).equals(schema, check_metadata=False), table
    assert written["documents"]["rows"] == 3
    assert written["review_queue"]["rows"] == 1
    assert written["failures"]["rows"] == 1
    li = pq.read_table(tmp_path / written["line_items"]["path"]).to_pylist()
    assert str(li[0]["amount"]) == "1234.500000"
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]
    manifest = writer.write_manifest({"run_id": "run1", "at": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    assert json.loads(manifest.read_text())["at"] == "2026-01-01T00:00:00+00:00"


def test_a_quarantined_run_is_written_outside_the_published_tables(tmp_path):
    writer = OutputWriter(tmp_path, "run1", "2026-11-23")
    written = writer.write_tables(rows_for([_result("a")], "run1"), quarantined=True)
    assert written["documents"]["path"] == "quarantine/run1/documents.parquet"
    assert not (tmp_path / "documents").exists()
    assert published_rows(tmp_path, "documents") == []
    assert [r["doc_id"] for r in run_table_rows(tmp_path, "documents", "run1")] == ["a"]


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import docingest.writer as w

    def boom(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(w.pq, "write_table", boom)
    with pytest.raises(OSError):
        OutputWriter(tmp_path, "run1", "2026-11-23").write_tables(rows_for([_result()], "run1"))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


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
