"""Out-of-sample quality (issue 22): the scoreboard's schemes, acceptance on a lower bound,
audit samples, and reviewed audits folded into the calibration table."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from docingest import out_of_fold
from docingest.config import RoutingThresholds, Settings
from docingest.review.audits import reviewed_counts
from docingest.review.store import DecisionLog
from docingest.stages.calibrate import document_bound, load_table, lower_bound, write_table
from docingest.stages.route import AUDIT_REASON, audit_selected
from docingest.writer import RunWriter
from docingest.schemas.calibration import CalibrationTable, DocumentCount
from docingest.schemas.fields import DocType
from docingest.schemas.records import (
    Classification,
    DocumentReliability,
    DocumentResult,
    ExtractedValue,
    Extraction,
    Status,
    TextSource,
)
from docingest.schemas.review import ReviewAction, ReviewDecision


def _labelled_set(tmp_path: Path, name: str, n: int, right: bool):
    labels, docs, fields = [], [], []
    for i in range(n):
        doc_id = hashlib.sha256(f"{name}-{i}".encode()).hexdigest()
        path = f"{name}/{i}.jpg"
        labels.append({"id": f"{name}-{i}", "path": path, "source_set": name, "doc_type": "receipt",
                       "classify": True, "fields": {"total": "9.00", "vendor_name": "KEDAI"}})
        docs.append({"doc_id": doc_id, "source_path": str(tmp_path / path), "source_paths": None,
                     "status": "accepted", "doc_type": "receipt", "review_reasons": []})
        for field_name, value in (("total", "9.00" if right else "8.00"), ("vendor_name", "KEDAI")):
            fields.append({"doc_id": doc_id, "field_name": field_name, "key": None, "value": value,
                           "value_raw": value, "confidence": 0.97, "confidence_raw": 0.97, "source": "ocr",
                           "method": None, "withheld": False})
    return labels, docs, fields


def test_leave_one_set_out_sees_what_in_sample_hides(tmp_path):
    """Set A: 60 receipts read right. Set B: 10 of a layout read wrong at the same confidence.
    In-sample, B's wrong values are part of the fit and nothing of B is accepted; fitted on A
    alone (B as a new customer's layout), B is accepted and every acceptance is wrong."""
    a = _labelled_set(tmp_path, "A", 60, right=True)
    b = _labelled_set(tmp_path, "B", 10, right=False)
    labels, docs, fields = (a[0] + b[0], a[1] + b[1], a[2] + b[2])
    board = out_of_fold.scoreboard(labels, docs, fields, tmp_path, RoutingThresholds(min_document_confidence=0.9))
    assert set(board) == {"in_sample", "k_fold", "leave_one_set_out"}
    assert board["in_sample"]["B"]["automated"] == 0 and board["in_sample"]["A"]["automated"] == 0
    assert board["leave_one_set_out"]["B"] == {"documents": 10, "automated": 10, "right": 0, "automation": 1.0,
                                               "accepted_precision": 0.0}
    assert board["leave_one_set_out"]["A"]["automated"] == 0  # fitted on B alone: never right
    only_a = out_of_fold.scoreboard(a[0], a[1], a[2], tmp_path, RoutingThresholds(min_document_confidence=0.9))
    assert only_a["in_sample"]["A"]["automated"] == 60 and only_a["in_sample"]["A"]["accepted_precision"] == 1.0
    # 5-fold: each fold is fitted on 48 right documents (bound 0.946) and accepted, all right.
    assert only_a["k_fold"]["A"]["automated"] == 60 and only_a["k_fold"]["A"]["accepted_precision"] == 1.0
    counts = out_of_fold.out_of_fold_documents(a[0], a[1], a[2], tmp_path, RoutingThresholds())
    assert counts == {"receipt|ocr": DocumentCount(n=60, right=60)}


def test_the_bound_not_the_point_estimate_decides():
    assert lower_bound(0, 0) == 0.0
    assert 0.939 < lower_bound(42, 42) < 0.94  # 42 of 42: at least 0.94, not 1.0
    assert lower_bound(51, 55) < 0.85 < 51 / 55
    assert lower_bound(60, 60) > 0.95 > lower_bound(57, 60)


def test_audit_samples_are_a_stable_share_chosen_by_content():
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]
    chosen = [d for d in ids if audit_selected(d, 0.02)]
    assert 0.015 < len(chosen) / len(ids) < 0.025
    assert chosen == [d for d in ids if audit_selected(d, 0.02)]
    thousand = [hashlib.sha256(f"synthetic-{i}".encode()).hexdigest() for i in range(1_000)]
    assert 10 <= sum(audit_selected(d, 0.02) for d in thousand) <= 30  # 20 expected, sd 4.4
    assert not any(audit_selected(d, 0.0) for d in ids) and all(audit_selected(d, 1.0) for d in ids)


