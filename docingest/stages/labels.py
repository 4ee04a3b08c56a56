"""Labels and the values they point at: a value beside its label on the same line, beside
it on the page, or under it (a column header). Candidates keep how they were found, which
sets their raw confidence and their calibration method."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from docingest.stages.layout import Line
from docingest.stages.normalize import ISO_4217, find_amounts, find_dates, format_amount
from docingest.schemas.records import ExtractedValue


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
                      r"order\s*(?:no|number|#|/\s*rev)\.?:?|belegnummer|\bnr\.|"
                      # A cell that is only "Contract" on a station's invoice, the number beside
                      # it or in the same cell.
                      r"^\s*contract(?=\s*:?\s*(?:[\w/-]*\d[\w/-]*)?\s*$)|"
                      # OCR joins a row's cells into one line: "ph: (610) 293-4100 Contract 4377405".
                      r"(?<=\s)contract(?=\s*:?\s*\d[\w/-]*\d\s*$)",
    "invoice_date": r"invoice\s*date|date\s*of\s*issue|issue\s*date|rechnungsdatum|belegdatum|"
                    r"date\s*de\s*facture|datum|\bdate\b|\bdated\b|\bvom\b|\bdu\b",
    "due_date": r"due\s*date|payment\s*due|pay\s*by|f[äa]llig(?:keit)?|zahlbar\s*bis|[ée]ch[ée]ance",
    "total": r"grand\s*total|total\s*amount|amount\s*due|total\s*due|balance\s*due|"
             r"bruttosumme|gesamtsumme|invoice\s*total|"
             r"total\s*payable|rounded\s*total|total\s*\(?incl|nett?\s*total|total\s*ttc|"
             r"gesamtbetrag|rechnungsbe(?:i)?trag|zu\s*zahlen|zahlbetrag|endbetrag|bruttobetrag|"
             r"gross\s*amount|total\s*gross|\btotals?\b|\bsumme\b|\bmontant\b",
    "subtotal": r"sub\s*-?\s*total|total\s*excl|net\s*amount|nettobetrag|summe\s*netto|"
                r"summe\s*ohne\s*(?:ust|mwst)|nettosumme|montant\s*ht|total\s*hors\s*taxes?|"
                r"netto|total\s*ht|\bnet\b|warenwert|total\s*before\s*tax|gesamtbeitrag",
    # OCR glues rates to labels ("GST6%"), so a label may be followed by a digit.
    "tax": r"(?<![a-z])(?:total\s*tax|tax\s*amount|steuerbetrag|gst|vat|mwst|ust|umsatzsteuer|mehrwertsteuer|"
           r"tva|tax(?:es)?|steuer|versicherung?steuer)(?![a-z])",
    "customer_name": r"bill\s*to|sold\s*to|invoice\s*to|customer(?:\s*name)?|client|"
                     r"advertiser|buyer|k[äa]ufer|kunde|rechnungsempf[äa]nger|destinataire",
    "vendor_name": r"seller|vendor|supplier|verk[äa]ufer|lieferant|from|vendeur|fournisseur",
}
LABEL_RE = {k: re.compile(v, re.I) for k, v in LABELS.items()}

_ID_RE = re.compile(r"[A-Z0-9][A-Z0-9/_.-]*\d[A-Z0-9/_.-]*", re.I)


def after_label(lines: list[Line], label: re.Pattern[str], finder, exclude=None,
                columns: bool = False) -> list[Candidate]:
    """Values after a label: on its line, beside it or under it. ``columns``: a label that
    heads a column of a header row takes the cell under it (names and ids; amounts are
    printed beside their labels)."""
    out: list[Candidate] = []
    for i, line in enumerate(lines):
        for m in label.finditer(line.text):
            if exclude is not None and exclude.search(line.text[max(0, m.start() - 6): m.end() + 12]):
                continue
            # A column header ("Advertiser   Original Date / Revision"): its value is the cell
            # right under it, not the next header on its row.
            under = _column_under(lines, i, line, m.start(), m.end()) if columns else None
            found = under and _first(finder, *under, NEXT_LINE, m.group(0))
            found = found or _first(finder, line, m.end(), len(line.text), SAME_LINE, m.group(0))
            if found is None and not line.text[m.end():].strip(" :.#-"):
                # A label alone on its line: its value is beside it or under it on the page.
                # Text order is no guide in form-like layouts (the next line in reading order
                # is often the next label), so look at the boxes first.
                box = line.bbox(m.start(), m.end())
                nearby = neighbours(lines, i, box)
                if not nearby and i + 1 < len(lines) and lines[i + 1].page == line.page:
                    nearby = [lines[i + 1]]
                found = next((c for nxt in nearby
                              if (c := _first(finder, nxt, *_cell_below(nxt, box), NEXT_LINE, m.group(0)))), None)
            if found is not None:
                out.append(found)
    return out


def _first(finder, line: Line, start: int, end: int, how: float, label: str) -> Candidate | None:
    """The finder's first value in ``line.text[start:end]`` as a candidate, else None."""
    hits = finder(line.text[start:end])
    if not hits:
        return None
    s, e, value = hits[0]
    return Candidate(line.text[start + s:start + e], value, line, start + s, start + e, how, label=label)


