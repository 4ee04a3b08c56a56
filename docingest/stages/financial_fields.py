"""Invoice and receipt fields (embedded): amounts, dates, numbers, currency and periods after
their labels (``labels``), the issuer and buyer (``parties``) and the item rows
(``line_items``). Each value keeps the text as printed, its normalized form, page, box and a
confidence that reflects how it was found (label on the same line > next line > fallback)
times the OCR confidence of its words.
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
    currency_marked,
    date_finder,
    id_finder,
    name_finder,
    neighbours,
    plausible,
    total_finder,
)
from docingest.stages.layout import Line
from docingest.stages.line_items import line_items
from docingest.stages.normalize import (
    CURRENCY_SYMBOLS,
    ISO_4217,
    clean_company_name,
    find_amounts,
    find_dates,
    format_amount,
)
from docingest.stages.parties import BUYER_BLOCK, FORM_LABEL, NAME_STOP, find_vendor, party_block, recipient
from docingest.schemas.fields import DocType
from docingest.schemas.records import ExtractedValue, Extraction

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


def financial_fields(lines: list[Line], doc_type: DocType) -> Extraction:
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

    table = line_items(lines)
    credit_note = any(_CREDIT_NOTE.search(line.text) for line in lines[:40])
    return Extraction(doc_type=doc_type, values=values, line_items=table.items, credit_note=credit_note,
                      line_items_sum=format_amount(table.printed_sum) if table.printed_sum is not None else None,
                      line_items_withheld=table.withheld)


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