def _published_run(out: Path, docs: list[tuple[str, list[str]]]) -> None:
    now = datetime.now(timezone.utc)
    results = [DocumentResult(
        doc_id=doc_id, source_path=f"/in/{doc_id[:6]}.pdf", source_paths=[f"/in/{doc_id[:6]}.pdf"],
        classification=Classification(doc_type=DocType.INVOICE, confidence=0.95),
        extraction=Extraction(doc_type=DocType.INVOICE, values=[ExtractedValue(
            field_name="total", value_raw="9.00", value="9.00", confidence=0.97, source=TextSource.TEXT_LAYER)]),
        status=Status.NEEDS_REVIEW, review_reasons=reasons, processed_at=now,
        reliability=DocumentReliability(kind="invoice|text_layer", n=60, lower_bound=0.9569)) for doc_id, reasons in docs]
    writer = RunWriter(out, "20260101T000000Z-audits", "2026-01-01")
    writer.stage(results)
    writer.commit({"run_id": writer.run_id}, published=True)


def test_wrong_audits_stop_auto_acceptance_of_their_kind(tmp_path):
    out = tmp_path / "out"
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(6)]
    _published_run(out, [(d, [AUDIT_REASON]) for d in ids[:5]]
                   + [(ids[5], ["low_field_confidence:total:0.50"])])  # held for its own values: no audit
    log = DecisionLog(out)
    for i, doc_id in enumerate(ids):
        action = ReviewAction.CORRECTED if i in (1, 2, 3, 5) else ReviewAction.APPROVED
        log.append(ReviewDecision(doc_id=doc_id, run_id="20260101T000000Z-audits", action=action,
                                  doc_type="invoice", reviewer="carol"))
    assert reviewed_counts(out) == {"invoice|text_layer": DocumentCount(n=5, right=2)}

    base = tmp_path / "base.json"
    table = CalibrationTable(entries={"total|text_layer": []}, documents={"invoice|text_layer": DocumentCount(n=60, right=60)})
    write_table(table, base)
    assert document_bound(table.document_count("invoice|text_layer")) >= Settings().routing.min_document_confidence
    proc = subprocess.run([sys.executable, "-m", "docingest.cli", "calibrate", "--from-reviews", str(out),
                           "--table", str(base)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "NO" in proc.stdout.splitlines()[1]
    updated = load_table(out / "calibration.json")
    assert updated.documents == table.documents  # the labelled counts are kept as they were
    assert updated.reviewed == {"invoice|text_layer": DocumentCount(n=5, right=2)}
    assert document_bound(updated.document_count("invoice|text_layer")) < Settings().routing.min_document_confidence
    # Idempotent: the counts are recomputed from the log, not added again.
    subprocess.run([sys.executable, "-m", "docingest.cli", "calibrate", "--from-reviews", str(out),
                    "--table", str(out / "calibration.json")], check=True, capture_output=True, timeout=120)
    assert load_table(out / "calibration.json").reviewed == updated.reviewed
    # Right audits raise it: the same log with every audit approved as extracted.
    right_out = tmp_path / "right"
    _published_run(right_out, [(d, [AUDIT_REASON]) for d in ids[:5]])
    for doc_id in ids[:5]:
        DecisionLog(right_out).append(ReviewDecision(doc_id=doc_id, run_id="20260101T000000Z-audits",
                                                     action=ReviewAction.APPROVED, doc_type="invoice", reviewer="carol"))
    subprocess.run([sys.executable, "-m", "docingest.cli", "calibrate", "--from-reviews", str(right_out),
                    "--table", str(base)], check=True, capture_output=True, timeout=120)
    raised = load_table(right_out / "calibration.json")
    assert raised.reviewed == {"invoice|text_layer": DocumentCount(n=5, right=5)}
    assert document_bound(raised.document_count("invoice|text_layer")) > document_bound(table.document_count("invoice|text_layer"))
    # The run's manifest says the kind is no longer auto-accepted.
    from docingest.flows.ingest import _reliability

    reliability = _reliability(Settings(calibration_file=out / "calibration.json"))
    assert reliability["invoice|text_layer"]["auto_accepts"] is False
    assert _reliability(Settings(calibration_file=base))["invoice|text_layer"]["auto_accepts"] is True


def _page(lines: list[str]):
    from docingest.schemas.records import PageText, Word

    words = [Word(t, (0.1 * i, 0.05 * n, 0.1 * i + 0.08, 0.05 * n + 0.03), 1.0, n)
             for n, line in enumerate(lines) for i, t in enumerate(line.split())]
    return PageText(page=1, source=TextSource.TEXT_LAYER, words=words)


def test_evidence_whole_token_repeated_and_reconciling_amounts():
    from docingest.stages.evidence import annotate_evidence
    from docingest.schemas.records import LineItem

    page = _page(["ACME GmbH", "Invoice No: A-12345", "Subtotal 100.00", "Tax 19.00", "Total 119.00",
                  "Please quote A-12345 with your payment"])

    def value(name, raw, value=None):
        return ExtractedValue(field_name=name, value_raw=raw, value=value or raw, confidence=0.95, page=1,
                              grounded=True, source=TextSource.TEXT_LAYER)

    whole = Extraction(doc_type=DocType.INVOICE, values=[
        value("invoice_number", "A-12345"), value("subtotal", "100.00"), value("tax", "19.00"),
        value("total", "119.00")], line_items=[LineItem(line_no=1, amount="60.00"), LineItem(line_no=2, amount="40.00")])
    annotate_evidence([page], whole, 0.02)
    number = whole.get("invoice_number")
    assert number.evidence == ["whole_token", "repeated"] and number.grounded
    assert whole.get("total").evidence == ["reconciles"]
    assert whole.get("subtotal").evidence == ["reconciles", "line_items_sum"]
    # "12345" read out of "A-12345" is a piece of a printed token: not grounded.
    piece = Extraction(doc_type=DocType.INVOICE, values=[value("invoice_number", "12345")])
    annotate_evidence([page], piece, 0.02)
    assert "partial_token" in piece.get("invoice_number").evidence and not piece.get("invoice_number").grounded
    unbalanced = Extraction(doc_type=DocType.INVOICE, values=[value("subtotal", "100.00"), value("tax", "19.00"),
                                                               value("total", "191.00")])
    annotate_evidence([page], unbalanced, 0.02)
    assert "reconciles" not in unbalanced.get("total").evidence


def test_an_audited_reissue_of_an_accepted_invoice_is_a_duplicate_not_a_review():
    from docingest.stages.duplicates import apply_verdict, check_duplicates
    from docingest.schemas.runs import DocumentSummary

    values = {"vendor_name": ["ACME GmbH"], "invoice_number": ["R-1"], "total": ["9.00"]}

    def summary(doc_id, status, reasons):
        return DocumentSummary(doc_id=doc_id, source_path=f"/in/{doc_id}.pdf", source_paths=[f"/in/{doc_id}.pdf"],
                               doc_type=DocType.INVOICE, status=status, review_reasons=reasons, values=values)

    original = summary("a" * 64, Status.ACCEPTED, [])
    audited = summary("b" * 64, Status.NEEDS_REVIEW, [AUDIT_REASON])
    held = summary("c" * 64, Status.NEEDS_REVIEW, [AUDIT_REASON, "low_field_confidence:total:0.5"])
    verdicts = check_duplicates([original, audited, held], [])
    assert verdicts[audited.doc_id].status == Status.DUPLICATE
    assert verdicts[held.doc_id].status == Status.NEEDS_REVIEW
    result = DocumentResult(doc_id=audited.doc_id, source_path=audited.source_path, source_paths=audited.source_paths,
                            status=Status.NEEDS_REVIEW, review_reasons=[AUDIT_REASON])
    apply_verdict(result, verdicts[audited.doc_id])
    assert result.status == Status.DUPLICATE and result.review_reasons == []
