"""Line items: rows under an item header whose numbers multiply to the row's amount, or a till
receipt's counted rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from docingest.stages.layout import Line
from docingest.stages.normalize import find_amounts, format_amount, normalize_currency, parse_number
from docingest.schemas.records import LineItem



_ITEM_HEADER = re.compile(r"\b(description|item|article|artikel|bezeichnung|qty|quantity|menge|désignation)\b", re.I)


# Where an item table ends: its totals, or the tax breakdown printed under it.
_ITEM_TABLE_END = re.compile(
    r"(?i)\b(sub\s*-?total|total|summe|gesamt|netto|tax|vat|gst|mwst|ust)\b|umsatzsteuer|steueraufschl")
_ROW_TAX = re.compile(r"(?i)\d+(?:[.,]\d+)?\s*%\s*(?:vat|ust\.?|mwst\.?)(?:\s*\([a-z]{1,2}\))?")
# Units a quantity is counted in ("20 Stk", "3 Std", "2 x"), with the UN/ECE codes of e-invoices:
# H87 (piece), C62 (one), HUR (hour), KGM, MTR, LTR, KWH. The number before one is the quantity.
_QUANTITY_UNIT = re.compile(
    r"(?i)^(x|stk\.?|st\.?|stück|std\.?|h|hrs?|pcs?\.?|pce|ea|each|units?|kg|g|l|m|m2|m²|kwh|"
    r"[a-z]\d{2}|hur|kgm|mtr|ltr)$")
# Other words printed between an item's numbers: currencies and the tax a rate names with its
# category ("19 % VAT (S)").
_ITEM_UNIT = re.compile(r"(?i)^([$€£]|eur|usd|gbp|rm|myr|vat|ust\.?|mwst\.?|\([a-z]{1,2}\))$")


Row = tuple[LineItem, set[int]]  # an item and the indices of the lines it was read from


@dataclass(frozen=True)
class ItemTable:
    items: list[LineItem]
    # The sum printed outside the rows that they add up to ("Positionssumme 457,20").
    printed_sum: Decimal | None = None
    # Why rows that were read are not delivered, when they are not.
    withheld: str | None = None


def line_items(lines: list[Line]) -> ItemTable:
    """The item table's rows, or where a document prints no item header (a till receipt), its
    counted rows ("2 x ROTI GARDENIA 8.40"); delivered only when they add up to a sum the
    document prints outside them."""
    return _checked(_table_rows(lines) or _counted_rows(lines), lines)


# "2 x ROTI GARDENIA 8.40": a count, the description, and the row's amount with its cents.
# ("5 x RM 12.50" under a description is a count and a unit price: no word of three letters.)
_COUNTED_ROW = re.compile(r"^\s*(\d{1,3})\s*[xX×]\s+(.*?[^\W\d_]{3}.*?)\s+(-?\d[\d.,]*[.,]\d\d)\s*$")


def _counted_rows(lines: list[Line]) -> list[Row]:
    """Rows that open with a count and end with their amount, up to the totals. The unit price
    is the amount over the count when that comes out in whole cents."""
    items: list[Row] = []
    for line in lines:
        if items and _ITEM_TABLE_END.search(line.text):
            break
        m = _COUNTED_ROW.match(line.text)
        amount = parse_number(m.group(3)) if m else None
        if m is None or amount is None or int(m.group(1)) == 0 or normalize_currency(m.group(2)):
            continue
        qty = Decimal(m.group(1))
        unit = amount / qty
        items.append((LineItem(
            line_no=len(items) + 1, description=m.group(2).strip(), quantity=_plain(qty),
            unit_price=format_amount(unit) if unit == unit.quantize(Decimal("0.01")) else None,
            amount=format_amount(amount), page=line.page, confidence=0.85,
        ), {line.index}))
    return items


def _table_rows(lines: list[Line]) -> list[Row]:
    """Rows after an item header: a description, then numbers of which two multiply to the
    row's amount (quantity x unit price). The amount may sit alone on the next line."""
    items: list[Row] = []
    in_table = False
    header_end = -1
    for i, line in enumerate(lines):
        if _ITEM_HEADER.search(line.text) and len(find_amounts(line.text)) == 0:
            in_table, header_end = True, i
            continue
        if not in_table:
            continue
        # A row's own tax rate ("19 % VAT (S)") does not end the table; a totals or tax line does.
        if _ITEM_TABLE_END.search(_ROW_TAX.sub(" ", line.text)):
            if i <= header_end + 4 and not find_amounts(line.text):
                continue  # a wrapped column title under the header ("Positions- / betrag / ohne / USt.")
            in_table = False
            continue
        description, numbers, counted = _item_row(line.text)
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
        qty, unit = _quantity_and_price(factors, amount, counted)
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
        items.append((LineItem(
            line_no=len(items) + 1, description=description,
            quantity=_plain(qty) if qty is not None else None,
            unit_price=_plain_price(unit) if unit is not None else None,
            amount=format_amount(amount), page=line.page, confidence=confidence,
        ), {line.index, nxt.index} if lone is not None else {line.index}))
    return items


