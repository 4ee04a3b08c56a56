"""Turn VLM page answers into extracted values: normalize, ground, merge pages, compare.

A VLM can read a value that is not on the page (it infers, or hallucinates). Every value it
returns is therefore looked up in the words already read from that page (text layer or OCR):
found means ``grounded`` with the box of the words; not found is flagged and, like any
ungrounded value, sends the document to review. Where the local extractor also produced the
field, agreement raises the confidence and disagreement lowers it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from docingest.stages.contract_fields import term_value
from docingest.stages.financial_fields import guess_dayfirst
from docingest.stages.labels import plausible
from docingest.stages.layout import document_lines, union_bbox
from docingest.stages.normalize import (
    CURRENCY_SYMBOLS,
    find_amounts,
    find_dates,
    format_amount,
    normalize_currency,
    parse_amount,
    parse_date,
)
from docingest.schemas.fields import LINE_ITEM_TYPES, DocType, FieldKind, FieldSpec, field_specs
from docingest.schemas.records import (
    BBox,
    Classification,
    ExtractedValue,
    Extraction,
    LineItem,
    PageText,
    TextSource,
    Word,
)

GROUNDED_CONFIDENCE, UNGROUNDED_CONFIDENCE = 0.9, 0.4
AGREE_CONFIDENCE, DISAGREE_FACTOR = 0.97, 0.75
# Totals sit at the end of a document; everything else is first stated at its start.
LAST_PAGE_WINS = frozenset({"subtotal", "tax", "total"})
# How the VLM's own classification combines with the local classifier's.
CLASSIFY_DISAGREE_FACTOR = 0.8


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


@dataclass
class Located:
    grounded: bool
    bbox: BBox | None = None
    word_confidence: float = 1.0


def locate(raw: str, words: list[Word], kind: FieldKind, normalized: str | None) -> Located:
    """Find a value in a page's words: exact text (spacing and punctuation ignored), or for
    amounts and dates the same normalized value printed differently."""
    needle = _squash(raw)
    if needle:
        found = _find_window(needle, words)
        if found is not None:
            return found
    if normalized and kind in (FieldKind.AMOUNT, FieldKind.DATE, FieldKind.CURRENCY):
        for word_index, word in enumerate(words):
            if _same_value(word.text, kind, normalized):
                return Located(True, word.bbox, word.confidence)
            # Amounts and dates split over two words ("1 234,00", "12 Mar 2024").
            for span in (2, 3):
                group = words[word_index: word_index + span]
                if len(group) == span and _same_value(" ".join(w.text for w in group), kind, normalized):
                    return Located(True, union_bbox(group), min(w.confidence for w in group))
    return Located(False)


def _find_window(needle: str, words: list[Word]) -> Located | None:
    squashed = [_squash(w.text) for w in words]
    for i in range(len(words)):
        if not squashed[i] or squashed[i][0] != needle[0] and needle[0] not in squashed[i]:
            continue
        acc = ""
        for j in range(i, min(len(words), i + 60)):
            acc += squashed[j]
            if needle in acc:
                start = i
                while start < j and needle in "".join(squashed[start + 1: j + 1]):
                    start += 1  # the tightest window: no leading word the value does not need
                group = words[start: j + 1]
                return Located(True, union_bbox(group), min(w.confidence for w in group))
            if len(acc) > len(needle) + len(squashed[i]):
                break
    return None


def _same_value(text: str, kind: FieldKind, normalized: str) -> bool:
    if kind == FieldKind.AMOUNT:
        return any(format_amount(v) == normalized for _, _, v in find_amounts(text))
    if kind == FieldKind.DATE:
        return any(d.isoformat() == normalized for first in (True, False)
                   for _, _, d in find_dates(text, first))
    if kind == FieldKind.CURRENCY:
        token = text.strip(" .:,")
        return normalize_currency(token) == normalized or CURRENCY_SYMBOLS.get(token) == normalized
    return False


def normalize_value(raw: str, kind: FieldKind, dayfirst: bool) -> str | None:
    raw = raw.strip()
    if kind == FieldKind.DATE:
        d = parse_date(raw, dayfirst)
        return d.isoformat() if d and plausible(d) else None
    if kind == FieldKind.AMOUNT:
        v = parse_amount(raw)
        return format_amount(v) if v is not None else None
    if kind == FieldKind.CURRENCY:
        code = normalize_currency(raw)
        if code is None:
            m = re.search(r"\b[A-Z]{3}\b", raw.upper())
            code = normalize_currency(m.group(0)) if m else None
        return code
    if kind == FieldKind.DURATION:
        return term_value(raw)
    return re.sub(r"\s+", " ", raw) or None


def _value(name: str, raw: str, kind: FieldKind, page: PageText, dayfirst: bool,
           key: str | None = None) -> ExtractedValue:
    normalized = normalize_value(raw, kind, dayfirst)
    where = locate(raw, page.words, kind, normalized)
    confidence = (GROUNDED_CONFIDENCE * where.word_confidence) if where.grounded else UNGROUNDED_CONFIDENCE
    if normalized is None and kind in (FieldKind.DATE, FieldKind.AMOUNT, FieldKind.CURRENCY, FieldKind.DURATION):
        confidence *= 0.5  # read, but not a valid date / amount / code
    return ExtractedValue(
        field_name=name, value_raw=raw.strip(), value=normalized, confidence=round(confidence, 4),
        page=page.page, bbox=where.bbox, grounded=where.grounded, source=TextSource.VLM, key=key,
    )


def page_values(answer, doc_type: DocType, page: PageText) -> tuple[list[ExtractedValue], list[LineItem]]:
    """One page's answer as values (grounded against that page's words) and line items."""
    dayfirst = guess_dayfirst(document_lines([page]))
    values: list[ExtractedValue] = []
    for spec in field_specs(doc_type):
        raw = getattr(answer, spec.name, None)
        if spec.kind == FieldKind.TEXT_LIST:
            seen: set[str] = set()
            for item in raw or []:
                if item and item.strip() and _squash(item) not in seen:
                    seen.add(_squash(item))
                    values.append(_value(spec.name, item, FieldKind.TEXT, page, dayfirst))
        elif isinstance(raw, str) and raw.strip():
            values.append(_value(spec.name, raw, spec.kind, page, dayfirst))
    if doc_type == DocType.FORM:
        for pair in getattr(answer, "key_values", None) or []:
            if pair.key and pair.value and pair.value.strip():
                values.append(_value("key_values", pair.value, FieldKind.TEXT, page, dayfirst,
                                     key=pair.key.strip()))
    items: list[LineItem] = []
    if doc_type in LINE_ITEM_TYPES:
        for item in getattr(answer, "line_items", None) or []:
            amount = _amount(item.amount)
            if amount is None and not (item.description or "").strip():
                continue
            where = locate(item.amount or "", page.words, FieldKind.AMOUNT, amount) if amount else Located(False)
            items.append(LineItem(
                line_no=0, description=(item.description or "").strip() or None,
                quantity=_amount(item.quantity, plain=True), unit_price=_amount(item.unit_price),
                amount=amount, page=page.page,
                confidence=GROUNDED_CONFIDENCE if where.grounded else UNGROUNDED_CONFIDENCE,
            ))
    return values, items


def _amount(raw: str | None, plain: bool = False) -> str | None:
    if not raw:
        return None
    v = parse_amount(raw)
    if v is None:
        return None
    return f"{v.normalize():f}" if plain else format_amount(v)


def merge_pages(doc_type: DocType, per_page: list[tuple[list[ExtractedValue], list[LineItem]]]) -> Extraction:
    """Pages in order → one extraction: a scalar field from its first page (totals from their
    last), list fields (parties, key/values, line items) concatenated, each keeping its page."""
    specs: dict[str, FieldSpec] = {s.name: s for s in field_specs(doc_type)}
    scalar: dict[str, ExtractedValue] = {}
    lists: list[ExtractedValue] = []
    seen_parties: set[str] = set()
    items: list[LineItem] = []
    for values, page_items in per_page:
        for v in values:
            spec = specs.get(v.field_name)
            if v.field_name == "key_values" or (spec and spec.kind == FieldKind.TEXT_LIST):
                if v.field_name == "parties":
                    if _squash(v.value_raw) in seen_parties:
                        continue
                    seen_parties.add(_squash(v.value_raw))
                lists.append(v)
            elif v.field_name not in scalar or v.field_name in LAST_PAGE_WINS:
                scalar[v.field_name] = v
        items.extend(page_items)
    for number, item in enumerate(items, start=1):
        item.line_no = number
    ordered = [scalar[name] for name in specs if name in scalar]
    return Extraction(doc_type=doc_type, values=ordered + lists, line_items=items)


def compare_with_local(vlm: Extraction, local: Extraction | None) -> None:
    """Agreement between the VLM and the local extractor feeds each VLM value's confidence."""
    if local is None or local.doc_type != vlm.doc_type:
        return
    local_by_name: dict[str, set[str]] = {}
    for v in local.values:
        if v.value is not None:
            local_by_name.setdefault(v.field_name, set()).add(_squash(v.value))
    for v in vlm.values:
        if v.source != TextSource.VLM or v.value is None or v.field_name not in local_by_name:
            continue
        if v.field_name == "key_values":
            continue  # keys are free text: no reliable pairing with the local reading
        agrees = _squash(v.value) in local_by_name[v.field_name]
        v.agrees_with_local = agrees
        v.confidence = round(max(v.confidence, AGREE_CONFIDENCE) if agrees and v.grounded
                             else v.confidence * (1 if agrees else DISAGREE_FACTOR), 4)


