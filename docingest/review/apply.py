"""Merge review decisions into curated rows (a stage: no Prefect, no file I/O).

For every document of the latest published run: without a decision it keeps the pipeline's
status and values; with one, the reviewer's values become the curated values, the business
rules run again on them, and the document is accepted only if no error-level rule fails.
Each curated field row keeps the extraction's value beside the curated one (``value_original``)
and says what changed, so nothing the pipeline read is lost.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from docingest.config import RoutingThresholds
from docingest.stages.rules import apply_rules
from docingest.schemas.fields import DocType, field_spec
from docingest.schemas.records import ExtractedValue, Extraction, LineItem, RuleResult, Severity, TextSource
from docingest.schemas.review import CuratedStatus, ReviewAction, ReviewDecision

REVIEW_SOURCE = "review"


def merge_reviews(
    documents: dict[str, dict[str, Any]],
    rows_by_doc: dict[str, dict[str, list[dict[str, Any]]]],
    decisions: dict[str, ReviewDecision],
    thresholds: RoutingThresholds,
    today: date,
    applied_at: datetime,
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"documents": [], "fields": [], "rule_results": []}
    for doc_id, doc in sorted(documents.items()):
        rows = rows_by_doc.get(doc_id, {})
        original = rows.get("fields", [])
        decision = decisions.get(doc_id)
        base = {"doc_id": doc_id, "applied_at": applied_at}
        if decision is None or decision.action == ReviewAction.REJECTED:
            status = CuratedStatus.REJECTED if decision else CuratedStatus(doc["status"])
            reasons = ["rejected_by_reviewer"] if decision else list(doc["review_reasons"] or [])
            for f in original:
                # A withheld value was read but not asserted: the curated table leaves it empty.
                withheld = bool(f.get("withheld")) and decision is None
                out["fields"].append(_field_row(
                    base, doc, doc["doc_type"], decision, f, name=f["field_name"], key=f["key"],
                    value=None if withheld else f["value"], value_raw=f["value_raw"],
                    change="withheld" if withheld else "unchanged",
                    source=REVIEW_SOURCE if decision else "extraction"))
            for r in rows.get("rule_results", []):
                out["rule_results"].append({**base, **{k: r[k] for k in ("rule_id", "severity", "passed", "message")},
                                            "evaluated_on": "extraction"})
            doc_type = doc["doc_type"]
        else:
            doc_type = decision.doc_type
            out["fields"].extend(_reviewed_field_rows(base, doc, original, decision))
            results = recheck(decision, rows.get("line_items", []), thresholds, today, doc)
            for r in results:
                out["rule_results"].append({**base, "rule_id": r.rule_id, "severity": r.severity.value,
                                            "passed": r.passed, "message": r.message, "evaluated_on": REVIEW_SOURCE})
            failed = blocking(results)
            reasons = [f"rule_failed_after_review:{r.rule_id}:{r.message}" for r in failed]
            status = CuratedStatus.NEEDS_REVIEW if failed else CuratedStatus.ACCEPTED
        out["documents"].append({
            **base, "source_path": doc["source_path"], "doc_type": doc_type,
            "doc_type_original": doc["doc_type"], "status": status.value, "status_original": doc["status"],
            "reasons": reasons, "review_action": decision.action.value if decision else None,
            "reviewer": decision.reviewer if decision else None,
            "reviewed_at": decision.decided_at if decision else None,
            "decision_id": decision.decision_id if decision else None,
            "note": decision.note if decision else None, "extraction_run_id": doc["run_id"],
        })
    return out


def _field_row(base, doc, doc_type, decision, original, *, name, key, value, value_raw,
               change, source) -> dict[str, Any]:
    return {
        **base, "doc_type": doc_type, "field_name": name, "key": key,
        "value": value, "value_raw": value_raw,
        "value_original": original["value"] if original else None,
        "value_raw_original": original["value_raw"] if original else None,
        "confidence_original": original["confidence"] if original else None,
        "page": original["page"] if original else None, "bbox": original["bbox"] if original else None,
        "change": change, "source": source,
        "decision_id": decision.decision_id if decision else None, "extraction_run_id": doc["run_id"],
    }


def _reviewed_field_rows(base, doc, original: list[dict], decision: ReviewDecision) -> list[dict]:
    """Pair reviewed values with extracted ones by (field, key, n-th occurrence)."""
    def slots(items, name_of, key_of):
        seen: dict[tuple, int] = {}
        keyed = {}
        for item in items:
            k = (name_of(item), key_of(item))
            keyed[(*k, seen.get(k, 0))] = item
            seen[k] = seen.get(k, 0) + 1
        return keyed

    before = slots(original, lambda f: f["field_name"], lambda f: f["key"])
    after = slots(decision.values, lambda v: v.field_name, lambda v: v.key)
    rows = []
    for slot in list(before) + [s for s in after if s not in before]:
        old, new = before.get(slot), after.get(slot)
        name, key = slot[0], slot[1]
        if new is None:
            value, raw, change = None, None, "removed"
        elif old is None:
            value, raw, change = new.value, new.value_raw, "added"
        elif (new.value or new.value_raw) == (old["value"] or old["value_raw"]):
            value, raw, change = old["value"], old["value_raw"], "unchanged"
        else:
            value, raw, change = new.value, new.value_raw, "corrected"
        rows.append(_field_row(base, doc, decision.doc_type, decision, old, name=name, key=key,
                               value=value, value_raw=raw, change=change, source=REVIEW_SOURCE))
    return rows


def recheck(decision: ReviewDecision, line_items: list[dict[str, Any]], thresholds: RoutingThresholds,
            today: date, document: dict[str, Any]) -> list[RuleResult]:
    """The business rules on the reviewed values, with the extracted line items and what the
    document row says about them (a credit note; the items' printed sum)."""
    return apply_rules(_extraction(decision, line_items, document), thresholds, today)


def blocking(results: list[RuleResult]) -> list[RuleResult]:
    return [r for r in results if not r.passed and r.severity == Severity.ERROR]


def _extraction(decision: ReviewDecision, line_items: list[dict[str, Any]], document: dict[str, Any]) -> Extraction:
    doc_type = DocType(decision.doc_type)
    values = [
        ExtractedValue(field_name=v.field_name, key=v.key, value_raw=v.value_raw, value=v.value,
                       confidence=1.0, grounded=True, source=TextSource.TEXT_LAYER)
        for v in decision.values if v.field_name == "key_values" or field_spec(doc_type, v.field_name)
    ]
    items = [LineItem(line_no=li["line_no"], description=li["description"],
                      quantity=_dec(li["quantity"]), unit_price=_dec(li["unit_price"]),
                      amount=_dec(li["amount"]), page=li["page"], confidence=li["confidence"] or 0.0)
             for li in line_items]
    return Extraction(doc_type=doc_type, values=values, line_items=items,
                      credit_note=bool(document.get("credit_note")),
                      line_items_sum=_dec(document.get("line_items_sum")))


def _dec(value) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def labelled_records(curated: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Reviewed, accepted documents as labels.jsonl records (the format `docingest eval` reads)."""
    fields_by_doc: dict[str, list[dict[str, Any]]] = {}
    for f in curated["fields"]:
        if f["change"] != "removed" and f["value_raw"] is not None:
            fields_by_doc.setdefault(f["doc_id"], []).append(f)
    records = []
    for d in curated["documents"]:
        if d["review_action"] not in (ReviewAction.APPROVED.value, ReviewAction.CORRECTED.value):
            continue
        if d["status"] != CuratedStatus.ACCEPTED.value:
            continue
        fields: dict[str, Any] = {}
        key_values = []
        for f in fields_by_doc.get(d["doc_id"], []):
            value = f["value"] if f["value"] is not None else f["value_raw"]
            if f["field_name"] == "key_values":
                key_values.append({"key": f["key"], "value": value})
            elif f["field_name"] == "parties":
                fields.setdefault("parties", []).append(value)
            else:
                fields[f["field_name"]] = value
        record = {"id": d["doc_id"][:16], "path": d["source_path"], "source_set": "review",
                  "doc_type": d["doc_type"], "classify": True, "fields": fields,
                  "reviewer": d["reviewer"], "reviewed_at": d["reviewed_at"], "decision_id": d["decision_id"]}
        if key_values:
            record["key_values"] = key_values
        records.append(record)
    return records