def _sum_row(lines: list[Line], c: Candidate, finder) -> Candidate:
    """A value read under a column header ("Endbetrag" over "382,47") may open a tax summary:
    one row per tax rate, then their sum. When the amounts under it in the same column end in
    a row that adds up the rows above, that row is the column's total; else ``c`` itself."""
    box = c.line.bbox(c.start, c.end)
    if c.how != NEXT_LINE or box is None:
        return c
    column: list[tuple[Candidate, Decimal]] = [(c, Decimal(c.value))]
    for nxt in lines[c.line.index + 1: c.line.index + 8]:
        if nxt.page != c.line.page:
            break
        # The cell of this row that overlaps the value's column.
        under = next(((cs, ce) for cs, ce in cells(nxt)
                      if (b := nxt.bbox(cs, ce)) and b[0] < box[2] and b[2] > box[0]), None)
        found = under and _first(finder, nxt, *under, NEXT_LINE, c.label)
        if not found:
            break
        column.append((found, Decimal(found.value)))
    # Positive parts only: "180.00 / (27.00) / 153.00" is a gross, a commission and a net.
    parts = [v for _, v in column[:-1]]
    if len(parts) >= 2 and all(v > 0 for v in parts) and sum(parts) == column[-1][1]:
        return column[-1][0]
    return c


def amounts_after_label(lines: list[Line], label: re.Pattern[str], finder, exclude=None) -> list[Candidate]:
    """Amounts after a label (``after_label``), each a tax summary's sum row where it opens one."""
    return [_sum_row(lines, c, finder) for c in after_label(lines, label, finder, exclude=exclude)]


def cells(line: Line) -> list[tuple[int, int]]:
    """Character spans of a line's cells: runs of words with no column gap between them (a
    gap wider than the words are tall)."""
    spans: list[tuple[int, int]] = []
    for k, (w, start) in enumerate(zip(line.words, line.starts)):
        prev = line.words[k - 1] if k else None
        # A dash or a dot is short: the taller of two neighbours sets the gap a column needs.
        height = max(w.bbox[3] - w.bbox[1], prev.bbox[3] - prev.bbox[1] if prev else 0, 1e-3)
        if prev is None or w.bbox[0] - prev.bbox[2] > height:
            spans.append((start, start + len(w.text)))
        else:
            spans[-1] = (spans[-1][0], start + len(w.text))
    return spans


def _column_under(lines: list[Line], index: int, line: Line, start: int, end: int):
    """When a label ends its cell and another cell follows on its row (a header row), the cell
    of the next line down that starts under the label: (line, start, end), else None."""
    spans = cells(line)
    own = next((c for c in spans if c[0] <= start < c[1]), None)
    # "Advertiser: Bernie 2020": a colon introduces the value beside the label.
    if own is None or own[1] > end or own == spans[-1]:
        return None
    return cell_under(lines, index, start, end)


def cell_under(lines: list[Line], index: int, start: int, end: int):
    """The cell of the next line down (within 2.5 line heights) that starts under the span
    ``start:end`` of line ``index``: (line, start, end), else None."""
    line = lines[index]
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
        for cs, ce in cells(nxt):
            first = nxt.span_words(cs, cs + 1)[0]
            if x0 - 0.01 <= first.bbox[0] < x1:
                return nxt, cs, ce
    return None


