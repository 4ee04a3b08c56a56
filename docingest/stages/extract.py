"""Extract (embedded): read typed fields from a document's words, no model, no network.

Per document type this module reads amounts, dates, numbers, currency and periods (invoices
and receipts), parties, dates, law and term (contracts) and key/value pairs (forms). It finds
values after their labels with ``labels``, the issuer and buyer with ``parties`` and the item
rows with ``line_items``. Every value keeps the text as printed, its normalized form, page,
box and a confidence that reflects how it was found (label on the same line > next line >
fallback) times the OCR confidence of its words.
"""

from __future__ import annotations

import re
from decimal import Decimal

from docingest.stages.labels import (
    FALLBACK,
    LABEL_RE,
    NEXT_LINE,
    SAME_LINE,
    Candidate,
    after_label,
    amount_finder,
    amounts_after_label,
    cell_under,
    cells,
    currency_marked,
    date_finder,
    id_finder,
    is_grounded,
    name_finder,
    neighbours,
    plausible,
    total_finder,
)
from docingest.stages.layout import Line, document_lines
from docingest.stages.line_items import line_items
from docingest.stages.normalize import (
    CURRENCY_SYMBOLS,
    ISO_4217,
    clean_company_name,
    find_amounts,
    find_dates,
    fold_text,
    format_amount,
)
from docingest.stages.parties import BUYER_BLOCK, FORM_LABEL, NAME_STOP, find_vendor, party_block, recipient
from schemas.fields import DocType
from schemas.records import ExtractedValue, Extraction, PageText


_ISSUE_DATE_LABEL = re.compile(
    r"invoice\s*date|date\s*of\s*issue|issue\s*date|rechnungsdatum|beleg\s*-?\s*datum|date\s*de\s*facture|"
    r"date\s*d.[ée]mission", re.I)
_INVOICE_NUMBER_LABEL = re.compile(
    r"invoice\s*(?:no|number|num|#|nr)\.?|rechnungs?\s*-?\s*(?:nummer|nr)\.?|rechnung\s*#|"
    # "Facture FA-2017-0010" is a number; "Date de facture" is not its label.
    r"beleg\s*-?\s*(?:nummer|nr)\.?|(?<!de\s)facture(?:\s*n[°o]\.?)?|"
    r"n[°o]\s*de\s*facture|inv\s*(?:no|#)\.?|"
    # A title followed by its number ("Invoice FA-2017-0008", "Gutschrift AV-2017-0005"), not
    # "Invoice Date" or "Invoice 3 of 4".
    r"^(?:invoice|rechnung|gutschrift|credit\s*note|avoir)(?=\s+[A-Z]{1,4}[-/]?\d[\w/-]*\s*$)", re.I | re.M)
# Totals that are not the grand total.
# A part of the total or a count: "Sub-total", "Total Qty", "Total Spots", "Total Tax".
# Broadcast orders also print audience measures ("Total CPP: $0.00" is a cost per rating point)
# and revision notes ("Changes: Total $ from $18,140.00 to $0.00", the old total first).
_PART_OR_COUNT = (r"sub\s*-?\s*total|total\s*(?:qty|quantity|items?|spots?|units?|buylines|grp|for\b|tax|gst|"
                  r"vat|discount|excl|savings|includ|cp[pm]\b|gimps?\b|impressions|\$?\s*from\b)|total\s*ht|")
_NOT_TOTAL = re.compile(
    # "Gesamtbetrag der Abschläge": the total of the discounts, not of the invoice.
    _PART_OR_COUNT + r"netto|\bnet\b(?!t)|gesamtbetrag\s+der\b", re.I
)
_NOT_TOTAL_RECEIPT = re.compile(_PART_OR_COUNT + r"tax\s*total|gst\s*summary", re.I)
_ROUNDED_TOTAL = re.compile(r"total[\w\s.()]{0,16}?round\w*|round\w*\s*total", re.I)
# The invoice's gross total, then what is left to pay (after prepayments), then any "total".
_GROSS_TOTAL = re.compile(
    r"grand\s*total|rounded[\w\s]{0,6}total|total[\w\s.]{0,10}rounded|total[\w\s]{0,12}\(?\s*incl|"
    r"total\s*ttc|gross\s*amount|"
    r"total\s*gross|invoice\s*total|total\s*amount|bruttosumme|bruttobetrag|gesamtbetrag|"
    r"gesamtsumme|rechnungsbe(?:i)?trag|endbetrag|montant\s*ttc", re.I
)
_DUE_TOTAL = re.compile(
    r"amount\s*due|total\s*due|balance\s*due|total\s*payable|zu\s*zahlen|zahlbetrag|"
    r"net\s*[àa]\s*payer", re.I
)


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


