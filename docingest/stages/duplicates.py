"""Duplicate invoices: the same vendor and invoice number on another document, in this run or
in an earlier published one. A duplicate is how an invoice gets paid twice.

Within one run, one document of a vendor + invoice number group is the original and the others
are its copies: the first (by path) that routed to accepted, else the first by path. The
original keeps its route. A copy becomes a ``duplicate`` (not loaded again, not reviewed, its
row names the original) only when three things hold: the original is accepted, the copy would
have been accepted on its own, and every field reads the same on both. Vendors re-send the
same invoice; that needs no person. Any other copy goes to review naming the original: a
number reused with another date or amount is exactly what a person must see. A vendor + invoice
number published by an earlier run is the original in the same way.

The same bytes are one document whatever the number of paths: several files in this run list
all their paths on one row, and re-processing a file already published (same bytes, same path)
is no duplicate, since nightly runs over a folder see their old files again. The same bytes
published from another path are a duplicate of that document.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from schemas.fields import DocType
from schemas.records import DocumentResult, PriorDocument, RuleResult, Severity, Status

RULE_ID = "duplicates.invoice"
_FINANCIAL = {DocType.INVOICE, DocType.RECEIPT}

Key = tuple[str, str]
Values = dict[str, list[str]]


def invoice_key(vendor_name: str | None, invoice_number: str | None) -> Key | None:
    if not vendor_name or not invoice_number:
        return None
    vendor = re.sub(r"[^0-9a-z]", "", vendor_name.casefold())
    number = re.sub(r"[^0-9A-Z]", "", invoice_number.upper())
    return (vendor, number) if vendor and number else None


@dataclass(frozen=True)
class _Original:
    """What a copy is compared with: a document of this run or of an earlier published one."""

    doc_id: str
    how: str  # what the copy shares with it, and where it is
    accepted: bool
    values: Values


def read_values(result: DocumentResult) -> Values:
    """Every field value read on the document, as ``PriorDocument.values`` holds them."""
    values: Values = defaultdict(list)
    for v in result.extraction.values if result.extraction else []:
        if v.field_name != "key_values":
            values[v.field_name].append(v.value or v.value_raw)
    return {name: sorted(vs) for name, vs in values.items()}


def _fold(values: Values) -> dict[str, list[str]]:
    """Values as compared: two renderings of one invoice may space a word differently
    ("Industrieser vice" where the glyphs are kerned apart), which is no other content."""
    return {name: sorted(re.sub(r"\s+", "", v.casefold()) for v in vs) for name, vs in values.items()}


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


def _prior_original(p: PriorDocument, shared: str) -> _Original:
    where = p.source_paths[0] if p.source_paths else p.doc_id
    return _Original(p.doc_id, f"{shared} {where} (earlier run {p.run_id})", p.status == Status.ACCEPTED.value,
                     p.values)


def check_duplicates(results: list[DocumentResult], prior: list[PriorDocument]) -> list[DocumentResult]:
    """Add a ``duplicates.invoice`` rule result to every invoice/receipt. A copy that re-issues
    an accepted original field for field becomes ``duplicate``; any other copy goes to review.
    Returns the same list, updated in place."""
    # One entry per document (``writer.prior_documents`` folds the nights a file was re-published).
    prior_by_id = {p.doc_id: p for p in prior}
    prior_by_key: dict[Key, list[PriorDocument]] = defaultdict(list)
    # An accepted one first: that is the copy a re-issue is compared with.
    for p in sorted(prior_by_id.values(), key=lambda p: (p.status != Status.ACCEPTED.value, p.run_id, p.doc_id)):
        if key := invoice_key(p.vendor_name, p.invoice_number):
            prior_by_key[key].append(p)

    checked = [r for r in results if r.doc_id is not None and r.classification is not None
               and r.classification.doc_type in _FINANCIAL]
    originals = _originals(checked)
    # Decided before any status changes, so the order documents are checked in doesn't matter.
    accepted_here = {r.doc_id for r in checked if r.status == Status.ACCEPTED}
    for r in checked:
        original = _original_of(r, prior_by_id, prior_by_key, originals, accepted_here)
        if original is None:
            several = f"same bytes under {len(r.source_paths)} paths in this run: one document; " \
                if len(r.source_paths) > 1 else ""
            r.rule_results.append(RuleResult(rule_id=RULE_ID, severity=Severity.ERROR, passed=True,
                                             message=several + "no duplicate found"))
            continue
        same = _fold(read_values(r)) == _fold(original.values)
        if original.accepted and same and r.status == Status.ACCEPTED:
            r.status, r.duplicate_of = Status.DUPLICATE, original.doc_id
            r.rule_results.append(RuleResult(rule_id=RULE_ID, severity=Severity.WARNING, passed=False, message=(
                f"re-issue of {original.doc_id}: {original.how}, accepted there; every field reads the same, "
                "so it is not loaded again")))
            continue
        if not same:
            why = "its fields differ from the original's"
        elif not original.accepted:
            why = "every field reads the same, but the original was not accepted"
        else:
            why = "every field reads the same, but this copy fails its own checks"
        r.rule_results.append(RuleResult(rule_id=RULE_ID, severity=Severity.ERROR, passed=False,
                                         message=f"duplicate of {original.doc_id}: {original.how}; {why}"))
        reason = f"rule_failed:{RULE_ID}"
        if reason not in r.review_reasons:
            r.review_reasons.append(reason)
        if r.status == Status.ACCEPTED:
            r.status = Status.NEEDS_REVIEW
    return results


def _original_of(r: DocumentResult, prior_by_id: dict[str, PriorDocument],
                 prior_by_key: dict[Key, list[PriorDocument]], originals: dict[Key, DocumentResult],
                 accepted_here: set[str]) -> _Original | None:
    """The document ``r`` repeats, if any: the same bytes published from another path, else a
    published document with its vendor + number (an accepted one first, then the earliest),
    else its group's original in this run."""
    same_bytes = prior_by_id.get(r.doc_id)
    if same_bytes is not None and set(same_bytes.source_paths) - set(r.source_paths):
        return _prior_original(same_bytes, "same bytes as")
    key = _key(r)
    if key is None:
        return None
    shared = f"vendor and invoice number {_value(r, 'invoice_number')} also on"
    earlier = [p for p in prior_by_key.get(key, []) if p.doc_id != r.doc_id]
    if earlier:
        return _prior_original(earlier[0], shared)
    first = originals[key]
    if first is r:
        return None
    return _Original(first.doc_id, f"{shared} {first.source_path} (this run)", first.doc_id in accepted_here,
                     read_values(first))
