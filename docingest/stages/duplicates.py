"""Duplicate invoices: the same bytes under another name, or the same vendor and invoice
number on another document, in this run or in an earlier published one. A duplicate is how
an invoice gets paid twice, so it goes to review.

Re-processing the same file (same bytes, same path) is not a duplicate: nightly runs over a
folder see their old files again.
"""

from __future__ import annotations

import re
from collections import defaultdict

from schemas.fields import DocType
from schemas.records import DocumentResult, PriorDocument, RuleResult, Severity, Status

RULE_ID = "duplicates.invoice"
_FINANCIAL = {DocType.INVOICE, DocType.RECEIPT}


def invoice_key(vendor_name: str | None, invoice_number: str | None) -> tuple[str, str] | None:
    if not vendor_name or not invoice_number:
        return None
    vendor = re.sub(r"[^0-9a-z]", "", vendor_name.casefold())
    number = re.sub(r"[^0-9A-Z]", "", invoice_number.upper())
    return (vendor, number) if vendor and number else None


def _value(result: DocumentResult, name: str) -> str | None:
    v = result.extraction.get(name) if result.extraction else None
    return (v.value or v.value_raw) if v else None


def check_duplicates(results: list[DocumentResult], prior: list[PriorDocument]) -> list[DocumentResult]:
    """Add a ``duplicates.invoice`` rule result to every invoice/receipt; a failed one sends
    an accepted document to review. Returns the same list, updated in place."""
    paths_by_digest: dict[str, set[str]] = defaultdict(set)
    docs_by_key: dict[tuple[str, str], set[str]] = defaultdict(set)
    where: dict[str, str] = {}
    for p in prior:
        paths_by_digest[p.doc_id].update(p.source_paths)
        where.setdefault(p.doc_id, f"{p.source_paths[0] if p.source_paths else '?'} (run {p.run_id})")
        key = invoice_key(p.vendor_name, p.invoice_number)
        if key:
            docs_by_key[key].add(p.doc_id)
    for r in results:
        key = invoice_key(_value(r, "vendor_name"), _value(r, "invoice_number"))
        if key and r.doc_id:
            docs_by_key[key].add(r.doc_id)
            where.setdefault(r.doc_id, f"{r.source_path} (this run)")

    for r in results:
        if r.doc_id is None or r.classification is None or r.classification.doc_type not in _FINANCIAL:
            continue
        problems: list[str] = []
        if len(r.source_paths) > 1:
            problems.append(f"same bytes submitted as {len(r.source_paths)} files in this run")
        earlier_paths = paths_by_digest.get(r.doc_id, set()) - set(r.source_paths)
        if earlier_paths:
            problems.append(f"same bytes as {sorted(earlier_paths)[0]} in an earlier run")
        key = invoice_key(_value(r, "vendor_name"), _value(r, "invoice_number"))
        others = sorted(docs_by_key.get(key, set()) - {r.doc_id}) if key else []
        if others:
            problems.append(f"vendor and invoice number {_value(r, 'invoice_number')} also on "
                            f"{where.get(others[0], others[0])}")
        r.rule_results.append(RuleResult(
            rule_id=RULE_ID, severity=Severity.ERROR, passed=not problems,
            message="; ".join(problems) if problems else "no duplicate found",
        ))
        if problems:
            reason = f"rule_failed:{RULE_ID}"
            if reason not in r.review_reasons:
                r.review_reasons.append(reason)
            if r.status == Status.ACCEPTED:
                r.status = Status.NEEDS_REVIEW
    return results
