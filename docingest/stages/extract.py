"""Extract (embedded): read typed fields from a document's words, no model, no network.

Label/value reading: a field's value is the first value of the right kind to the right of
one of its labels on the same line, else on the next line. Every value keeps the text as
printed, its normalized form, page, box and a confidence that reflects how it was found
(label on the same line > next line > fallback) times the OCR confidence of its words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from docingest.stages.layout import Line, document_lines
from docingest.stages.normalize import (
    CURRENCY_SYMBOLS,
    clean_address,
    clean_company_name,
    ISO_4217,
    find_amounts,
    find_dates,
    format_amount,
    parse_number,
)
from schemas.fields import DocType
from schemas.records import ExtractedValue, Extraction, LineItem, PageText

SAME_LINE, NEXT_LINE, FALLBACK = 0.92, 0.75, 0.45


@dataclass
class Candidate:
    raw: str
    value: str | None
    line: Line
    start: int
    end: int
    how: float  # SAME_LINE, NEXT_LINE or FALLBACK
    context: str | None = None  # text to ground against when the value spans several lines
    method: str | None = None  # how it was found; calibration keys on it
    label: str = ""  # the label text it was read after, if any

    def to_value(self, name: str, key: str | None = None, scale: float = 1.0) -> ExtractedValue:
        ocr_conf = self.line.confidence(self.start, self.end)
        return ExtractedValue(
            field_name=name, value_raw=self.raw, value=self.value,
            confidence=round(max(0.0, min(1.0, self.how * ocr_conf * scale)), 4),
            page=self.line.page, bbox=self.line.bbox(self.start, self.end),
            grounded=is_grounded(self.raw, self.context or self.line.text), source=self.line.source, key=key,
            method=self.method,
        )


def is_grounded(raw: str, text: str) -> bool:
    """The value as printed occurs in the text (whitespace- and case-insensitive)."""
    needle = re.sub(r"\s+", "", raw).casefold()
    return bool(needle) and needle in re.sub(r"\s+", "", text).casefold()


# -- label tables (English, German, French) ----------------------------------------------------
LABELS = {
    "invoice_number": r"invoice\s*(?:no|number|num|#|nr)\.?|rechnungs?\s*-?\s*(?:nummer|nr)\.?|"
                      r"facture\s*n[°o]?|n[°o]\s*de\s*facture|receipt\s*(?:no|#)\.?|bill\s*(?:no|#)\.?|"
                      r"doc(?:ument)?\s*(?:no|#)\.?|inv\s*(?:no|#)\.?|contract\s*(?:no|number|#|/\s*rev(?:ision)?)\.?|"
                      r"order\s*(?:no|number|#|/\s*rev)\.?:?|belegnummer|\bnr\.",
    "invoice_date": r"invoice\s*date|date\s*of\s*issue|issue\s*date|rechnungsdatum|belegdatum|"
                    r"date\s*de\s*facture|datum|\bdate\b|\bdated\b|\bvom\b|\bdu\b",
    "due_date": r"due\s*date|payment\s*due|pay\s*by|f[äa]llig(?:keit)?|zahlbar\s*bis|[ée]ch[ée]ance",
    "total": r"grand\s*total|total\s*amount|amount\s*due|total\s*due|balance\s*due|"
             r"bruttosumme|gesamtsumme|invoice\s*total|"
             r"total\s*payable|rounded\s*total|total\s*\(?incl|nett?\s*total|total\s*ttc|"
             r"gesamtbetrag|rechnungsbetrag|zu\s*zahlen|zahlbetrag|endbetrag|bruttobetrag|"
             r"gross\s*amount|total\s*gross|\btotal\b|\bsumme\b|\bmontant\b",
    "subtotal": r"sub\s*-?\s*total|total\s*excl|net\s*amount|nettobetrag|summe\s*netto|"
                r"summe\s*ohne\s*(?:ust|mwst)|nettosumme|montant\s*ht|total\s*hors\s*taxes?|"
                r"netto|total\s*ht|\bnet\b|warenwert|total\s*before\s*tax",
    # OCR glues rates to labels ("GST6%"), so a label may be followed by a digit.
    "tax": r"(?<![a-z])(?:total\s*tax|tax\s*amount|steuerbetrag|gst|vat|mwst|ust|umsatzsteuer|mehrwertsteuer|"
           r"tva|tax(?:es)?|steuer)(?![a-z])",
    "customer_name": r"bill\s*to|sold\s*to|invoice\s*to|customer(?:\s*name)?|client|"
                     r"advertiser|buyer|k[äa]ufer|kunde|rechnungsempf[äa]nger|destinataire",
    "vendor_name": r"seller|vendor|supplier|verk[äa]ufer|lieferant|from|vendeur|fournisseur",
}
_LABEL_RE = {k: re.compile(v, re.I) for k, v in LABELS.items()}
_ISSUE_DATE_LABEL = re.compile(
    r"invoice\s*date|date\s*of\s*issue|issue\s*date|rechnungsdatum|beleg\s*-?\s*datum|date\s*de\s*facture|"
    r"date\s*d.[ée]mission", re.I)
_INVOICE_NUMBER_LABEL = re.compile(
    r"invoice\s*(?:no|number|num|#|nr)\.?|rechnungs?\s*-?\s*(?:nummer|nr)\.?|rechnung\s*#|"
    # "Facture FA-2017-0010" is a number; "Date de facture" is not its label.
    r"beleg\s*-?\s*(?:nummer|nr)\.?|(?<!de\s)facture(?:\s*n[°o]\.?)?|"
    r"n[°o]\s*de\s*facture|inv\s*(?:no|#)\.?", re.I)
# Totals that are not the grand total.
_NOT_TOTAL = re.compile(
    r"sub\s*-?\s*total|total\s*(?:qty|quantity|items?|tax|gst|vat|discount|excl|savings|includ)|"
    r"netto|total\s*ht|\bnet\b(?!t)", re.I
)
_NOT_TOTAL_RECEIPT = re.compile(
    r"sub\s*-?\s*total|total\s*(?:qty|quantity|items?|tax|gst|vat|discount|excl|savings|includ)|"
    r"total\s*ht|tax\s*total|gst\s*summary", re.I
)
_ROUNDED_TOTAL = re.compile(r"total[\w\s.()]{0,16}?round\w*|round\w*\s*total", re.I)
# The invoice's gross total, then what is left to pay (after prepayments), then any "total".
_GROSS_TOTAL = re.compile(
    r"grand\s*total|rounded[\w\s]{0,6}total|total[\w\s.]{0,10}rounded|total[\w\s]{0,12}\(?\s*incl|"
    r"total\s*ttc|gross\s*amount|"
    r"total\s*gross|invoice\s*total|total\s*amount|bruttosumme|bruttobetrag|gesamtbetrag|"
    r"gesamtsumme|rechnungsbetrag|endbetrag|montant\s*ttc", re.I
)
_DUE_TOTAL = re.compile(
    r"amount\s*due|total\s*due|balance\s*due|total\s*payable|zu\s*zahlen|zahlbetrag|"
    r"net\s*[àa]\s*payer", re.I
)
_ID_RE = re.compile(r"[A-Z0-9][A-Z0-9/_.-]*\d[A-Z0-9/_.-]*", re.I)


def extract_fields(pages: list[PageText], doc_type: DocType) -> Extraction:
    lines = document_lines(pages)
    if doc_type in (DocType.INVOICE, DocType.RECEIPT):
        return _financial(lines, doc_type)
    if doc_type == DocType.CONTRACT:
        return _contract(lines)
    if doc_type == DocType.FORM:
        return _form(lines)
    return Extraction(doc_type=doc_type)


# -- financial documents -----------------------------------------------------------------------
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](?:\d{4}|\d{2})\b")


def _guess_dayfirst(lines: list[Line]) -> bool:
    # A date that can only be read one way settles it for the whole document ("11/17/2017").
    day_first = month_first = 0
    for line in lines:
        for m in _NUMERIC_DATE.finditer(line.text):
            first, second = int(m.group(1)), int(m.group(2))
            day_first += first > 12 and second <= 12
            month_first += second > 12 and first <= 12
    if day_first != month_first:
        return day_first > month_first
    text = " ".join(l.text for l in lines[:80])
    # US documents write month first; almost everyone else day first.
    return not re.search(r"\$|\bUSD\b|\bUS\b|\bU\.S\.", text)


def _after_label(lines: list[Line], label: re.Pattern[str], finder, exclude=None,
                 columns: bool = False) -> list[Candidate]:
    """Values after a label: on its line, beside it or under it. ``columns``: a label that
    heads a column of a header row takes the cell under it (names and ids; amounts are
    printed beside their labels)."""
    out: list[Candidate] = []
    for i, line in enumerate(lines):
        for m in label.finditer(line.text):
            if exclude is not None and exclude.search(line.text[max(0, m.start() - 6): m.end() + 12]):
                continue
            rest = line.text[m.end():]
            under = _column_under(lines, i, line, m.start(), m.end()) if columns else None
            if under is not None:
                # A column header ("Advertiser   Original Date / Revision"): its value is the
                # cell right under it, not the next header on its row.
                nxt, cs, ce = under
                hits = finder(nxt.text[cs:ce])
                if hits:
                    s, e, value = hits[0]
                    out.append(Candidate(nxt.text[cs + s:cs + e], value, nxt, cs + s, cs + e, NEXT_LINE,
                                         label=m.group(0)))
                    continue
            hits = finder(rest)
            if hits:
                s, e, value = hits[0]
                out.append(Candidate(rest[s:e], value, line, m.end() + s, m.end() + e, SAME_LINE,
                                     label=m.group(0)))
                continue
            if not rest.strip(" :.#-"):
                # A label alone on its line: its value is beside it or under it on the page.
                # Text order is no guide in form-like layouts (the next line in reading order
                # is often the next label), so look at the boxes first.
                neighbours = _neighbours(lines, i, line.bbox(m.start(), m.end()))
                if not neighbours and i + 1 < len(lines) and lines[i + 1].page == line.page:
                    neighbours = [lines[i + 1]]
                for nxt in neighbours:
                    hits = finder(nxt.text)
                    if hits:
                        s, e, value = hits[0]
                        out.append(Candidate(nxt.text[s:e], value, nxt, s, e, NEXT_LINE, label=m.group(0)))
                        break
    return out


def _cells(line: Line) -> list[tuple[int, int]]:
    """Character spans of a line's cells: runs of words with no column gap between them (a
    gap wider than the words are tall)."""
    cells: list[tuple[int, int]] = []
    for k, (w, start) in enumerate(zip(line.words, line.starts)):
        prev = line.words[k - 1] if k else None
        height = max(w.bbox[3] - w.bbox[1], 1e-3)
        if prev is None or w.bbox[0] - prev.bbox[2] > height:
            cells.append((start, start + len(w.text)))
        else:
            cells[-1] = (cells[-1][0], start + len(w.text))
    return cells


def _column_under(lines: list[Line], index: int, line: Line, start: int, end: int):
    """When a label ends its cell and another cell follows on its row (a header row), the cell
    of the next line down that starts under the label: (line, start, end), else None."""
    cells = _cells(line)
    own = next((c for c in cells if c[0] <= start < c[1]), None)
    # "Advertiser: Bernie 2020": a colon introduces the value beside the label.
    if own is None or own[1] > end or own == cells[-1]:
        return None
    box = line.bbox(start, end)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    height = y1 - y0
    for nxt in lines[index + 1: index + 4]:
        if nxt.page != line.page or not nxt.words:
            continue
        top = min(w.bbox[1] for w in nxt.words)
        if not 0 <= top - y1 <= 2.5 * height:
            continue
        for cs, ce in _cells(nxt):
            first = nxt.span_words(cs, cs + 1)[0]
            if x0 - 0.01 <= first.bbox[0] < x1:
                return nxt, cs, ce
    return None


def _neighbours(lines: list[Line], index: int, label_box) -> list[Line]:
    """Lines that hold a label's value: to its right on the same row (nearest first), then
    right under it. Lines that are themselves labels ("Invoice #", "Date:") are skipped."""
    if label_box is None:
        return []
    x0, y0, x1, y1 = label_box
    height = max(y1 - y0, 1e-3)
    page = lines[index].page
    right, below = [], []
    for j, other in enumerate(lines):
        if j == index or other.page != page or not other.words:
            continue
        ox0, oy0, ox1, oy1 = other.bbox(0, len(other.text))
        if other.text.rstrip().endswith((":", "#")):
            continue
        overlap = min(y1, oy1) - max(y0, oy0)
        if overlap >= 0.5 * min(height, oy1 - oy0) and ox0 >= x1 - 0.002 and ox0 - x1 < 0.45:
            right.append((ox0 - x1, other))
        elif 0 <= oy0 - y1 <= 2.5 * height and ox0 < x1 + 0.05 and ox1 > x0:
            below.append((oy0 - y1, other))
    return [l for _, l in sorted(right, key=lambda t: t[0])[:1] + sorted(below, key=lambda t: t[0])[:1]]


def _amount_finder(text: str):
    # "Tax 8% 25.34": the rate is not the amount.
    # "SIRET : 99999999800010": eight digits and more without separators are an id.
    return [(s, e, format_amount(v)) for s, e, v in find_amounts(text)
            if not re.match(r"\s?%", text[e:e + 2]) and not re.match(r"[./-]\d{2,4}\b", text[e:e + 5])
            and not re.fullmatch(r"\d{8,}", text[s:e])]


_CURRENCY_BEFORE = re.compile(r"(?:([$€£¥])|\b(RM)|\b([A-Z]{3}))\s?$")


def _currency_marked(text: str, start: int) -> bool:
    m = _CURRENCY_BEFORE.search(text[max(0, start - 4): start])
    return bool(m) and (m.group(3) is None or m.group(3) in ISO_4217)


def _total_finder(text: str):
    """The amount a total label points at: the first one marked with a currency ("Total
    EUR 119.00 (incl. VAT 19.00)"), else the largest one with decimals ("TOTAL ROUNDED ?3-10
    33.90", "Total: 80.91 0.00")."""
    hits = _amount_finder(text)
    marked = [h for h in hits if _currency_marked(text, h[0])]
    if marked:
        return marked[:1]
    decimal = [h for h in hits if re.search(r"[.,]\d{2}$", text[h[0]:h[1]])]
    if decimal:
        # "Total: 80.91 0.00" (amount and tax columns): the total is the larger.
        return [max(decimal, key=lambda h: Decimal(h[2]))]
    return hits[:1]


def _date_finder(dayfirst: bool):
    def find(text: str):
        return [(s, e, d.isoformat()) for s, e, d in find_dates(text, dayfirst) if _plausible(d)]
    return find


def _plausible(d: date) -> bool:
    return 1990 <= d.year <= 2100


def _id_finder(text: str):
    text_stripped = text.lstrip(" :.#-")
    offset = len(text) - len(text_stripped)
    m = _ID_RE.match(text_stripped)
    if not m:
        return []
    return [(offset + m.start(), offset + m.end(), m.group(0))]


def _name_finder(text: str):
    stripped = text.strip(" :.-")
    if len(stripped) < 2 or not re.search(r"[A-Za-z]{2}", stripped):
        return []
    start = text.index(stripped)
    return [(start, start + len(stripped), stripped)]


def _financial(lines: list[Line], doc_type: DocType) -> Extraction:
    values: list[ExtractedValue] = []
    dayfirst = _guess_dayfirst(lines)
    find_date = _date_finder(dayfirst)

    def best(cands: list[Candidate]) -> Candidate | None:
        return max(cands, key=lambda c: c.how) if cands else None

    # Amounts: grand total first (prefer explicit "grand total"-style labels, then the last
    # "total" on the document, which is where totals are printed).
    receipt = doc_type == DocType.RECEIPT
    # On a till receipt "Net Total" is what was paid; on an invoice it is the amount before tax.
    totals = _after_label(lines, _LABEL_RE["total"], _total_finder,
                          exclude=_NOT_TOTAL_RECEIPT if receipt else _NOT_TOTAL)
    rounded = _after_label(lines, _ROUNDED_TOTAL, _total_finder)
    gross = [c for c in totals if _GROSS_TOTAL.search(c.line.text)]
    due = [c for c in totals if _DUE_TOTAL.search(c.line.text)]
    if rounded:
        total = rounded[-1]  # the rounded total is the last word on what was paid
    elif gross or due:
        total = (gross or due)[-1]
    elif totals and receipt:
        # A receipt's tax summary repeats "TOTAL: 16.98 1.02" below the real "TOTAL 18.00".
        total = max(totals, key=lambda c: Decimal(c.value))
    else:
        total = totals[-1] if totals else None
    if total is None:
        total = _largest_amount(lines)
    subtotal = best(_after_label(lines, _LABEL_RE["subtotal"], _amount_finder))
    tax = _tax(lines, subtotal, total)
    total = _reconcile_total(lines, total, subtotal, tax)

    if total is not None and subtotal is not None and tax is not None:
        consistent = abs(Decimal(subtotal.value) + Decimal(tax.value) - Decimal(total.value)) <= Decimal("0.02")
        for cand in (total, subtotal, tax):
            cand.how = min(1.0, cand.how + 0.08) if consistent else cand.how * 0.8
    for name, cand in (("total", total), ("subtotal", subtotal), ("tax", tax)):
        if cand is not None:
            values.append(cand.to_value(name))

    # Dates.
    due = best(_after_label(lines, _LABEL_RE["due_date"], find_date))
    issued_cands = [
        c for c in _after_label(lines, _LABEL_RE["invoice_date"], find_date)
        if not _LABEL_RE["due_date"].search(c.line.text)
    ]
    # An explicit issue-date label first, then a date on the invoice-number line ("Rechnung
    # Nr. 280081 vom 13.07.2018"), then the first generic "Date:" / "vom".
    explicit = [c for c in issued_cands if _ISSUE_DATE_LABEL.search(c.line.text)]
    # "Handelsrechnung Nr. 471102 vom 05.03.2018", not "gemäß Bestellung Nr. 2018-1 vom 01.03.2018".
    on_number_line = [c for c in issued_cands if (_INVOICE_NUMBER_LABEL.search(c.line.text)
                      or re.search(r"(?i)(rechnung|invoice|facture)\b", c.line.text))
                      and not _ORDER_WORD.search(c.line.text)]
    issued = None
    for group, method in ((explicit, "issue_label"), (on_number_line, "number_line"),
                          (_dated_number_line(lines, find_date), "number_line"), (issued_cands, "date_label")):
        if group:
            issued, issued.method = group[0], method
            break
    if issued is None:
        issued = _first_date(lines, find_date, exclude=due)
        if issued is not None:
            issued.method = "first_date"
    if issued is not None:
        values.append(issued.to_value("invoice_date"))
    if due is not None:
        values.append(due.to_value("due_date"))
    period = _period(lines, dayfirst)
    if period:
        values.extend(period)

    # The invoice's own number before any other number the document carries (order, contract).
    number = best(_after_label(lines, _INVOICE_NUMBER_LABEL, _id_finder, columns=True))
    if number is not None:
        number.method = "invoice_label"
    else:
        found = _after_label(lines, _LABEL_RE["invoice_number"], _id_finder, columns=True)
        # A contract number names the deal an order or invoice belongs to; an order number
        # beside it is the buyer's or the station's reference, so the contract number wins.
        contract = [c for c in found if re.match(r"(?i)contract", c.label.strip())]
        number = best(contract or found)
        if number is not None:
            # An order or contract number stands in for the invoice's own number; how often it
            # is the one wanted differs from a bare "Nr.", so calibration tells them apart.
            kind = re.match(r"(?i)(order|contract)", number.label.strip())
            number.method = f"{kind.group(1).lower()}_label" if kind else "generic_label"
    if number is not None:
        values.append(number.to_value("invoice_number"))

    currency = _currency(lines)
    if currency is not None:
        values.append(currency.to_value("currency"))

    # A customer label must introduce a value ("Bill to:", a label opening its line), not be
    # part of a phrase ("Customer Service Hotline").
    buyer = _party_block(lines, _BUYER_BLOCK)
    customer = buyer[0] if buyer else best(
        [c for c in _after_label(lines, _LABEL_RE["customer_name"], _name_finder, columns=True)
         if (c.how != SAME_LINE or _introduces_value(c)) and not _FORM_LABEL.match(c.raw.strip())
         # Another label ("Agency: ...", "Original Date / Revision") or a contact line is no name.
         and not _NAME_STOP.search(c.raw) and not re.match(r"[\w/ -]{1,25}:", c.raw.strip())])
    if customer is not None and not buyer:
        customer.method = "label"
    if customer is None:
        customer = _recipient(lines)
    if customer is not None:
        values.append(customer.to_value("customer_name", scale=0.8))

    vendor = _vendor(lines)
    if vendor is not None:
        name, address = vendor
        name.value = clean_company_name(name.value)
        values.append(name.to_value("vendor_name"))
        if address is not None:
            values.append(address.to_value("vendor_address"))

    items = _line_items(lines)
    credit_note = any(_CREDIT_NOTE.search(line.text) for line in lines[:40])
    return Extraction(doc_type=doc_type, values=values, line_items=items, credit_note=credit_note)


# A title near the top that names the document a credit note.
_CREDIT_NOTE = re.compile(r"(?i)\b(credit\s*note|credit\s*memo|gutschrift|avoir|nota\s+de\s+cr[eé]dito)\b")


_ORDER_WORD = re.compile(r"(?i)bestellung|auftrag|\border\b|commande|lieferschein|delivery\s*note")


# A title with its number: "Gutschrift (Selbst ausgestellte Rechnung) Nr. 471102 vom".
_TITLE_NUMBER = re.compile(r"(?i)\b(?:rechnung|gutschrift|invoice|facture)\b[^\d]{0,30}?\bnr\.?")


def _dated_number_line(lines: list[Line], find_date) -> list[Candidate]:
    """The date printed with the invoice's number: "Rechnung # RE-2017/505 von 09.05.2017",
    or on the next line when the number line ends with "vom" / "du" / "dated"."""
    for line in lines[:80]:
        m = _INVOICE_NUMBER_LABEL.search(line.text) or _TITLE_NUMBER.search(line.text)
        if not m or _ORDER_WORD.search(line.text[: m.start()]):
            continue
        rest = line.text[m.end():]
        hits = find_date(rest)
        if hits:
            s, e, value = hits[0]
            return [Candidate(rest[s:e], value, line, m.end() + s, m.end() + e, SAME_LINE)]
        if re.search(r"(?i)\b(vom|von|du|dated|of)\s*$", line.text) and line.index + 1 < len(lines):
            nxt = lines[line.index + 1]  # a line's index is its position in ``lines``
            hits = find_date(nxt.text) if nxt.page == line.page else []
            if hits and hits[0][0] == 0:
                # The sentence wrapped after "vom": the date is bound to the number as firmly
                # as on one line.
                s, e, value = hits[0]
                return [Candidate(nxt.text[s:e], value, nxt, s, e, SAME_LINE)]
    return []


def _introduces_value(c: Candidate) -> bool:
    before = c.line.text[: c.start]
    return ":" in before[-4:] or bool(re.search(r"\b(bill|sold|invoice|ship)\s*to\s*$", before, re.I))


_WITHOUT_TAX = re.compile(r"ohne|excl|exkl|before|hors|netto|\bnet\b|basis|grundbetrag|warenwert", re.I)
# "Total Incl. GST 23.26" is a total that names the tax it includes, not the tax.
_INCLUDING_TAX = re.compile(r"\bincl|\binkl|inclusive|inchusive|\binc\.?\s*(?:gst|tax|vat)", re.I)


def _tax(lines: list[Line], subtotal: Candidate | None, total: Candidate | None) -> Candidate | None:
    cands = _after_label(lines, _LABEL_RE["tax"], _amount_finder)
    # A tax label followed by "6%" then an amount: the finder skips percentages already.
    cands = [c for c in cands if not re.search(r"(?i)reg|no\b|nr\b|id\b|number", c.line.text[: c.start])
             and not _WITHOUT_TAX.search(c.line.text) and not _INCLUDING_TAX.search(c.line.text)]
    if subtotal is not None and total is not None:
        # Charges and discounts print their own tax rate ("Versandkosten 7 % USt 5,80"): the
        # tax that adds the subtotal up to the total is the document's.
        gap = Decimal(total.value) - Decimal(subtotal.value)
        cands = [c for c in cands if abs(Decimal(c.value) - gap) <= Decimal("0.02")] or cands
    if not cands:
        return None
    return max(cands, key=lambda c: (c.how, c.line.index))


# What the customer handed over and got back: paid - change is what the receipt totals.
# OCR glues labels to numbers ("CASH20.00"), so no word boundary after the label.
_PAYMENT = re.compile(r"(?i)(?<![a-z])(cash(?!\s*change)|amount\s*paid|paid\s*amount|tender(?:ed)?|payment)(?![a-z])")
_CHANGE = re.compile(r"(?i)(?<![a-z])(change(?:\s*due)?|cash\s*change|balance\s*due)(?![a-z])")
_TOTAL_WORD = re.compile(r"(?i)total|otal\b|payable|amount|rounding|jumlah|summe|montant")
_ROUNDING = re.compile(r"(?i)round")
_CENT, _ROUNDING_STEP = Decimal("0.01"), Decimal("0.05")


def _reconcile_total(lines: list[Line], total: Candidate | None, subtotal: Candidate | None,
                     tax: Candidate | None) -> Candidate | None:
    """Check the chosen total against the document's own arithmetic: paid − change and
    subtotal + tax. A total that agrees gains confidence; one that disagrees is replaced by a
    printed amount that agrees (totals lines first), or by its own digits read with the decimal
    point OCR dropped ("TOTAL 700" for 7.00)."""
    evidence: list[tuple[Decimal, bool]] = []  # (amount, from payment)
    payment, change = _till_amount(lines, _PAYMENT), _till_amount(lines, _CHANGE)
    if payment is not None and change is not None:
        # Tills print "Cash -50.00": the sign is layout, not a refund.
        paid = abs(Decimal(payment.value)) - abs(Decimal(change.value))
        if paid > 0:
            evidence.append((paid, True))
    elif payment is not None and Decimal(payment.value) > 0:
        # Cash without a change line: counts only where a totals line prints the same amount.
        evidence.append((Decimal(payment.value), False))
    # Without a tax, "subtotal" is often a net total after commission, not the amount billed.
    if subtotal is not None and tax is not None and Decimal(tax.value) > 0:
        evidence.append((Decimal(subtotal.value) + Decimal(tax.value), False))
    if total is not None:
        rounded = _rounded_total(lines, total, evidence)
        if rounded is not None:
            return rounded
    if not evidence:
        return total
    # Payments are exact; a tax line may be rounded by a cent.
    if total is not None and any(abs(Decimal(total.value) - e) <= (0 if p else _CENT) for e, p in evidence):
        total.how = min(1.0, total.how + 0.06)
        return total
    for e, from_payment in evidence:
        printed = [
            Candidate(line.text[s:end], format_amount(v), line, s, end, SAME_LINE)
            for line in lines for s, end, v in find_amounts(line.text)
            if abs(v) == e and ("." in line.text[s:end] or "," in line.text[s:end])
        ]
        not_payment = [c for c in printed if not _PAYMENT.search(c.line.text) and not _CHANGE.search(c.line.text)]
        on_total_lines = [c for c in not_payment if _TOTAL_WORD.search(c.line.text)]
        if on_total_lines or (from_payment and not_payment):
            return (on_total_lines or not_payment)[-1]  # totals are printed at the bottom
        if from_payment and printed and total is not None and abs(Decimal(total.value) - e) < _ROUNDING_STEP \
                and any(_ROUNDING.search(line.text) for line in lines):
            # Cash rounding: what was paid is the rounded total.
            rounded = printed[-1]
            rounded.value, rounded.how = format_amount(e), NEXT_LINE
            return rounded
        if total is not None and Decimal(total.value) == e * 100 and not re.search(r"[.,]", total.raw):
            total.value, total.how = format_amount(e), NEXT_LINE
            return total
    return total


def _till_amount(lines: list[Line], label: re.Pattern[str]) -> Candidate | None:
    """The first amount with cents after the label: "Cashier: cash3" is a name, not a payment."""
    return next((c for c in _after_label(lines, label, _amount_finder) if re.search(r"[.,]\d\d$", c.raw)), None)


_ROUNDING_ADJ = re.compile(r"(?i)round\w*\s*(?:adj\w*|amount|amt)?")


def _rounded_total(lines: list[Line], total: Candidate, evidence: list[tuple[Decimal, bool]]) -> Candidate | None:
    """Tills round cash totals to 5 sen and print the adjustment. What was paid is the chosen
    total plus the printed adjustment, or paid − change when that differs from the chosen
    total by less than one rounding step; it counts only where it is printed on a total or
    payment line at or below the chosen total."""
    if not any(_ROUNDING.search(line.text) for line in lines):
        return None
    chosen = Decimal(total.value)
    targets = [chosen + Decimal(adj.value) for adj in _after_label(lines, _ROUNDING_ADJ, _amount_finder)
               if 0 < abs(Decimal(adj.value)) < _ROUNDING_STEP]
    targets += [e for e, from_payment in evidence if from_payment and 0 < abs(e - chosen) < _ROUNDING_STEP]
    below = lines[total.line.index:]
    for target in targets:
        printed = [
            Candidate(line.text[s:end], format_amount(v), line, s, end, SAME_LINE)
            for line in below for s, end, v in find_amounts(line.text)
            if v == target and re.search(r"[.,]", line.text[s:end])
            and (_TOTAL_WORD.search(line.text) or _PAYMENT.search(line.text))
        ]
        on_total_lines = [c for c in printed if _TOTAL_WORD.search(c.line.text)]
        if printed:
            return (on_total_lines or printed)[-1]
    return None


def _largest_amount(lines: list[Line]) -> Candidate | None:
    best: Candidate | None = None
    best_value = Decimal(-1)
    for line in lines:
        for s, e, v in find_amounts(line.text):
            if "." in line.text[s:e] or "," in line.text[s:e]:
                if v > best_value:
                    best_value = v
                    best = Candidate(line.text[s:e], format_amount(v), line, s, e, FALLBACK)
    return best


def _first_date(lines: list[Line], finder, exclude: Candidate | None) -> Candidate | None:
    for line in lines:
        for s, e, value in finder(line.text):
            if exclude is not None and exclude.line is line and exclude.start == s:
                continue
            return Candidate(line.text[s:e], value, line, s, e, FALLBACK + 0.15)
    return None


# The service / flight period first (what was bought), then a billing period, then "from".
_PERIOD_LABELS = [
    re.compile(r"flight\s*dates?|order\s*\.?\s*flight|\bflight\b|leistungszeitraum|service\s*(dates?|period)|"
               r"p[ée]riode\s*de\s*(prestation|service)", re.I),
    re.compile(r"period|abrechnungszeitraum|billing\s*dates?", re.I),
    re.compile(r"\bfrom\b", re.I),
]


def _period(lines: list[Line], dayfirst: bool) -> list[ExtractedValue]:
    for label, kind in zip(_PERIOD_LABELS, ("service_label", "period_label", "from_label")):
        for i, line in enumerate(lines):
            m = label.search(line.text)
            if not m:
                continue
            # The range after the label on its line ("Flight Dates 01/28/20 - 02/03/20"), else
            # on the line beside or under a label that stands alone.
            places = [(line, m.end())]
            if not find_dates(line.text[m.end():], dayfirst):
                places += [(n, 0) for n in _neighbours(lines, i, line.bbox(m.start(), m.end()))]
            for where, offset in places:
                dates = [(s + offset, e + offset, d) for s, e, d in find_dates(where.text[offset:], dayfirst)
                         if _plausible(d)]
                if len(dates) >= 2 and dates[0][2] <= dates[1][2]:
                    (s1, e1, d1), (s2, e2, d2) = dates[:2]
                    # Beside the label on its line, or in a neighbouring box of a form layout.
                    method = kind if where is line else f"{kind}_beside"
                    return [
                        Candidate(where.text[s1:e1], d1.isoformat(), where, s1, e1, NEXT_LINE,
                                  method=method).to_value("period_start"),
                        Candidate(where.text[s2:e2], d2.isoformat(), where, s2, e2, NEXT_LINE,
                                  method=method).to_value("period_end"),
                    ]
    return []


_CURRENCY_LABEL = r"(?i:currency|w[äa]hrung|devise)"


def _currency(lines: list[Line]) -> Candidate | None:
    counts: dict[str, list[Candidate]] = {}
    # A three-letter code counts only beside an amount or a currency label: "SDN BHD" is a
    # company suffix, not Bahraini dinars.
    code_re = re.compile(
        rf"(?:(?<=\d)\s?|{_CURRENCY_LABEL}\s*:?\s*)([A-Z]{{3}})(?![A-Za-z])|"
        r"(?<![A-Za-z])([A-Z]{3})(?=\s?-?\d)"
    )
    sym_re = re.compile(r"(€|£|\$|¥|₹|\bRM(?=\s?\d))")
    labelled: Candidate | None = None
    for line in lines:
        for m in code_re.finditer(line.text):
            group = 1 if m[1] else 2
            if m[group] in ISO_4217:
                cand = Candidate(m[group], m[group], line, m.start(group), m.end(group), SAME_LINE)
                counts.setdefault(m[group], []).append(cand)
                if labelled is None and re.search(_CURRENCY_LABEL, line.text[:m.start(group)]):
                    labelled = cand
        for m in sym_re.finditer(line.text):
            code = CURRENCY_SYMBOLS.get(m[1])
            if code:
                counts.setdefault(code, []).append(
                    Candidate(m[1], code, line, m.start(1), m.end(1), NEXT_LINE))
    if labelled is not None:
        # "Rechnungswährung: GBP" names the invoice's currency even when other currencies are
        # printed (a conversion note, a foreign bank account).
        labelled.method = "currency_label"
        return labelled
    if not counts:
        return None
    code = max(counts, key=lambda c: len(counts[c]))
    cand = counts[code][0]
    if len(counts) > 1:
        cand.how *= 0.7  # two currencies on one document: less sure which one is the invoice's
    return cand


_NOISE_LINE = re.compile(
    r"^(tax\s*invoice|invoice|receipt|rechnung|facture|official\s*receipt|cash\s*(sale|bill)|"
    r"welcome|copy|original|page\s*\d|seite\s*\d|bill|simplified)\b", re.I
)
_ADDRESS_STOP = re.compile(
    r"\b(tel|phone|fax|gst|vat|reg|e-?mail|www\.|http|invoice|receipt|date|no\.?\s*:|ust|"
    r"number|bill\s*to|kunde|document|terminal|cashier)\b|rechnung|facture|nummer|"
    # OCR glues labels to numbers: "TEL07-3523888", "GSTID:000849813504"; bare phone numbers
    # ("03-41318972", "+603-91302672").
    r"\btel(?=[\s.:\d])|gst\s*id|\b0\d{1,2}-\s?\d{6,8}\b|\+\d{2,3}[\s-]?\d{1,2}[\s-]?\d{6,8}\b|"
    r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", re.I
)
# A document title printed on the same row as the issuer's name ("ACME LTD      INVOICE").
_TITLE_TAIL = re.compile(r"\s+(tax\s+invoice|invoice|rechnung|facture|receipt)\b.*$", re.I)
_NAME_STOP = re.compile(r"\b(tel|phone|fax|e-?mail|www\.|http|date|datum)\b|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|"
                        r"\.com\b|thank|shopping", re.I)
# Contact and tax lines end a letterhead: a company named below them is not the issuer.
_LETTERHEAD_END = re.compile(r"(?i)\b(tel|phone|fax|h/?p)\b|\btel(?=[\s.:\d])|gst\s*(?:no|id|reg)")


_VENDOR_LABEL_AT_START = re.compile(
    r"^\s*(seller|vendor|supplier|verk[äa]ufer|lieferant|from|vendeur|fournisseur)\s*:?\s*$", re.I)
# Long suffixes may be glued to the name by OCR ("YONGFATTENTERPRISE"); short ones need a
# word boundary ("AG" is in "PAGE").
_COMPANY_SUFFIX = re.compile(
    r"(sdn\.?\s*bhd|enterprise|trading|hardware|restaurant|restoran|limited|gmbh)\b|"
    r"\b(bhd|[s5]/b|pte\.?\s*ltd|ltd|llc|l\.l\.c|inc|corp(oration)?|ag|kg|se|plc|llp|sarl|"
    r"s\.a\.r\.l|sas|s\.a\.|b\.v|n\.v)\b\.?|"
    # OCR glues the registration number to "S/B" and reads S as 5: "MART 5/B0519537-X)".
    r"\b[s5]/b(?=[\d(])", re.I)
# "(CO. REG: 933109-X)", "Co-REG:860671-D", "CompanyReg.No.:001055194x", "Conpany No:20965-W" (OCR).
_REGISTRATION = re.compile(
    r"^\s*\(?\s*(c[o0][.-]?\s*reg|c[o0][mn]pany\s*(reg\.?\s*)?n[o0]|reg\.?\s*n[o0]|\d{3,}-[A-Z])", re.I)


_SELLER_BLOCK = re.compile(
    r"^(ver\s?k[äa]ufer|seller|supplier|lieferant|vendor|vendeur|fournisseur|rechnungs?e?rsteller|"
    r"leistungserbringer)(\s*/\s*[\w-]+)?\s*:?$", re.I)
_BUYER_BLOCK = re.compile(
    r"^(k[äa]ufer|buyer|bill\s*to|sold\s*to|invoice\s*to|rechnungsempf[äa]nger|kunde|customer|"
    r"acheteur|client|leistungsempf[äa]nger)(\s*/\s*[\w-]+)?\s*:?$", re.I)
_BLOCK_SKIP = re.compile(r"^(name\s*:?$|(globale\s*)?nummer\b|number\b|kunden-?nr|customer\s*(no|id)|id\s*:|gln\b)", re.I)
_ADDRESS_START = re.compile(
    r"^anschrift\s*:|^address\s*:|^adresse\s*:|"
    r"\b[\w.-]*(str\.|straße|strasse|street|road|weg|allee|platz|gasse|avenue|ave\.|rue|chemin)\s*\d|"
    r"^\d+[a-z]?\s+\w+.*\b(street|st|road|rd|avenue|ave|blvd|lane|ln|drive|dr|way)\b\.?|"
    r"^([A-Z]{2}[\s-]?)?\d{4,5}\s+\w+|^(postfach|p\.?o\.?\s*box)\b", re.I)
# A column of form labels under a role word ("Buyer / Salesperson / Product / Brand") is a label
# column whose values are printed elsewhere, not a party: a label is never a name.
_FORM_LABEL = re.compile(
    r"^(salesperson|product|brand|agency|advertiser|estimate(/hl)?|comments?|contract|terms|period|"
    r"acct\s*types?|bill\s*type|co-?op|special\s*handling|demo|revision|[\w/ -]{1,25}:)\s*:?$", re.I)
_BLOCK_END = re.compile(r"\b(ust|vat|tel|telefon|fon|mobil|phone|fax|e-?mail|www\.|iban|bic|tax\s*id)\b|steuer", re.I)


def _party_block(lines: list[Line], header: re.Pattern[str]) -> tuple[Candidate, Candidate | None] | None:
    """A party printed as a block under its role ("Verkäufer", "Bill to:"): the name is the
    lines up to the first address line, the address the lines after it up to a tax id, phone
    or the next block."""
    for i, line in enumerate(lines[:200]):
        if not header.match(line.text.strip()):
            continue
        body = []
        for nxt in lines[i + 1: i + 12]:
            text = nxt.text.strip()
            if nxt.page != line.page or _SELLER_BLOCK.match(text) or _BUYER_BLOCK.match(text):
                break
            if _BLOCK_SKIP.match(text):
                continue
            body.append(nxt)
        name_lines: list[Line] = []
        address_lines: list[Line] = []
        for nxt in body:
            if _BLOCK_END.search(nxt.text):
                break
            if address_lines or (name_lines and _ADDRESS_START.search(nxt.text)):
                address_lines.append(nxt)
                if len(address_lines) == 4:
                    break
            elif re.match(r"^\s*\w[\w\s.-]{1,30}:\s*\S", nxt.text) and not re.match(r"(?i)^\s*name\s*:", nxt.text):
                # "Ansprechpartner: Max Mustermann" follows the name and is not part of it; the
                # address may still follow ("Anschrift: ...").
                continue
            elif name_lines and _COMPANY_SUFFIX.search(name_lines[-1].text):
                continue  # "Taxi-Gast AG" / "Hans Mustermann": a contact person under the company
            elif len(name_lines) < 3:
                name_lines.append(nxt)
            else:
                break
        if not name_lines or _FORM_LABEL.match(name_lines[0].text.strip()):
            continue
        name_text = " ".join(re.sub(r"^name\s*:\s*", "", l.text, flags=re.I) for l in name_lines).strip()
        name = Candidate(name_text, name_text, name_lines[0], 0, len(name_lines[0].text), SAME_LINE,
                         context=" ".join(l.text for l in name_lines), method="party_block")
        address = None
        if address_lines:
            joined = " ".join(re.sub(r"^(anschrift|address|adresse)\s*:\s*", "", l.text, flags=re.I)
                              for l in address_lines).strip()
            address = Candidate(joined, joined, address_lines[0], 0, len(address_lines[0].text),
                                NEXT_LINE, context=" ".join(l.text for l in address_lines), method="party_block")
        return name, address
    return None


# A registration number printed after the name: "99 SPEED MART S/B (519537-X)".
_REG_TAIL = re.compile(r"[\s(]*\(?\s*\d{4,}\s*[-·.]?\s*[A-Z]\s*\)?\s*$")


_SENDER_LINE = re.compile(r"^(.{3,60}?)(?:\s*[●•·|]\s*|\s+[-–]\s+)\S")


def _sender_line(page_lines: list[Line]) -> Candidate | None:
    """The return-address line of a letter: "Bei Spiel GmbH ● Ecke 12 ● 12345 Stadthausen"."""
    for line in page_lines:
        m = _SENDER_LINE.match(line.text)
        if m and _COMPANY_SUFFIX.search(m.group(1)):
            return Candidate(m.group(1).strip(), m.group(1).strip(), line, 0, m.end(1), NEXT_LINE,
                             method="sender_line")
    return None


def _recipient(lines: list[Line]) -> Candidate | None:
    """A letter's window envelope: the recipient's name is the line under the return-address
    line ("Bei Spiel GmbH ● Ecke 12 ● 12345 Stadthausen" / "Theodor Est")."""
    first_page = [l for l in lines if l.page == lines[0].page] if lines else []
    sender = _sender_line(first_page)
    if sender is None:
        return None
    if sender.line.index + 1 >= len(first_page):
        return None
    after = first_page[sender.line.index + 1]  # the first page's lines start the document
    # The seller's own name again is its letterhead, not a recipient.
    if _name_like(after.text) and sender.raw not in after.text:
        text = after.text.strip()
        return Candidate(text, text, after, 0, len(after.text), NEXT_LINE, method="recipient")
    return None


def _sender_address(sender: Candidate) -> Candidate | None:
    """The rest of the return-address line: "● Ecke 12 ● 12345 Stadthausen"."""
    parts = [p.strip() for p in re.split(r"\s*[●•·|]\s*|\s+[-–]\s+", sender.line.text[sender.end:]) if p.strip()]
    # A country may follow the town ("● 12345 Stadthausen ● Germany").
    if not parts or not _ADDRESS_START.search(" ".join(parts)) and not any(
            re.search(r"\d{4,5}\s+\w", p) for p in parts[-2:]):
        return None
    start = sender.line.text.index(parts[0], sender.end)
    printed = sender.line.text[start:].strip()
    return Candidate(printed, clean_address(", ".join(parts)), sender.line, start, len(sender.line.text), NEXT_LINE,
                     context=sender.line.text, method="sender_line")


def _name_like(text: str) -> bool:
    text = text.strip()
    return (len(text) >= 3 and not re.search(r"\d", text) and not text.islower()
            and not _NOISE_LINE.match(text) and not _NAME_STOP.search(text))


def _vendor(lines: list[Line]) -> tuple[Candidate, Candidate | None] | None:
    """The issuer: a seller block, a labelled seller name, else a company line at the top."""
    block = _party_block(lines, _SELLER_BLOCK)
    if block is not None:
        return block
    # Only a label that opens its line ("Seller: ACME"): "download from GooglePlay" is no vendor.
    labelled = [c for c in _after_label(lines, _LABEL_RE["vendor_name"], _name_finder)
                if _VENDOR_LABEL_AT_START.match(c.line.text[: c.start] if c.how == SAME_LINE
                                                else lines[c.line.index - 1].text)]
    if labelled:
        c = labelled[0]
        c.how, c.method = min(c.how, 0.7), "label"
        return c, None
    first_page = [l for l in lines if l.page == lines[0].page] if lines else []
    head = first_page[:10]
    letterhead_end = next((i for i, l in enumerate(head) if i > 0 and _LETTERHEAD_END.search(l.text)), len(head))
    # A line that names a company ("... SDN BHD", "... GmbH", "... Ltd") is the issuer more
    # often than whatever happens to be printed (or handwritten) above it.
    suffixed = [i for i, l in enumerate(head[:letterhead_end]) if _COMPANY_SUFFIX.search(l.text)
                and not _NAME_STOP.search(l.text) and not _LABEL_RE["customer_name"].search(l.text)
                and not _REGISTRATION.search(l.text) and not re.search(r"(?i)reg\.?\s*n[o0]", l.text)]
    sender = _sender_line(first_page)
    if sender is not None and (not suffixed or head[suffixed[0]] is sender.line):
        return sender, _sender_address(sender)
    order = suffixed[:1] + [i for i in range(min(8, len(head))) if i not in suffixed[:1]]
    for i in order:
        line = head[i]
        text = _TITLE_TAIL.sub("", line.text).strip()
        if len(text) < 3 or _NOISE_LINE.match(text) or not re.search(r"[A-Za-z]{3}", text):
            continue
        if text.islower():
            continue  # a handwritten note or a stamp, not a printed letterhead
        if _NAME_STOP.search(text) or find_amounts(text) and not re.search(r"[A-Za-z]{4}", text):
            continue
        how = NEXT_LINE if i in suffixed[:1] else FALLBACK + 0.15
        context = None
        text = _REG_TAIL.sub("", text).strip() or text
        suffix = _COMPANY_SUFFIX.search(text)
        # "CO. (M)" before "SDN BHD" is part of the suffix, not of the name.
        name_words = [w for w in text[: suffix.start()].split()
                      if not re.fullmatch(r"(?i)co\.?|\(\w\)|&", w)] if suffix else []
        if (i in suffixed[:1] and i > 0 and suffix is not None
                and sum(len(re.sub(r"\W", "", w)) for w in name_words) < 8 and _name_like(head[i - 1].text)):
            # "PASARAYA BORONG PINTAR" / "SDN BHD": the name started on the line above. Eight
            # letters before the suffix are a whole name ("TasteOfTheWorldSdnBhd" under a brand).
            text = f"{head[i - 1].text.strip()} {text}"
            context = text
            line = head[i - 1]
        if re.search(r"(&|\band)$", text, re.I) and i + 1 < len(head):
            # "HOME MASTER HARDWARE &" / "ELECTRICAL": the name goes on.
            text = f"{text} {head[i + 1].text.strip()}"
            context = text
            i += 1
        elif (i + 2 < len(head) and _name_like(head[i + 1].text)
              and head[i + 1].text.isupper() and _REGISTRATION.match(head[i + 2].text)):
            # "RESTAURANT JIAWEI" / "JIAWEI HOUSE" / "002693074-K": the registration number
            # closes the name, so the line above it is still the name.
            text = f"{text} {head[i + 1].text.strip()}"
            context = text
            i += 1
        method = "letterhead_company" if i in suffixed[:1] else "letterhead_top"
        name = Candidate(text, text, line, 0, len(line.text), how, context=context, method=method)
        address_lines = []
        for nxt in first_page[i + 1: i + 7]:
            if (_REGISTRATION.match(nxt.text) or clean_address(nxt.text) is None) and not address_lines:
                continue  # "(CO. REG: 933109-X)" under the name belongs to it, not the address
            if _ADDRESS_STOP.search(nxt.text) or _NOISE_LINE.match(nxt.text):
                break
            address_lines.append(nxt)
        address = None
        if address_lines:
            joined = " ".join(l.text for l in address_lines)
            address = Candidate(joined, clean_address(joined), address_lines[0], 0,
                                len(address_lines[0].text), FALLBACK, context=joined, method=method)
        return name, address
    return None


_ITEM_HEADER = re.compile(r"\b(description|item|article|artikel|bezeichnung|qty|quantity|menge|désignation)\b", re.I)


# Where an item table ends: its totals, or the tax breakdown printed under it.
_ITEM_TABLE_END = re.compile(
    r"(?i)\b(sub\s*-?total|total|summe|gesamt|netto|tax|vat|gst|mwst|ust)\b|umsatzsteuer|steueraufschl")
# Words printed between an item's numbers: units ("20 Stk", "3 Std", "2 x") and currencies.
_ITEM_UNIT = re.compile(
    r"(?i)^(x|stk\.?|st\.?|stück|std\.?|h|hrs?|pcs?\.?|pce|ea|each|units?|kg|g|l|m|m2|m²|"
    r"[$€£]|eur|usd|gbp|rm|myr)$")


def _line_items(lines: list[Line]) -> list[LineItem]:
    """Rows after an item header: a description, then numbers of which two multiply to the
    row's amount (quantity x unit price). The amount may sit alone on the next line."""
    items: list[LineItem] = []
    in_table = False
    for i, line in enumerate(lines):
        if _ITEM_HEADER.search(line.text) and len(find_amounts(line.text)) == 0:
            in_table = True
            continue
        if not in_table:
            continue
        if _ITEM_TABLE_END.search(line.text):
            in_table = False
            continue
        description, numbers = _item_row(line.text)
        if not numbers:
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        lone = parse_number(nxt.text.strip()) if nxt is not None and nxt.page == line.page else None
        if lone is not None:
            amount, factors = lone, numbers
        elif len(numbers) >= 2:
            amount, factors = numbers[-1], numbers[:-1]
        else:
            continue
        qty, unit = _quantity_and_price(factors, amount)
        # A quantity may be printed before the description ("400,00 Luftballon ... 0,79 316,00").
        leading = re.match(r"(\S+)\s+(?=\D)", description)
        if qty is None and leading and (first := parse_number(leading.group(1))) is not None:
            qty, unit = _quantity_and_price([first, *factors], amount)
            if qty is not None:
                description = description[leading.end():]
        if not re.search(r"[^\W\d_]{3}", description):
            # A row of numbers only: when they verify, the description is printed above it.
            if qty is None:
                continue
            description = _description_above(lines, i)
            if description is None:
                continue
        confidence = 0.85 if qty is not None else 0.5
        items.append(LineItem(
            line_no=len(items) + 1, description=description,
            quantity=_plain(qty) if qty is not None else None,
            unit_price=_plain_price(unit) if unit is not None else None,
            amount=format_amount(amount), page=line.page, confidence=confidence,
        ))
    return items


def _description_above(lines: list[Line], index: int) -> str | None:
    """The words printed above a numbers-only item row, up to the first line with a word
    ("Trennblätter" / "A4" / "9,9000 20 Stk 19 % 198,00")."""
    parts: list[str] = []
    for line in reversed(lines[max(0, index - 3): index]):
        if line.page != lines[index].page or _ITEM_HEADER.search(line.text) or parse_number(line.text.strip()):
            break
        parts.insert(0, line.text.strip())
        if re.search(r"[^\W\d_]{3}", line.text):
            return " ".join(parts)
    return None


def _item_row(text: str) -> tuple[str, list[Decimal]]:
    """Split a row into its description and the run of numbers at its end. Tax rates ("19 %")
    and units ("Stk") in the run are skipped; numbers inside the description ("Paper A4",
    "2 Nächte Hotel") are not part of the run. A leading position number is dropped."""
    tokens = text.split()
    numbers: list[Decimal] = []
    end = len(tokens)
    while end > 0:
        token = tokens[end - 1]
        if token == "%" and end >= 2 and parse_number(tokens[end - 2]) is not None:
            end -= 2  # a tax rate
        elif token.endswith("%") and parse_number(token[:-1]) is not None:
            end -= 1
        elif _ITEM_UNIT.match(token):
            end -= 1
        elif (value := parse_number(token)) is not None:
            numbers.insert(0, value)
            end -= 1
        else:
            break
    description = re.sub(r"^\d{1,3}\s+(?=\D)", "", " ".join(tokens[:end])).strip(" -:x")
    if not description and numbers and numbers[0] == numbers[0].to_integral_value() and len(numbers) >= 4:
        numbers = numbers[1:]  # "2 5,5000 50 Stk 7 % 275,00": the first is the position
    return description, numbers


def _quantity_and_price(factors: list[Decimal], amount: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """The two numbers whose product is the amount; the whole one is the quantity. A lone
    number equal to the amount is a unit price with quantity 1."""
    for a_index, a in enumerate(factors):
        for b in factors[a_index + 1:]:
            if abs(a * b - amount) <= Decimal("0.01"):
                a_whole, b_whole = a == a.to_integral_value(), b == b.to_integral_value()
                if a_whole != b_whole:
                    return (a, b) if a_whole else (b, a)
                return min(a, b), max(a, b)  # both whole: the quantity is usually the smaller
    if factors and abs(factors[-1] - amount) <= Decimal("0.005"):
        return Decimal(1), factors[-1]
    return None, None


def _plain_price(value: Decimal) -> str:
    """A unit price keeps its printed precision beyond cents ("9.9000" -> "9.90", "0.1234")."""
    normalized = value.normalize()
    return format_amount(normalized) if normalized.as_tuple().exponent >= -2 else f"{normalized:f}"


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- contracts -----------------------------------------------------------------------------------
_BETWEEN = re.compile(
    r"\bbetween\s*:?\s+(.{3,160}?)(?:\s*\(|,\s*a\s|,\s*an\s|,\s*having|,\s*with)"
    r".{0,400}?\band\s+(.{3,160}?)(?:\s*\(|,\s*a\s|,\s*an\s|,\s*having|,\s*with|\.\s)",
    re.I | re.S,
)
_EFFECTIVE = re.compile(
    r"(?:effective\s+(?:as\s+of|date|on)|dated\s+(?:as\s+of)?|entered\s+into\s+(?:as\s+of|on)|"
    r"made\s+(?:as\s+of|on)|as\s+of)\s*:?\s*", re.I
)
_GOVERNING = re.compile(r"governed|governing\s+law|construed|applicable\s+law", re.I)
_LAWS_OF = re.compile(
    r"laws?\s+of\s+(?:the\s+)?(?:(?i:state|commonwealth|province)\s+of\s+)?"
    r"([A-Z][A-Za-z]+(?:\s+[A-Z][a-z]+)?)"
)
_TERM = re.compile(
    r"\b(?:term|period)\s+of\s+(?:\w+\s+)?\(?(\d+|one|two|three|four|five|six|seven|eight|nine|ten|"
    r"twelve|eighteen|twenty-four|thirty-six)\)?\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b",
    re.I,
)
_NUMBERS = (r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|eighteen|"
            r"twenty-four|thirty-six)")
# "shall terminate two years after", "will expire two (2) years from", "remain in effect for three years"
_TERM_ENDS = re.compile(
    r"\b(?:terminat\w*|expir\w*|remain\s+in\s+(?:full\s+force\s+and\s+)?effect|continue\s+in\s+"
    r"(?:full\s+force\s+and\s+)?effect)\s+(?:automatically\s+)?(?:for\s+)?(?:a\s+period\s+of\s+)?"
    r"(?:upon\s+the\s+)?" + _NUMBERS + r"\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b", re.I)
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "eighteen": 18,
                 "twenty-four": 24, "thirty-six": 36}


def _governing_law(text: str) -> re.Match[str] | None:
    """The jurisdiction named by a governing-law clause: "governed by ... the laws of the State
    of New York", looked for within a sentence of the clause's verb."""
    for anchor in _GOVERNING.finditer(text):
        m = _LAWS_OF.search(text, anchor.end(), anchor.end() + 250)
        if m and m.group(1).split()[0] not in ("Agreement", "This", "Such", "Any"):
            return m
    return None


def term_value(text: str) -> str | None:
    """'a term of two (2) years' -> '2_years'; None when no term is stated."""
    t = _TERM.search(text) or re.search(
        r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|eighteen|twenty-four|"
        r"thirty-six)\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b", text, re.I)
    if not t:
        return None
    n = t.group(1).lower()
    number = int(n) if n.isdigit() else _NUMBER_WORDS[n]
    unit = t.group(2).lower().rstrip("s")
    return f"{number}_{unit}" + ("" if number == 1 else "s")


def _contract(lines: list[Line]) -> Extraction:
    values: list[ExtractedValue] = []
    head = lines[:120]
    text, index = _joined(head)

    m = _BETWEEN.search(text)
    if m:
        for group in (1, 2):
            raw = re.sub(r"\s+", " ", m.group(group)).strip(" ,;:\"“”")
            raw = re.sub(r"^(the\s+)", "", raw, flags=re.I)
            if raw:
                values.append(_span_value("parties", raw, m.start(group), m.end(group), index, NEXT_LINE))

    for em in _EFFECTIVE.finditer(text):
        dates = find_dates(text[em.end(): em.end() + 40], dayfirst=False)
        if dates and dates[0][0] == 0 and _plausible(dates[0][2]):
            s, e, d = dates[0]
            values.append(_span_value("effective_date", text[em.end() + s: em.end() + e], em.end() + s,
                                      em.end() + e, index, SAME_LINE, value=d.isoformat()))
            break
    else:
        dates = [d for d in find_dates(text, dayfirst=False) if _plausible(d[2])]
        if dates:
            s, e, d = dates[0]
            values.append(_span_value("effective_date", text[s:e], s, e, index, FALLBACK, value=d.isoformat()))

    full, full_index = _joined(lines)
    g = _governing_law(full)
    if g:
        values.append(_span_value("jurisdiction", g.group(1), g.start(1), g.end(1), full_index, NEXT_LINE))
    t = _TERM.search(full) or _TERM_ENDS.search(full)
    if t:
        values.append(_span_value("term", t.group(0), t.start(), t.end(), full_index, NEXT_LINE,
                                  value=term_value(t.group(0))))
    return Extraction(doc_type=DocType.CONTRACT, values=values)


def _joined(lines: list[Line]) -> tuple[str, list[tuple[int, Line]]]:
    """Lines joined by spaces, with the offset at which each line starts."""
    parts, index, pos = [], [], 0
    for line in lines:
        index.append((pos, line))
        parts.append(line.text)
        pos += len(line.text) + 1
    return " ".join(parts), index


def _span_value(name: str, raw: str, start: int, end: int, index: list[tuple[int, Line]],
                how: float, value: str | None = None) -> ExtractedValue:
    line_start, line = next(((s, l) for s, l in reversed(index) if s <= start), index[0])
    cand = Candidate(raw, value if value is not None else raw, line,
                     start - line_start, max(start - line_start + 1, min(end - line_start, len(line.text))), how)
    result = cand.to_value(name)
    # A span that wraps onto the next line is still seen on the page.
    result.grounded = is_grounded(raw, " ".join(l.text for _, l in index))
    return result


# -- forms ---------------------------------------------------------------------------------------
_KEY_VALUE = re.compile(r"^\s*([A-Za-z][^:]{1,60}?)\s*:\s*(.*)$")


def _form(lines: list[Line]) -> Extraction:
    values: list[ExtractedValue] = []
    for i, line in enumerate(lines):
        m = _KEY_VALUE.match(line.text)
        if not m:
            continue
        key, rest = m.group(1).strip(), m.group(2).strip()
        if rest:
            start = line.text.index(rest, m.start(2))
            cand = Candidate(rest, rest, line, start, start + len(rest), SAME_LINE * 0.8)
        elif i + 1 < len(lines) and lines[i + 1].page == line.page and ":" not in lines[i + 1].text:
            nxt = lines[i + 1]
            cand = Candidate(nxt.text, nxt.text, nxt, 0, len(nxt.text), NEXT_LINE * 0.7)
        else:
            continue
        values.append(cand.to_value("key_values", key=key))
    return Extraction(doc_type=DocType.FORM, values=values)