# Lines that print a sum: totals, subtotals, "Positionssumme", "Jumlah".
_SUM_LINE = re.compile(r"(?i)total|summe|gesamt|netto|betrag|amount|jumlah|montant")


def _checked(rows: list[Row], lines: list[Line]) -> ItemTable:
    """Rows are delivered when they add up to a sum the document prints outside them (the
    items' own sum, the subtotal or the total), so that loaded items always reconcile with their
    invoice. A row whose numbers do not multiply out (no quantity found) may be an item priced
    once ("BRAISED PORK 14.00") or a discount, a deposit or a bank line read as one: when all
    rows do not add up, the rows that verify themselves are tried alone. A table that does not
    add up either way was read in part (a row with a rounded price, a row the reader missed)
    and is withheld with the reason, not delivered as if complete."""
    if not rows:
        return ItemTable([])
    used = set().union(*(where for _, where in rows))
    # Money is printed with its cents: "7 %" or "Seite 1" on a totals line is no sum.
    sums = {abs(v) for line in lines if line.index not in used and _SUM_LINE.search(line.text)
            for start, end, v in find_amounts(line.text) if re.search(r"[.,]\d\d$", line.text[start:end])}
    items = [item for item, _ in rows]
    verified = [item for item in items if item.quantity is not None]
    for candidate in (items, verified):
        total = sum((Decimal(item.amount) for item in candidate if item.amount), Decimal(0))
        if candidate and abs(total) in sums:  # a credit note prints its sums with or without a sign
            renumbered = [item.model_copy(update={"line_no": n}) for n, item in enumerate(candidate, 1)]
            return ItemTable(renumbered, printed_sum=total)
    total = sum((Decimal(item.amount) for item in items if item.amount), Decimal(0))
    return ItemTable([], withheld=(
        f"{len(items)} item rows read ({len(verified)} with quantity x price = amount) add up to "
        f"{format_amount(total)}, which no sum on the document matches: not delivered"))


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


def _item_row(text: str) -> tuple[str, list[Decimal], Decimal | None]:
    """Split a row into its description, the run of numbers at its end, and the number printed
    before a unit ("100,0000 Stk."), which is the quantity. Tax rates ("19 %"), units and
    currencies in the run are skipped; numbers inside the description ("Paper A4", "2 Nächte
    Hotel") are not part of the run. A leading position number is dropped."""
    tokens = text.split()
    numbers: list[Decimal] = []
    counted: Decimal | None = None
    after_unit = False
    end = len(tokens)
    while end > 0:
        token = tokens[end - 1]
        if token == "%" and end >= 2 and parse_number(tokens[end - 2]) is not None:
            end -= 2  # a tax rate
        elif token.endswith("%") and parse_number(token[:-1]) is not None:
            end -= 1
        elif _QUANTITY_UNIT.match(token):
            end -= 1
            after_unit = True
            continue
        elif _ITEM_UNIT.match(token):
            end -= 1
        elif (value := parse_number(token)) is not None:
            numbers.insert(0, value)
            if after_unit and counted is None:
                counted = value
            end -= 1
        else:
            break
        after_unit = False
    description = re.sub(r"^\d{1,3}\s+(?=\D)", "", " ".join(tokens[:end])).strip(" -:x")
    if not description and numbers and numbers[0] == numbers[0].to_integral_value() and len(numbers) >= 4:
        numbers = numbers[1:]  # "2 5,5000 50 Stk 7 % 275,00": the first is the position
    return description, numbers, counted


def _quantity_and_price(factors: list[Decimal], amount: Decimal,
                        counted: Decimal | None = None) -> tuple[Decimal | None, Decimal | None]:
    """The two numbers whose product is the amount; the one printed before a unit (``counted``)
    is the quantity, else the whole one. A lone number equal to the amount is a unit price with
    quantity 1."""
    if counted is not None:
        for price in factors:
            if price is not counted and abs(counted * price - amount) <= Decimal("0.01"):
                return counted, price
    for a_index, a in enumerate(factors):
        for b in factors[a_index + 1:]:
            if abs(a * b - amount) <= Decimal("0.01"):
                a_whole, b_whole = a == a.to_integral_value(), b == b.to_integral_value()
                if a_whole != b_whole:
                    return (a, b) if a_whole else (b, a)
                # "12,0000 15 Stk": a price is printed with its decimals even when it is whole.
                a_count, b_count = a.as_tuple().exponent >= 0, b.as_tuple().exponent >= 0
                if a_count != b_count:
                    return (a, b) if a_count else (b, a)
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
