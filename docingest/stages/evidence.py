"""Verification evidence: what, besides how it was found, speaks for a value.

Recorded per value (``fields.evidence``), from the document's own words, never from names or
values seen in any labelled set:

* ``whole_token`` / ``partial_token``: an identifier as printed is a whole token of its line,
  or only a piece of a longer one ("12345" read out of "A12345" or "A-12345"). A piece is not grounded:
  the document goes to review (``ungrounded:invoice_number``).
* ``repeated``: the value is printed on more than one line of the document (letterhead and
  footer, a reference repeated in the payment terms).
* ``reconciles``: subtotal + tax = total within the amount tolerance (for those three), or the
  line items add up to the subtotal or the total (``line_items_sum``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from docingest.schemas.fields import FieldKind, field_spec
from docingest.schemas.records import Extraction, PageText

_WS = re.compile(r"\s+")
# Characters that join the parts of one printed identifier ("A-12345", "2024/17", "RE.881").
_JOINERS = "-/._"


def _glued(line: str, at: int, step: int) -> bool:
    """Whether the character at ``at`` (looking outwards by ``step``) continues the token."""
    if not 0 <= at < len(line):
        return False
    if line[at].isalnum():
        return True
    beyond = at + step
    return line[at] in _JOINERS and 0 <= beyond < len(line) and line[beyond].isalnum()


def _squash(text: str) -> str:
    return _WS.sub("", text).casefold()


def _token_fit(raw: str, lines: list[str]) -> str | None:
    """``whole_token`` when ``raw`` occurs in a line bounded by non-alphanumerics,
    ``partial_token`` when it occurs only glued to letters or digits, None when not found."""
    needle = raw.strip()
    if not needle:
        return None
    found = False
    for line in lines:
        start = line.find(needle)
        while start >= 0:
            found = True
            end = start + len(needle)
            if not _glued(line, start - 1, -1) and not _glued(line, end, 1):
                return "whole_token"
            start = line.find(needle, start + 1)
    return "partial_token" if found else None


def _decimal(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value is not None else None
    except InvalidOperation:
        return None


def annotate_evidence(pages: list[PageText], extraction: Extraction, amount_tolerance: float) -> None:
    """Add each value's evidence (in place); an identifier that is only a piece of a printed
    token is not grounded."""
    lines_by_page = {p.page: [" ".join(w.text for w in line) for line in p.lines()] for p in pages}
    squashed = [_squash(line) for lines in lines_by_page.values() for line in lines]
    for value in extraction.values:
        evidence: list[str] = []
        spec = field_spec(extraction.doc_type, value.field_name)
        if spec is not None and spec.kind == FieldKind.ID and value.page in lines_by_page:
            fit = _token_fit(value.value_raw, lines_by_page[value.page])
            if fit:
                evidence.append(fit)
            if fit == "partial_token":
                value.grounded = False
        needle = _squash(value.value_raw)
        if len(needle) >= 3 and sum(needle in line for line in squashed) >= 2:
            evidence.append("repeated")
        value.evidence = evidence
    amounts = {name: _decimal(v.value) for name in ("subtotal", "tax", "total") if (v := extraction.get(name))}
    tolerance = Decimal(str(amount_tolerance))
    if None not in amounts.values() and len(amounts) == 3 and \
            abs(amounts["subtotal"] + amounts["tax"] - amounts["total"]) <= tolerance:
        for name in amounts:
            extraction.get(name).evidence.append("reconciles")
    items = [_decimal(i.amount) for i in extraction.line_items]
    if items and None not in items:
        item_sum = sum(items, Decimal(0))
        for name in ("subtotal", "total"):
            if (v := extraction.get(name)) is not None and (d := _decimal(v.value)) is not None \
                    and abs(d - item_sum) <= tolerance:
                v.evidence.append("line_items_sum")
