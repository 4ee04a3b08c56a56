"""Duplicate invoices: the same vendor and invoice number on another document, in this run or
in an earlier published one. A duplicate is how an invoice gets paid twice.

The documents of a vendor + invoice number group, this run's and the published ones, have one
original: the one published first (this run's new documents come last), then an accepted one,
then the first by path. Ordering by first publication keeps the verdicts stable: a rerun over
the same folder sees the same original as the run before it. The original keeps its route. A
copy becomes a ``duplicate`` (not loaded again, not reviewed, its row names the original) only
when three things hold: the original is accepted, the copy would have been accepted on its own,
and every field reads the same on both. Vendors re-send the same invoice; that needs no person.
Any other copy goes to review naming the original: a number reused with another date or amount
is exactly what a person must see.

The same bytes are one document whatever its paths: several files in this run are one row
listing all their paths, and a document an earlier run published is that document again, never
a duplicate of its own earlier row, wherever its file lies now.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from docingest.schemas.fields import DocType
from docingest.stages.route import AUDIT_REASON
from docingest.schemas.records import DocumentResult, PriorDocument, RuleResult, Severity, Status
from docingest.schemas.runs import DocumentSummary, DuplicateVerdict

RULE_ID = "duplicates.invoice"
FINANCIAL = {DocType.INVOICE, DocType.RECEIPT}

Key = tuple[str, str]
Values = dict[str, list[str]]


def invoice_key(vendor_name: str | None, invoice_number: str | None) -> Key | None:
    if not vendor_name or not invoice_number:
        return None
    vendor = re.sub(r"[^0-9a-z]", "", vendor_name.casefold())
    number = re.sub(r"[^0-9A-Z]", "", invoice_number.upper())
    return (vendor, number) if vendor and number else None


def read_values(result: DocumentResult) -> Values:
    """Every field value read on the document, as ``PriorDocument.values`` holds them."""
    values: Values = defaultdict(list)
    for v in result.extraction.values if result.extraction else []:
        if v.field_name != "key_values":
            values[v.field_name].append(v.value or v.value_raw)
    return {name: sorted(vs) for name, vs in values.items()}


def _first(values: Values, name: str) -> str | None:
    return (values.get(name) or [None])[0]


def _key(values: Values) -> Key | None:
    return invoice_key(_first(values, "vendor_name"), _first(values, "invoice_number"))


def summary_key(d: DocumentSummary) -> Key | None:
    """The vendor + invoice number a document is checked under; None: not checked against
    any other (not an invoice or receipt, or either value missing)."""
    return _key(d.values) if d.doc_id is not None and d.doc_type in FINANCIAL else None


def checked(d: DocumentSummary) -> bool:
    """Every invoice and receipt gets a ``duplicates.invoice`` result."""
    return d.doc_id is not None and d.doc_type in FINANCIAL


def no_duplicate(d: DocumentSummary) -> DuplicateVerdict:
    """The verdict of a document no other shares its vendor and invoice number with."""
    several = (f"same bytes under {len(d.source_paths)} paths in this run: one document; "
               if len(d.source_paths) > 1 else "")
    return DuplicateVerdict(status=d.status, rule=RuleResult(
        rule_id=RULE_ID, severity=Severity.ERROR, passed=True, message=several + "no duplicate found"))


def _fold(values: Values) -> dict[str, list[str]]:
    """Values as compared: two renderings of one invoice may space a word differently
    ("Industrieser vice" where the glyphs are kerned apart), which is no other content."""
    return {name: sorted(re.sub(r"\s+", "", v.casefold()) for v in vs) for name, vs in values.items()}


@dataclass(frozen=True)
class _Member:
    """A document of a vendor + invoice number group, from this run or a published one."""

    doc_id: str
    first_run: str | None  # the first published run that held it; None: new in this run
    accepted: bool
    path: str
    where: str  # "(this run)" or "(earlier run R)"
    values: Values

    def order(self) -> tuple:
        return (self.first_run is None, self.first_run or "", not self.accepted, self.path, self.doc_id)


def _current(d: DocumentSummary, published: PriorDocument | None) -> _Member:
    # Its status in this run counts, as it did when it was first published: the original of a
    # group never changes its route, so a rerun orders the group as the first run did.
    return _Member(d.doc_id, published.first_run_id or published.run_id if published else None,
                   d.status == Status.ACCEPTED, d.source_path, "(this run)", d.values)


def _published(p: PriorDocument) -> _Member:
    return _Member(p.doc_id, p.first_run_id or p.run_id, p.status == Status.ACCEPTED.value,
                   p.source_paths[0] if p.source_paths else p.doc_id, f"(earlier run {p.run_id})", p.values)


def check_duplicates(documents: list[DocumentSummary], prior: list[PriorDocument]) -> dict[str, DuplicateVerdict]:
    """A ``duplicates.invoice`` verdict for every invoice and receipt of ``documents``, by
    doc_id, against each other and the published ``prior`` documents (one entry per document,
    ``published.prior_documents``). Statuses are read before any verdict, so the order documents
    are checked in does not matter."""
    current = {d.doc_id: d for d in documents if checked(d)}
    prior_by_id = {p.doc_id: p for p in prior}
    groups: dict[Key, list[_Member]] = defaultdict(list)
    for d in current.values():
        if (key := _key(d.values)) is not None:
            groups[key].append(_current(d, prior_by_id.get(d.doc_id)))
    for p in prior:
        key = invoice_key(p.vendor_name, p.invoice_number)
        # A document this run holds is compared as this run read it.
        if key in groups and p.doc_id not in current:
            groups[key].append(_published(p))

    verdicts: dict[str, DuplicateVerdict] = {}
    for d in current.values():
        key = _key(d.values)
        original = min(groups[key], key=_Member.order) if key is not None else None
        if original is None or original.doc_id == d.doc_id:
            verdicts[d.doc_id] = no_duplicate(d)
            continue
        how = f"vendor and invoice number {_first(d.values, 'invoice_number')} also on {original.path} {original.where}"
        same = _fold(d.values) == _fold(original.values)
        # A re-issue held only as an audit sample passed everything: auditing a copy of an
        # accepted invoice measures nothing new, so it is recorded as the duplicate it is.
        passed = d.status == Status.ACCEPTED or d.review_reasons == [AUDIT_REASON]
        if original.accepted and same and passed:
            verdicts[d.doc_id] = DuplicateVerdict(
                status=Status.DUPLICATE, duplicate_of=original.doc_id, rule=RuleResult(
                    rule_id=RULE_ID, severity=Severity.WARNING, passed=False, message=(
                        f"re-issue of {original.doc_id}: {how}, accepted there; every field reads the same, "
                        "so it is not loaded again")))
            continue
        if not same:
            why = "its fields differ from the original's"
        elif not original.accepted:
            why = "every field reads the same, but the original was not accepted"
        else:
            why = "every field reads the same, but this copy fails its own checks"
        verdicts[d.doc_id] = DuplicateVerdict(
            status=Status.NEEDS_REVIEW if d.status == Status.ACCEPTED else d.status,
            review_reason=f"rule_failed:{RULE_ID}",
            rule=RuleResult(rule_id=RULE_ID, severity=Severity.ERROR, passed=False,
                            message=f"duplicate of {original.doc_id}: {how}; {why}"))
    return verdicts


def published_to_compare(prior: list[PriorDocument], candidates: list[DocumentSummary],
                         run_doc_ids: set[str]) -> list[PriorDocument]:
    """The published documents ``check_duplicates`` compares ``candidates`` with: those sharing
    a vendor and number with one, except documents this run holds that are not candidates (it
    reads them under another key now, and a document is compared as this run reads it)."""
    keys = {summary_key(c) for c in candidates}
    ids = {c.doc_id for c in candidates}
    return [p for p in prior if invoice_key(p.vendor_name, p.invoice_number) in keys
            and (p.doc_id not in run_doc_ids or p.doc_id in ids)]


def apply_verdict(result: DocumentResult, verdict: DuplicateVerdict) -> None:
    """Fold a verdict into the document's full result, as the writer publishes it."""
    result.rule_results.append(verdict.rule)
    result.status, result.duplicate_of = verdict.status, verdict.duplicate_of
    if verdict.status == Status.DUPLICATE:
        result.review_reasons = [r for r in result.review_reasons if r != AUDIT_REASON]
    if verdict.review_reason and verdict.review_reason not in result.review_reasons:
        result.review_reasons.append(verdict.review_reason)