def guess_dayfirst(lines: list[Line]) -> bool:
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


def _financial(lines: list[Line], doc_type: DocType) -> Extraction:
    values: list[ExtractedValue] = []
    dayfirst = guess_dayfirst(lines)
    find_date = date_finder(dayfirst)

    def best(cands: list[Candidate]) -> Candidate | None:
        return max(cands, key=lambda c: c.how) if cands else None

    # Amounts: grand total first (prefer explicit "grand total"-style labels, then the last
    # "total" on the document, which is where totals are printed).
    receipt = doc_type == DocType.RECEIPT
    # On a till receipt "Net Total" is what was paid; on an invoice it is the amount before tax.
    totals = amounts_after_label(lines, LABEL_RE["total"], total_finder,
                                 exclude=_NOT_TOTAL_RECEIPT if receipt else _NOT_TOTAL)
    # "Total 13" beside "$1,050.00": a bare whole number under a total label is a count
    # (spots, items) whenever the document prints its totals as money.
    if any(_money_form(c) for c in totals):
        totals = [c for c in totals if _money_form(c)]
    rounded = after_label(lines, _ROUNDED_TOTAL, total_finder)
    gross = [c for c in totals if _GROSS_TOTAL.search(c.line.text)]
    due = [c for c in totals if _DUE_TOTAL.search(c.line.text)]
    if rounded:
        total, method = rounded[-1], "rounded_label"  # the rounded total is the last word on what was paid
    elif gross or due:
        total, method = (gross or due)[-1], "gross_label" if gross else "due_label"
    elif totals and receipt:
        # A receipt's tax summary repeats "TOTAL: 16.98 1.02" below the real "TOTAL 18.00".
        total, method = max(totals, key=lambda c: Decimal(c.value)), "total_label"
    else:
        total, method = (totals[-1] if totals else None), "total_label"
    if total is None:
        total, method = _largest_amount(lines), "largest_amount"
    subtotal = best(amounts_after_label(lines, LABEL_RE["subtotal"], amount_finder))
    tax = _tax(lines, subtotal, total)
    chosen = total
    total = _reconcile_total(lines, total, subtotal, tax)
    if total is not None:
        # Calibration tells apart how the total was found; one the arithmetic replaced is its own kind.
        total.method = method if total is chosen else "arithmetic"

    if total is not None and subtotal is not None and tax is not None:
        consistent = abs(Decimal(subtotal.value) + Decimal(tax.value) - Decimal(total.value)) <= Decimal("0.02")
        for cand in (total, subtotal, tax):
            cand.how = min(1.0, cand.how + 0.08) if consistent else cand.how * 0.8
    for name, cand in (("total", total), ("subtotal", subtotal), ("tax", tax)):
        if cand is not None:
            values.append(cand.to_value(name))

    # Dates.
    due = best(after_label(lines, LABEL_RE["due_date"], find_date))
    issued_cands = [
        c for c in after_label(lines, LABEL_RE["invoice_date"], find_date)
        if not LABEL_RE["due_date"].search(c.line.text) and not _opens_range(c, dayfirst)
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
    number = best(after_label(lines, _INVOICE_NUMBER_LABEL, id_finder, columns=True))
    if number is not None:
        number.method = "invoice_label"
    else:
        found = after_label(lines, LABEL_RE["invoice_number"], id_finder, columns=True)
        for c in found:
            # An order or contract number stands in for the invoice's own number; how often it
            # is the one wanted differs from a bare "Nr.", so calibration tells them apart.
            kind = re.match(r"(?i)(order|contract)", c.label.strip())
            revision = kind and kind.group(1).lower() == "order" and re.search(r"(?i)/\s*rev", c.label)
            c.method = ("order_revision_label" if revision else
                        f"{kind.group(1).lower()}_label" if kind else "generic_label")
        # A contract number names the deal an order or invoice belongs to; an order number
        # beside it is the buyer's or the station's reference, so the contract number wins.
        # "Contract #" / "Contract / Revision" before a station's "Order / Rev" (its own order
        # and revision, where a plain "Order #" is often the agency's), before a cell that only
        # says "Contract" (which may be a title).
        contract = [c for c in found if c.method == "contract_label"]
        numbered = [c for c in contract if re.search(r"(?i)no|number|#|rev", c.label)]
        revised = [c for c in found if c.method == "order_revision_label"]
        number = best(numbered or revised or contract or found)
    if number is not None:
        values.append(number.to_value("invoice_number"))

    currency = _currency(lines)
    if currency is not None:
        values.append(currency.to_value("currency"))

    # A customer label must introduce a value ("Bill to:", a label opening its line), not be
    # part of a phrase ("Customer Service Hotline").
    buyer = party_block(lines, BUYER_BLOCK)
    labelled = [c for c in after_label(lines, LABEL_RE["customer_name"], name_finder, columns=True)
                if (c.how != SAME_LINE or _introduces_value(c)) and not FORM_LABEL.match(c.raw.strip())
                # Another label ("Agency: ...", "Original Date / Revision") or a contact line is no name.
                and not NAME_STOP.search(c.raw) and not re.match(r"[\w/ -]{1,25}:", c.raw.strip())
                # A cell that is itself a customer label ("Buyer" under "Advertiser") is none;
                # nor are the lower-case words of a clause ("... invoice to be ...").
                and not LABEL_RE["customer_name"].fullmatch(c.raw.strip(" :"))
                and re.search(r"[A-Z0-9]", c.raw)]
    # "Buyer" on a media order is the agency's buyer, a person; the advertiser or bill-to party
    # is the customer wherever the document names one.
    customer = buyer[0] if buyer else best(
        [c for c in labelled if not re.fullmatch(r"(?i)buyer", c.label.strip())] or labelled)
    if customer is not None and not buyer:
        customer.method = "label"
    if customer is None:
        customer = recipient(lines)
    elif not buyer and customer.how == SAME_LINE:  # a party block already reads its lines
        customer = _wrapped_name(lines, customer)
    if customer is not None:
        # Station systems print their account number after the advertiser ("Amy for America
        # (135176)"): an id of theirs, not part of the name. The raw text keeps it.
        customer.value = _ACCOUNT_TAIL.sub("", customer.value or "") or customer.value
        values.append(customer.to_value("customer_name", scale=0.8))

    vendor = find_vendor(lines)
    if vendor is not None:
        name, address = vendor
        name.value = clean_company_name(name.value)
        values.append(name.to_value("vendor_name"))
        if address is not None:
            values.append(address.to_value("vendor_address"))

    items = line_items(lines)
    credit_note = any(_CREDIT_NOTE.search(line.text) for line in lines[:40])
    return Extraction(doc_type=doc_type, values=values, line_items=items, credit_note=credit_note)


# A title near the top that names the document a credit note.
# A station's account number after the advertiser: "Amy for America (135176)".
_ACCOUNT_TAIL = re.compile(r"\s*\(\d{4,}\)\s*$")
_CREDIT_NOTE = re.compile(r"(?i)\b(credit\s*note|credit\s*memo|gutschrift|avoir|nota\s+de\s+cr[eé]dito)\b")


# "vom 06.12.2013 bis zum 06.12.2014": the date opens a period; it is not the issue date.
_RANGE_ON = re.compile(r"(?i)\s*(?:bis(?:\s*zum)?|to|until|through|au|-|–)\s*")


def _opens_range(cand: Candidate, dayfirst: bool) -> bool:
    connector = _RANGE_ON.match(cand.line.text, cand.end)
    if connector is None:
        return False
    dates = find_dates(cand.line.text[connector.end():], dayfirst)
    return bool(dates) and dates[0][0] == 0


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


def _wrapped_name(lines: list[Line], c: Candidate) -> Candidate:
    """A name wrapped in its cell ("Advertiser: Congressional" / "Leadership Fund"): the line
    right under it holds only the rest, starting where the name starts. An address or a
    label under the name (digits, a colon) is not its rest."""
    box = c.line.bbox(c.start, c.end)
    if box is None or c.line.index + 1 >= len(lines):
        return c
    nxt = lines[c.line.index + 1]
    if nxt.page != c.line.page or not nxt.words:
        return c
    height = box[3] - box[1]
    right_under = (-0.3 * height <= nxt.words[0].bbox[1] - box[3] <= height
                   and abs(nxt.words[0].bbox[0] - box[0]) <= 0.005)
    rest = nxt.text.strip()
    name_words = (len(rest.split()) <= 3 and rest[:1].isupper() and not re.search(r"[\d:@]", rest)
                  and not NAME_STOP.search(rest) and not any(r.search(rest) for r in LABEL_RE.values()))
    if not (right_under and name_words):
        return c
    return Candidate(f"{c.raw} {rest}", f"{c.value} {rest}", c.line, c.start, c.end, c.how,
                     context=f"{c.line.text} {nxt.text}", method=c.method, label=c.label)


def _introduces_value(c: Candidate) -> bool:
    before = c.line.text[: c.start]
    return ":" in before[-4:] or bool(re.search(r"\b(bill|sold|invoice|ship)\s*to\s*$", before, re.I))


_WITHOUT_TAX = re.compile(r"ohne|excl|exkl|before|hors|netto|\bnet\b|basis|grundbetrag|warenwert", re.I)
# "Total Incl. GST 23.26" is a total that names the tax it includes, not the tax.
_INCLUDING_TAX = re.compile(r"\bincl|\binkl|inclusive|inchusive|\binc\.?\s*(?:gst|tax|vat)", re.I)


def _tax(lines: list[Line], subtotal: Candidate | None, total: Candidate | None) -> Candidate | None:
    cands = amounts_after_label(lines, LABEL_RE["tax"], amount_finder)
    # A tax label followed by "6%" then an amount: the finder skips percentages already.
    cands = [c for c in cands if not re.search(r"(?i)reg|no\b|nr\b|id\b|number", c.line.text[: c.start])
             and not _WITHOUT_TAX.search(c.line.text) and not _INCLUDING_TAX.search(c.line.text)
             # "VAT exemption according to articles 262": an amount has cents or a currency.
             and _money_form(c)]
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
    return next((c for c in after_label(lines, label, amount_finder) if re.search(r"[.,]\d\d$", c.raw)), None)


_ROUNDING_ADJ = re.compile(r"(?i)round\w*\s*(?:adj\w*|amount|amt)?")


def _rounded_total(lines: list[Line], total: Candidate, evidence: list[tuple[Decimal, bool]]) -> Candidate | None:
    """Tills round cash totals to 5 sen and print the adjustment. What was paid is the chosen
    total plus the printed adjustment, or paid − change when that differs from the chosen
    total by less than one rounding step; it counts only where it is printed on a total or
    payment line at or below the chosen total."""
    if not any(_ROUNDING.search(line.text) for line in lines):
        return None
    chosen = Decimal(total.value)
    targets = [chosen + Decimal(adj.value) for adj in after_label(lines, _ROUNDING_ADJ, amount_finder)
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


def _money_form(cand: Candidate) -> bool:
    return bool(re.search(r"[.,]\d{2}$", cand.raw)) or currency_marked(cand.line.text, cand.start)


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
    re.compile(r"flight\s*dates?|order\s*\.?\s*flight|\bflight\b|contract\s*dates|schedule\s*dates?|"
               r"leistungszeitraum|service\s*(dates?|period)|p[ée]riode\s*de\s*(prestation|service)", re.I),
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
                places += [(n, 0) for n in neighbours(lines, i, line.bbox(m.start(), m.end()))]
            for where, offset in places:
                dates = [(s + offset, e + offset, d) for s, e, d in find_dates(where.text[offset:], dayfirst)
                         if plausible(d)]
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


# -- contracts -----------------------------------------------------------------------------------
_BETWEEN = re.compile(
    r"\b(?:between|among)\s*:?\s+(.{3,160}?)(?:\s*\(|,\s*a\s|,\s*an\s|,\s*having|,\s*with)"
    # A sentence ends at ". ", but not after an initial ("Ronald A. Bucchi").
    r".{0,400}?\band\s+(.{3,160}?)(?:\s*\(|,\s*a\s|,\s*an\s|,\s*having|,\s*with|(?<!\b[A-Z])\.\s)",
    re.I | re.S,
)
# Where a party's name ends: its description follows ("…, existing under the laws of", "…, who
# resides at", "…, its affiliates").
_PARTY_TAIL = re.compile(
    r"\s*,?\s*\b(?:who|which|existing|organized|incorporated\s+(?:in|under)|having|located|"
    r"residing|with\s+(?:its|offices)|its\s+(?:affiliates|subsidiaries)|on\s+behalf|dated|exhibit)\b.*$",
    re.I | re.S)
# Text a "between … and …" clause catches that is no party: a blank, a role, a clause.
_NOT_A_PARTY = re.compile(
    r"^(?:(?:its|any|each|all|a|an|the\s+laws|person|company\s+and|you|us|parties|gentlemen|dear)\b|"
    r"company\W*(?:or|and)?\W*$|[\W_]*$)", re.I)


_COMPANY_FORM = re.compile(r"(?i)\b(?:inc|corp|corporation|llc|ltd|limited|l\.?p|n\.v|s\.a|gmbh|plc)\b")
_ABBREVIATED = re.compile(r"\b(?:Inc|Corp|Ltd|Co|L\.P|N\.V|S\.A)$")


def _party_name(span: str) -> str | None:
    raw = re.sub(r"\s+", " ", span).strip(" ,;:\"“”")
    raw = re.sub(r"^(the\s+)", "", raw, flags=re.I)
    raw = _PARTY_TAIL.sub("", raw).strip(" ,;:\"“”")
    # A name starts with a capital or a digit ("3M Company"), or is a company's ("salesforce.com,
    # inc."); "rights and obligations set forth herein" or "myself and each of" is the clause
    # around the names.
    if not raw or _NOT_A_PARTY.match(raw) or len(raw) > 80:
        return None
    if not (raw[0].isupper() or raw[0].isdigit() or _COMPANY_FORM.search(raw)):
        return None
    return raw


# A signature line: "By:", "By: ______", "By: /s/ Jane Roe".
_SIGNATURE = re.compile(r"^\s*(?:By|BY)\s*:?\s*(?:_{2,}|/s/|$|[A-Z])")
# A line above a signature line that is a closing or a caption, not the signing company.
_NOT_SIGNER = re.compile(r"(?i)witness|whereof|sincerely|very truly|accepted|agreed|acknowledged|signature|"
                         r"page|date|\d{3,}")


def _signing_companies(lines: list[Line]) -> list[Candidate]:
    """The companies named right above signature lines, once each, in the order signed. Two
    signature blocks side by side share a line: each cell is read on its own."""
    found: list[Candidate] = []
    for i, line in enumerate(lines):
        if not _SIGNATURE.match(line.text):
            continue
        above = next((l for l in reversed(lines[max(0, i - 3): i]) if l.text.strip(" _:,[]")), None)
        if above is None or _NOT_SIGNER.search(above.text):
            continue
        for start, end in cells(above):
            # "Recipient Name: KBS Capital Advisors LLC", "[RECIPIENT] Perseon Corporation"
            cell = re.sub(r"^[^:]{1,30}:\s*|^\[?[A-Z]+\]\s*", "", above.text[start:end]).strip(" :,[]")
            if (_COMPANY_FORM.search(cell) and len(cell) < 70 and cell[:1].isupper()
                    and not any(_same_party(cell, c.value) for c in found)):
                offset = above.text.index(cell, start)
                found.append(Candidate(cell, cell, above, offset, offset + len(cell), NEXT_LINE,
                                       method="signature_block"))
    return found


def _same_party(a: str, b: str | None) -> bool:
    """"NitroMed, Inc." and "NITROMED, INC." (or a name inside a clause that names it)."""
    x, y = (fold_text(t).replace(" ", "") for t in (a, b or ""))
    return bool(x and y) and (x in y or y in x)


_EFFECTIVE = re.compile(
    r"(?:effective\s+(?:as\s+of|date|on)|dated\s+(?:as\s+of)?|entered\s+into(?:\s+(?:as\s+of|on))?|"
    r"made\s+(?:as\s+of|on)|as\s+of)\s*:?\s*(?:(?:this|the)\s+)?", re.I
)
_GOVERNING = re.compile(r"govern(?:ed|s)?\b|governing\s+law|construed|applicable\s+law", re.I)
# "the laws of the State of New York", also in capitals ("LAWS OF THE STATE OF DELAWARE"); a
# state named after "the United States and" is the one meant.
_LAWS_OF = re.compile(
    r"(?i:laws?\s+of\s+(?:the\s+)?(?:united\s+states\s+(?:of\s+america\s+)?and\s+(?:the\s+)?)?"
    r"(?:state|commonwealth|province)?\s*(?:of\s+)?)"
    r"([A-Z][A-Za-z]+(?:\s+[A-Z][a-z]+|\s+[A-Z]+(?=\s+(?:WITHOUT|APPLICABLE|AND|SHALL|,)))?)"
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
_DURATION = _NUMBERS + r"\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b"
# "17. Term. This letter agreement will terminate two (2) years from the date hereof."
_TERM_HEADING = re.compile(r"(?i)\bterm(?:\s+of\s+(?:this\s+)?agreement)?\s*[.:]\s[^.]{0,200}?\b" + _DURATION)
# "The term of this Agreement shall be one (1) year from the date hereof."
_TERM_IS = re.compile(r"(?i)\bterm\s+of\s+this\s+(?:letter\s+)?agreement\s+(?:shall|will)\s+be\s+(?:for\s+)?"
                      r"(?:a\s+period\s+of\s+)?" + _DURATION)
# "This Agreement shall terminate in its entirety one year after", "the obligations hereunder
# shall terminate five years from".
_AGREEMENT_ENDS = re.compile(
    r"(?i)\b(?:agreement|obligations?|hereunder|confidentiality)\b[^.;]{0,80}?\b(?:shall|will)\s+"
    r"(?:automatically\s+)?(?:terminat\w*|expir\w*|remain\s+in\s+(?:full\s+force\s+and\s+)?effect|"
    r"continue\s+in\s+(?:full\s+force\s+and\s+)?effect)\b[^.;]{0,40}?\b" + _DURATION)
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "eighteen": 18,
                 "twenty-four": 24, "thirty-six": 36}


def _governing_law(text: str) -> re.Match[str] | None:
    """The jurisdiction named by a governing-law clause: "governed by ... the laws of the State
    of New York", looked for within a sentence of the clause's verb."""
    for anchor in _GOVERNING.finditer(text):
        # After the verb ("governed by the laws of ..."), else just before it ("the laws of
        # the State of Indiana shall govern").
        for m in (_LAWS_OF.search(text, anchor.end(), anchor.end() + 250),
                  _LAWS_OF.search(text, max(0, anchor.start() - 80), anchor.start())):
            if m and m.group(1).split()[0].casefold() not in ("agreement", "this", "such", "any", "the"):
                return m
    return None


def term_value(text: str) -> str | None:
    """'a term of two (2) years' -> '2_years'; None when no term is stated."""
    t = _TERM.search(text) or re.search(
        r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|eighteen|twenty-four|"
        r"thirty-six)\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b", text, re.I)
    return _duration(t.group(1), t.group(2)) if t else None


def _contract(lines: list[Line]) -> Extraction:
    values: list[ExtractedValue] = []
    head = lines[:120]
    text, index = _joined(head)

    m = _BETWEEN.search(text)
    if m:
        for group in (1, 2):
            span = m.group(group)
            if group == 2:
                # "…, existing under the laws of Delaware, and John D. Thomas": the "and" that
                # names the second party is the last one.
                span = re.split(r",\s+and\s+", span)[-1]
                if text[m.end(group): m.end(group) + 1] == "." and _ABBREVIATED.search(span):
                    span += "."
            raw = _party_name(span)
            if raw:
                start = m.start(group) + m.group(group).find(raw.split()[0])
                values.append(_span_value("parties", raw, start, start + len(raw), index, NEXT_LINE))
    # Letter agreements and "by and between" clauses that name only one side: the companies
    # above the signature lines ("ACME, INC." / "By: ____") are the others.
    for signer in _signing_companies(lines):
        if len(values) >= 2:
            break
        if not any(_same_party(signer.value, v.value) for v in values):
            values.append(signer.to_value("parties"))

    for em in _EFFECTIVE.finditer(text):
        dates = find_dates(text[em.end(): em.end() + 40], dayfirst=False)
        if dates and dates[0][0] == 0 and plausible(dates[0][2]):
            s, e, d = dates[0]
            effective = _span_value("effective_date", text[em.end() + s: em.end() + e], em.end() + s,
                                    em.end() + e, index, SAME_LINE, value=d.isoformat())
            effective.method = "effective_phrase"
            values.append(effective)
            break
    else:
        dates = [d for d in find_dates(text, dayfirst=False) if plausible(d[2])]
        if dates:
            s, e, d = dates[0]
            first = _span_value("effective_date", text[s:e], s, e, index, FALLBACK, value=d.isoformat())
            first.method = "first_date"
            values.append(first)

    full, full_index = _joined(lines)
    g = _governing_law(full)
    if g:
        name = g.group(1)
        values.append(_span_value("jurisdiction", name, g.start(1), g.end(1), full_index, NEXT_LINE,
                                  value=name.title() if name.isupper() else name))  # "DELAWARE"
    # The agreement's own duration: a "Term." section, else the agreement (or its obligations)
    # ending N years on. A bare "for a period of one year" is a non-solicit or a survival
    # clause more often than the term: on the 83 dev NDAs it was the labelled term 5 times
    # in 25, so it is not read as one.
    for method, pattern in (("term_heading", _TERM_HEADING), ("term_is", _TERM_IS),
                            ("agreement_ends", _AGREEMENT_ENDS), ("ends", _TERM_ENDS)):
        t = pattern.search(full)
        if t:
            term = _span_value("term", t.group(0), t.start(), t.end(), full_index, NEXT_LINE,
                               value=_duration(*t.groups()[-2:]))
            term.method = method
            values.append(term)
            break
    return Extraction(doc_type=DocType.CONTRACT, values=values)


def _duration(number: str, unit: str) -> str:
    """('two', 'years') -> '2_years'; ('one', 'year') -> '1_year'."""
    n = int(number) if number.isdigit() else _NUMBER_WORDS[number.lower()]
    return f"{n}_{unit.lower().rstrip('s')}" + ("" if n == 1 else "s")


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
    """Key/value pairs: "Key: value" in a cell of its line, the value in the same cell, the
    next cell of the row, or the line under it."""
    values: list[ExtractedValue] = []
    for i, line in enumerate(lines):
        spans = cells(line)
        for k, (cs, ce) in enumerate(spans):
            m = _KEY_VALUE.match(line.text[cs:ce])
            if not m:
                continue
            key, rest = m.group(1).strip(), m.group(2).strip()
            if rest:
                start = line.text.index(rest, cs + m.start(2))
                cand = Candidate(rest, rest, line, start, start + len(rest), SAME_LINE * 0.8)
            elif k + 1 < len(spans) and not _KEY_VALUE.match(line.text[spans[k + 1][0]:spans[k + 1][1]]):
                ns, ne = spans[k + 1]
                cand = Candidate(line.text[ns:ne], line.text[ns:ne], line, ns, ne, SAME_LINE * 0.7)
            elif (under := cell_under(lines, i, cs, ce)) is not None and ":" not in under[0].text[under[1]:under[2]]:
                nxt, us, ue = under
                cand = Candidate(nxt.text[us:ue], nxt.text[us:ue], nxt, us, ue, NEXT_LINE * 0.7)
            elif i + 1 < len(lines) and lines[i + 1].page == line.page and ":" not in lines[i + 1].text:
                nxt = lines[i + 1]
                cand = Candidate(nxt.text, nxt.text, nxt, 0, len(nxt.text), NEXT_LINE * 0.7)
            else:
                continue
            values.append(cand.to_value("key_values", key=key))
    return Extraction(doc_type=DocType.FORM, values=values)