def vlm_classification(doc_type: DocType, vlm_confidence: float, local: Classification | None) -> Classification:
    scores = {"vlm": round(vlm_confidence, 4)}
    confidence = vlm_confidence
    if local is not None:
        scores["local"] = round(local.confidence, 4)
        scores["local_type_" + local.doc_type.value] = 1.0
        confidence = (max(vlm_confidence, local.confidence) if local.doc_type == doc_type
                      else vlm_confidence * CLASSIFY_DISAGREE_FACTOR)
    return Classification(doc_type=doc_type, confidence=round(min(1.0, max(0.0, confidence)), 4), scores=scores)


def combine(doc_type: DocType, local: Extraction, vlm_pages: set[int],
            vlm_per_page: list[tuple[list[ExtractedValue], list[LineItem]]]) -> Extraction:
    """``auto``: local values from the pages read locally, VLM values from the VLM pages."""
    per_page: dict[int, tuple[list[ExtractedValue], list[LineItem]]] = {}
    for v in local.values:
        if v.page not in vlm_pages:
            per_page.setdefault(v.page or 0, ([], []))[0].append(v)
    for item in local.line_items:
        if item.page not in vlm_pages:
            per_page.setdefault(item.page or 0, ([], []))[1].append(item)
    for values, items in vlm_per_page:
        page = (values[0].page if values else items[0].page if items else None)
        if page is None:
            continue
        bucket = per_page.setdefault(page, ([], []))
        bucket[0].extend(values)
        bucket[1].extend(items)
    return merge_pages(doc_type, [per_page[p] for p in sorted(per_page)])
