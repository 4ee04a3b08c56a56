"""The run ledger: compact rows in, the same summaries out, in the order tables are written."""

from __future__ import annotations

from docingest.ledger import RunLedger
from docingest.stages.duplicates import published_to_compare
from docingest.schemas.fields import DocType
from docingest.schemas.records import FailureCause, PriorDocument, Status, VlmUsage
from docingest.schemas.runs import DocumentSummary, DuplicateVerdict


def _summary(doc_id: str | None, path: str, *, number: str | None = None, status=Status.NEEDS_REVIEW,
             reused: bool = False, **extra) -> DocumentSummary:
    values = {"vendor_name": ["ACME GmbH"], "invoice_number": [number]} if number else {}
    return DocumentSummary(doc_id=doc_id, source_path=path, source_paths=[path], status=status,
                           doc_type=DocType.INVOICE if doc_id else None, values=values, reused=reused, **extra)


def test_summaries_come_back_whole_in_path_order_with_unreadable_files_last():
    ledger = RunLedger()
    docs = [
        _summary("b", "/in/b.pdf", number="R-1", page_count=2, pages_by_strategy={"ocr": 2}, duration_ms=12.5,
                 vlm_usage=VlmUsage(requests=1, cost_usd=0.25), error_kinds=["no_text"]),
        _summary(None, "/in/0-unreadable.pdf", status=Status.FAILED, failure_cause=FailureCause.INPUT,
                 error_kinds=["unreadable_file"]),
        _summary("a", "/in/a.pdf", reused=True),
    ]
    for d in docs:
        ledger.add(d)
    assert [s.source_path for s in ledger.summaries()] == ["/in/a.pdf", "/in/b.pdf", "/in/0-unreadable.pdf"]
    assert list(ledger.summaries())[1] == docs[0]
    assert list(ledger.summaries())[2] == docs[1]
    assert len(ledger) == 3 and ledger.doc_ids() == {"a", "b"}


def test_only_invoices_sharing_a_vendor_and_number_are_checked_and_tallies_follow_the_verdicts():
    ledger = RunLedger()
    for i, number in enumerate(["R-1", "R-1", "R-2", None, "R-3"]):
        ledger.add(_summary(f"d{i}", f"/in/{i}.pdf", number=number, status=Status.ACCEPTED, reused=i == 4))
    shared = ledger.sharing_keys(set())
    assert [s.doc_id for s in shared] == ["d0", "d1"]
    # A published invoice with R-3 makes d4 a candidate too.
    assert [s.doc_id for s in ledger.sharing_keys({("acmegmbh", "R3")})] == ["d0", "d1", "d4"]
    tally = ledger.tally({"d1": DuplicateVerdict.model_validate(
        {"status": "duplicate", "duplicate_of": "d0",
         "rule": {"rule_id": "duplicates.invoice", "severity": "warning", "passed": False, "message": "m"}})})
    assert tally["counts"]["accepted"] == 4 and tally["counts"]["duplicate"] == 1
    assert tally["processed"] == 4 and tally["reused"] == 1
    assert tally["source_paths"] == [f"/in/{i}.pdf" for i in range(5)]


def test_published_documents_this_run_reads_under_another_key_are_not_compared():
    candidates = [_summary("new", "/in/new.pdf", number="R-1"), _summary("again", "/in/again.pdf", number="R-1")]
    prior = [
        PriorDocument(doc_id="old", source_paths=["/x"], run_id="r1", vendor_name="ACME GmbH", invoice_number="R-1"),
        # Published with R-1, in this run now read as another number: compared as this run reads it.
        PriorDocument(doc_id="moved", source_paths=["/y"], run_id="r1", vendor_name="ACME GmbH", invoice_number="R-1"),
        PriorDocument(doc_id="again", source_paths=["/z"], run_id="r1", vendor_name="ACME GmbH", invoice_number="R-1"),
        PriorDocument(doc_id="other", source_paths=["/w"], run_id="r1", vendor_name="ACME GmbH", invoice_number="R-9"),
    ]
    kept = published_to_compare(prior, candidates, run_doc_ids={"new", "again", "moved"})
    assert [p.doc_id for p in kept] == ["old", "again"]
