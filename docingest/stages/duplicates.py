"""Duplicate invoices: the same bytes under another name, or the same vendor and invoice
number on another document, in this run or in an earlier published one. A duplicate is how
an invoice gets paid twice, so it goes to review.

Within one run, one document of a vendor + invoice number group is the original and the others
are its copies: the first (by path) that routed to accepted, else the first by path. The
original keeps its route; every copy goes to review naming the original, so at most one copy
of an invoice is ever accepted. A vendor + invoice number already published by an earlier run
has its original there, so every document of this run that repeats it goes to review.

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

Key = tuple[str, str]


def invoice_key(vendor_name: str | None, invoice_number: str | None) -> Key | None:
    if not vendor_name or not invoice_number:
        return None
    vendor = re.sub(r"[^0-9a-z]", "", vendor_name.casefold())
    number = re.sub(r"[^0-9A-Z]", "", invoice_number.upper())
    return (vendor, number) if vendor and number else None


def _value(result: DocumentResult, name: str) -> str | None:
    v = result.extraction.get(name) if result.extraction else None
    return (v.value or v.value_raw) if v else None


def _key(result: DocumentResult) -> Key | None:
    return invoice_key(_value(result, "vendor_name"), _value(result, "invoice_number"))


def _originals(checked: list[DocumentResult]) -> dict[Key, DocumentResult]:
    """The original of each vendor + invoice number group in this run."""
    groups: dict[Key, list[DocumentResult]] = defaultdict(list)
    for r in checked:
        if (key := _key(r)) is not None:
            groups[key].append(r)
    return {key: min(members, key=lambda r: (r.status != Status.ACCEPTED, r.source_path, r.doc_id))
            for key, members in groups.items()}


def check_duplicates(results: list[DocumentResult], prior: list[PriorDocument]) -> list[DocumentResult]:
    """Add a ``duplicates.invoice`` rule result to every invoice/receipt; a failed one sends
    an accepted document to review. Returns the same list, updated in place."""
    paths_by_digest: dict[str, set[str]] = defaultdict(set)
    prior_by_key: dict[Key, dict[str, str]] = defaultdict(dict)
    for p in prior:
        paths_by_digest[p.doc_id].update(p.source_paths)
        key = invoice_key(p.vendor_name, p.invoice_number)
        if key:
            where = p.source_paths[0] if p.source_paths else p.doc_id
            prior_by_key[key].setdefault(p.doc_id, f"{where} (run {p.run_id})")

    checked = [r for r in results if r.doc_id is not None and r.classification is not None
               and r.classification.doc_type in _FINANCIAL]
    originals = _originals(checked)
    for r in checked:
        problems: list[str] = []
        if len(r.source_paths) > 1:
            problems.append(f"same bytes submitted as {len(r.source_paths)} files in this run")
        earlier_paths = paths_by_digest.get(r.doc_id, set()) - set(r.source_paths)
        if earlier_paths:
            problems.append(f"same bytes as {sorted(earlier_paths)[0]} in an earlier run")
        key = _key(r)
        earlier = sorted(where for doc_id, where in prior_by_key.get(key, {}).items()
                         if doc_id != r.doc_id) if key else []
        if earlier:
            problems.append(f"vendor and invoice number {_value(r, 'invoice_number')} already published "
                            f"from {earlier[0]}")
        elif key and originals[key] is not r:
            problems.append(f"duplicate of {originals[key].doc_id}: vendor and invoice number "
                            f"{_value(r, 'invoice_number')} also on {originals[key].source_path} (this run)")
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