def _cell_below(nxt: Line, label_box) -> tuple[int, int]:
    """The span of ``nxt`` to read for a label's value: on a row under the label that holds
    several cells ("DSCC - Peters for Senate      05/12/20 05/12/20"), the cell that starts
    under the label; else the whole line."""
    whole = (0, len(nxt.text))
    if label_box is None or not nxt.words or min(w.bbox[1] for w in nxt.words) < label_box[3]:
        return whole
    spans = cells(nxt)
    if len(spans) < 2:
        return whole
    x0, x1 = label_box[0], label_box[2]
    return next(((cs, ce) for cs, ce in spans if x0 - 0.01 <= nxt.span_words(cs, cs + 1)[0].bbox[0] < x1), whole)


def neighbours(lines: list[Line], index: int, label_box) -> list[Line]:
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
            # Of two cells on the row under the label, the one that starts under it, not the
            # neighbouring column's value that starts just past its end.
            below.append(((round((oy0 - y1) / height), abs(ox0 - x0)), other))
    nearest = [l for _, l in sorted(right, key=lambda t: t[0])[:1] + sorted(below, key=lambda t: t[0])[:1]]
    # A header row ("Advertiser        Original Date / Revision"): the next header far to the
    # right is no value when a cell starts right under the label.
    if len(nearest) == 2 and min(d for d, _ in right) > 0.1 and abs(nearest[1].bbox(0, 1)[0] - x0) < 0.01:
        nearest.reverse()
    return nearest


def amount_finder(text: str):
    # "Tax 8% 25.34": the rate is not the amount.
    # "SIRET : 99999999800010": eight digits and more without separators are an id.
    return [(s, e, format_amount(v)) for s, e, v in find_amounts(text)
            if not re.match(r"\s?%", text[e:e + 2]) and not re.match(r"[./-]\d{2,4}\b", text[e:e + 5])
            and not re.fullmatch(r"\d{8,}", text[s:e])]


_CURRENCY_BEFORE = re.compile(r"(?:([$€£¥])|\b(RM)|\b([A-Z]{3}))\s?$")


def currency_marked(text: str, start: int) -> bool:
    m = _CURRENCY_BEFORE.search(text[max(0, start - 4): start])
    return bool(m) and (m.group(3) is None or m.group(3) in ISO_4217)


def total_finder(text: str):
    """The amount a total label points at: the first one marked with a currency ("Total
    EUR 119.00 (incl. VAT 19.00)"), else the largest one with decimals ("TOTAL ROUNDED ?3-10
    33.90", "Total: 80.91 0.00")."""
    hits = amount_finder(text)
    marked = [h for h in hits if currency_marked(text, h[0])]
    if marked:
        return marked[:1]
    decimal = [h for h in hits if re.search(r"[.,]\d{2}$", text[h[0]:h[1]])]
    if decimal:
        # "Total: 80.91 0.00" (amount and tax columns): the total is the larger.
        return [max(decimal, key=lambda h: Decimal(h[2]))]
    return hits[:1]


def date_finder(dayfirst: bool):
    def find(text: str):
        return [(s, e, d.isoformat()) for s, e, d in find_dates(text, dayfirst) if plausible(d)]
    return find


def plausible(d: date) -> bool:
    return 1990 <= d.year <= 2100


def id_finder(text: str):
    text_stripped = text.lstrip(" :.#-")
    offset = len(text) - len(text_stripped)
    m = _ID_RE.match(text_stripped)
    if not m:
        return []
    return [(offset + m.start(), offset + m.end(), m.group(0))]


# The next label on the same line ("Advertiser: Amy for America  Market: Abilene"): a name
# ends where it begins.
_NEXT_LABEL = re.compile(r"\s+[A-Z][A-Za-z0-9/#.()-]{1,24}\s?:(?:\s|$)")


def name_finder(text: str):
    cut = _NEXT_LABEL.search(text, len(text) - len(text.lstrip(" :.-")))
    if cut is not None:
        text = text[: cut.start()]
    stripped = text.strip(" :.-")
    if len(stripped) < 2 or not re.search(r"[A-Za-z]{2}", stripped):
        return []
    start = text.index(stripped)
    return [(start, start + len(stripped), stripped)]
