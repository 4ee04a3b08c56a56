"""Review decisions without the web app: the log survives torn writes, merges keep lineage."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from docingest.config import RoutingThresholds
from docingest.review.apply import labelled_records, merge_reviews
from docingest.review.store import DecisionLog
from docingest.schemas.review import ReviewAction, ReviewDecision, ReviewedValue

NOW = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


def _doc(doc_id: str, status: str = "needs_review") -> dict:
    return {"doc_id": doc_id, "source_path": f"/in/{doc_id}.pdf", "doc_type": "invoice", "status": status,
            "review_reasons": [] if status == "accepted" else ["low_field_confidence:total:0.70"], "run_id": "r1"}


def _field(doc_id: str, name: str, value: str) -> dict:
    return {"doc_id": doc_id, "field_name": name, "key": None, "value": value, "value_raw": value,
            "confidence": 0.7, "page": 1, "bbox": [0.1, 0.1, 0.2, 0.12], "run_id": "r1"}


FIELDS = {"vendor_name": "ACME GmbH", "vendor_address": "Hauptstr. 1, 10115 Berlin", "invoice_date": "2026-10-01", "subtotal": "100.00", "tax": "19.00",
          "total": "191.00", "currency": "EUR", "invoice_number": "R-1", "customer_name": "Kunde AG"}


def _decision(doc_id: str, action: ReviewAction, **changes) -> ReviewDecision:
    values = {**FIELDS, **changes}
    return ReviewDecision(doc_id=doc_id, run_id="r1", action=action, doc_type="invoice", reviewer="bob",
                          values=[ReviewedValue(field_name=k, value_raw=v, value=v) for k, v in values.items() if v])


def _merge(decisions: dict) -> dict:
    docs = {d: _doc(d) for d in ("a", "b", "c", "d")}
    rows = {d: {"fields": [_field(d, k, v) for k, v in FIELDS.items()], "rule_results": [],
                "line_items": [{"line_no": 1, "description": "x", "quantity": None, "unit_price": None,
                                "amount": Decimal("100.000000"), "page": 1, "confidence": 0.8}]}
            for d in docs}
    return merge_reviews(docs, rows, decisions, RoutingThresholds(), date(2026, 11, 23), NOW)


def test_corrections_are_rechecked_by_the_rules_and_keep_the_original():
    curated = _merge({
        "a": _decision("a", ReviewAction.CORRECTED, total="119.00"),  # fixes the rule
        "b": _decision("b", ReviewAction.APPROVED),  # approves a total that breaks the rule
        "c": _decision("c", ReviewAction.REJECTED),
    })
    status = {d["doc_id"]: d for d in curated["documents"]}
    assert status["a"]["status"] == "accepted" and status["a"]["status_original"] == "needs_review"
    assert status["b"]["status"] == "needs_review"
    assert any("total_eq_subtotal_plus_tax" in r for r in status["b"]["reasons"])
    assert status["c"]["status"] == "rejected" and status["c"]["review_action"] == "rejected"
    assert status["d"]["status"] == "needs_review" and status["d"]["review_action"] is None
    total_a = next(f for f in curated["fields"] if f["doc_id"] == "a" and f["field_name"] == "total")
    assert (total_a["value"], total_a["value_original"], total_a["change"]) == ("119.00", "191.00", "corrected")
    assert total_a["bbox"] == [0.1, 0.1, 0.2, 0.12]
    vendor_a = next(f for f in curated["fields"] if f["doc_id"] == "a" and f["field_name"] == "vendor_name")
    assert vendor_a["change"] == "unchanged" and vendor_a["source"] == "review"
    untouched = [f for f in curated["fields"] if f["doc_id"] == "d"]
    assert all(f["source"] == "extraction" and f["value"] == f["value_original"] for f in untouched)
    labels = labelled_records(curated)
    assert [r["fields"]["total"] for r in labels] == ["119.00"]


def test_the_recheck_knows_the_items_printed_sum_and_a_credit_note():
    from docingest.review.apply import blocking, recheck

    # The items add up to their printed sum (108.00); a discount puts the subtotal at 100.00.
    items = [{"line_no": 1, "description": "x", "quantity": Decimal("2.000000"), "unit_price": Decimal("54.000000"),
              "amount": Decimal("108.000000"), "page": 1, "confidence": 0.85}]
    decision = _decision("a", ReviewAction.CORRECTED, total="119.00")
    row = {**_doc("a"), "credit_note": False, "line_items_sum": Decimal("108.000000")}
    assert blocking(recheck(decision, items, RoutingThresholds(), date(2026, 11, 23), row)) == []
    broken = blocking(recheck(decision, items, RoutingThresholds(), date(2026, 11, 23), {**row, "line_items_sum": None}))
    assert [r.rule_id for r in broken] == ["amounts.total_eq_line_sum"]
    # A reviewed credit note keeps its negative amounts legitimate.
    credit = _decision("a", ReviewAction.APPROVED, subtotal="-100.00", tax="-19.00", total="-119.00")
    assert blocking(recheck(credit, [], RoutingThresholds(), date(2026, 11, 23), {**row, "credit_note": True})) == []
    assert [r.rule_id for r in blocking(recheck(credit, [], RoutingThresholds(), date(2026, 11, 23), row))] == [
        "amounts.non_negative"]


def test_removed_and_added_values_are_both_recorded():
    curated = _merge({"a": _decision("a", ReviewAction.CORRECTED, total="119.00", currency="",
                                     due_date="2026-10-31")})
    rows = {f["field_name"]: f for f in curated["fields"] if f["doc_id"] == "a"}
    assert rows["currency"]["change"] == "removed" and rows["currency"]["value"] is None
    assert rows["currency"]["value_original"] == "EUR"
    assert rows["due_date"]["change"] == "added" and rows["due_date"]["value_original"] is None


def test_the_log_skips_a_torn_line_and_appends_after_it(tmp_path):
    log = DecisionLog(tmp_path)
    log.append(_decision("a", ReviewAction.APPROVED))
    with open(log.path, "ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"decision_id": "x", "doc_id": "b", "ac')
    log.append(_decision("c", ReviewAction.REJECTED))
    assert [d.doc_id for d in DecisionLog(tmp_path).read()] == ["a", "c"]
    later = _decision("a", ReviewAction.REJECTED)
    log.append(later)
    assert DecisionLog(tmp_path).latest_by_doc()["a"].decision_id == later.decision_id
    assert len(log.path.read_text().splitlines()) == 4  # nothing is rewritten, only appended


def test_a_duplicate_keeps_its_status_in_the_curated_tables_and_is_no_label():
    docs = {"o": _doc("o", "accepted"), "dup": _doc("dup", "duplicate")}
    docs["dup"]["review_reasons"] = []
    rows = {d: {"fields": [_field(d, k, v) for k, v in FIELDS.items()], "rule_results": [], "line_items": []}
            for d in docs}
    curated = merge_reviews(docs, rows, {}, RoutingThresholds(), date(2026, 11, 23), NOW)
    status = {d["doc_id"]: d["status"] for d in curated["documents"]}
    assert status == {"o": "accepted", "dup": "duplicate"}
    assert labelled_records(curated) == []
