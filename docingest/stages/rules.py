"""Row-level business rules. Each returns a ``RuleResult`` with a stable id and a severity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation

from docingest.config import RoutingThresholds
from docingest.stages.normalize import ISO_4217
from docingest.schemas.fields import DocType, FieldKind, field_specs
from docingest.schemas.records import Extraction, RuleResult, Severity

MIN_PLAUSIBLE_YEAR = 1990

Rule = Callable[[Extraction, RoutingThresholds, date], list[RuleResult]]


def _amount(extraction: Extraction, name: str) -> Decimal | None:
    v = extraction.get(name)
    if v is None or v.value is None:
        return None
    try:
        return Decimal(v.value)
    except InvalidOperation:
        return None


def total_equals_subtotal_plus_tax(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    total, subtotal, tax = (_amount(ex, n) for n in ("total", "subtotal", "tax"))
    if total is None or subtotal is None or tax is None:
        return []
    diff = abs(subtotal + tax - total)
    ok = diff <= Decimal(str(th.amount_tolerance))
    return [RuleResult(
        rule_id="amounts.total_eq_subtotal_plus_tax", severity=Severity.ERROR, passed=ok,
        message=f"subtotal {subtotal} + tax {tax} = {subtotal + tax} vs total {total} (diff {diff})",
    )]


def total_equals_line_sum(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    amounts = [li.amount for li in ex.line_items if li.amount is not None]
    if not amounts:
        return []
    line_sum = sum((Decimal(a) for a in amounts), Decimal(0))
    target = _amount(ex, "subtotal")
    label = "subtotal"
    if target is None:
        target, label = _amount(ex, "total"), "total"
    if target is None:
        return []
    # The line sum may be net (before tax) or gross: either matching is a pass. So is a sum of
    # the items the document prints itself, before its document-level charges and discounts.
    candidates = {target}
    total = _amount(ex, "total")
    if total is not None:
        candidates.add(total)
    printed = Decimal(ex.line_items_sum) if ex.line_items_sum else None
    if printed is not None:
        candidates.add(printed)
    tolerance = Decimal(str(th.amount_tolerance)) * max(1, len(amounts))
    ok = any(abs(line_sum - c) <= tolerance for c in candidates)
    also = f" (items sum printed as {printed})" if printed is not None else ""
    return [RuleResult(
        rule_id="amounts.total_eq_line_sum", severity=Severity.ERROR, passed=ok,
        message=f"sum of {len(amounts)} line amounts {line_sum} vs {label} {target}{also}",
    )]


def line_items_delivered(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    """Item rows that were read but add up to no printed sum are not delivered; a warning says
    so (the document's own totals are checked by the amount rules; a reviewer sees the note)."""
    if ex.line_items_withheld is None:
        return []
    return [RuleResult(rule_id="line_items.withheld", severity=Severity.WARNING, passed=False,
                       message=ex.line_items_withheld)]


def dates_plausible(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    results = []
    for spec in field_specs(ex.doc_type):
        if spec.kind != FieldKind.DATE:
            continue
        v = ex.get(spec.name)
        if v is None:
            continue
        if v.value is None:
            results.append(RuleResult(rule_id="dates.parse", severity=Severity.ERROR, passed=False,
                                      message=f"{spec.name} {v.value_raw!r} is not a date"))
            continue
        d = date.fromisoformat(v.value)
        ok = date(MIN_PLAUSIBLE_YEAR, 1, 1) <= d <= today
        # Due dates and service periods may legitimately lie ahead.
        if spec.name in {"due_date", "period_start", "period_end"}:
            ok = d >= date(MIN_PLAUSIBLE_YEAR, 1, 1)
        results.append(RuleResult(
            rule_id="dates.plausible", severity=Severity.ERROR, passed=ok,
            message=f"{spec.name} {d.isoformat()}" + ("" if ok else f" outside {MIN_PLAUSIBLE_YEAR}..{today}"),
        ))
    return results


def currency_valid(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    v = ex.get("currency")
    if v is None:
        return []
    ok = v.value is not None and v.value in ISO_4217
    return [RuleResult(rule_id="currency.iso4217", severity=Severity.ERROR, passed=ok,
                       message=f"currency {v.value_raw!r} -> {v.value!r}")]


def _date(extraction: Extraction, name: str) -> date | None:
    v = extraction.get(name)
    if v is None or v.value is None:
        return None
    try:
        return date.fromisoformat(v.value)
    except ValueError:
        return None


def _dates_in_order(ex: Extraction, earlier: str, later: str, rule_id: str) -> list[RuleResult]:
    first, second = _date(ex, earlier), _date(ex, later)
    if first is None or second is None:
        return []
    return [RuleResult(rule_id=rule_id, severity=Severity.ERROR, passed=second >= first,
                       message=f"{earlier} {first} .. {later} {second}")]


def due_not_before_issue(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    return _dates_in_order(ex, "invoice_date", "due_date", "dates.due_not_before_issue")


def period_in_order(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    return _dates_in_order(ex, "period_start", "period_end", "dates.period_in_order")


# The highest standard VAT / GST / sales-tax rate in the currency's country or currency area,
# as a fraction. A tax line above it was most likely misread (or is not a tax at all). US sales
# tax is state plus local, at most about 11.5%; the euro area's highest VAT is Hungary's 27%.
MAX_TAX_RATE: dict[str, Decimal] = {
    "EUR": Decimal("0.27"), "USD": Decimal("0.115"), "GBP": Decimal("0.20"), "CHF": Decimal("0.081"),
    "MYR": Decimal("0.10"), "SGD": Decimal("0.09"), "CAD": Decimal("0.15"), "AUD": Decimal("0.10"),
    "JPY": Decimal("0.10"), "INR": Decimal("0.28"), "SEK": Decimal("0.25"), "DKK": Decimal("0.25"),
    "NOK": Decimal("0.25"), "PLN": Decimal("0.23"), "CZK": Decimal("0.21"), "HUF": Decimal("0.27"),
    "CNY": Decimal("0.13"), "HKD": Decimal("0"), "NZD": Decimal("0.15"), "ZAR": Decimal("0.15"),
}
# Rounding on small amounts moves the apparent rate: allow one point above the ceiling.
TAX_RATE_SLACK = Decimal("0.01")


def tax_rate_plausible(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    currency = ex.get("currency")
    tax, subtotal, total = (_amount(ex, n) for n in ("tax", "subtotal", "total"))
    if currency is None or currency.value not in MAX_TAX_RATE or tax is None:
        return []
    net = subtotal if subtotal is not None else (total - tax if total is not None else None)
    if net is None or net == 0:
        return []
    rate = abs(tax / net)
    ceiling = MAX_TAX_RATE[currency.value]
    ok = rate <= ceiling + TAX_RATE_SLACK
    # A warning: unusual rates exist (luxury tax, mixed rates); a reviewer sees it, routing does not block.
    return [RuleResult(rule_id="amounts.tax_rate_plausible", severity=Severity.WARNING, passed=ok,
                       message=f"tax rate {rate:.2%} vs at most {ceiling:.1%} for {currency.value}")]


def amounts_non_negative(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    amounts = {n: _amount(ex, n) for n in ("subtotal", "tax", "total")}
    negative = [n for n, a in amounts.items() if a is not None and a < 0]
    negative += [f"line {li.line_no}" for li in ex.line_items if li.amount is not None and Decimal(li.amount) < 0]
    if not any(a is not None for a in amounts.values()):
        return []
    if ex.credit_note:
        return [RuleResult(rule_id="amounts.non_negative", severity=Severity.ERROR, passed=True,
                           message="credit note: negative amounts allowed" + (f" ({', '.join(negative)})" if negative else ""))]
    return [RuleResult(rule_id="amounts.non_negative", severity=Severity.ERROR, passed=not negative,
                       message=("negative: " + ", ".join(negative)) if negative else "no negative amount")]


def required_fields_present(ex: Extraction, th: RoutingThresholds, today: date) -> list[RuleResult]:
    results = []
    for spec in field_specs(ex.doc_type):
        if not spec.required:
            continue
        present = any(v.field_name == spec.name and v.value for v in ex.values)
        results.append(RuleResult(
            rule_id="fields.required", severity=Severity.ERROR, passed=present,
            message=f"{spec.name} " + ("present" if present else "missing"),
        ))
    if ex.doc_type == DocType.FORM:
        present = any(v.field_name == "key_values" for v in ex.values)
        results.append(RuleResult(rule_id="fields.required", severity=Severity.ERROR, passed=present,
                                  message="key_values " + ("present" if present else "missing")))
    return results


RULES: list[Rule] = [
    total_equals_subtotal_plus_tax,
    total_equals_line_sum,
    line_items_delivered,
    dates_plausible,
    currency_valid,
    due_not_before_issue,
    period_in_order,
    tax_rate_plausible,
    amounts_non_negative,
    required_fields_present,
]


def apply_rules(extraction: Extraction, thresholds: RoutingThresholds, today: date) -> list[RuleResult]:
    return [result for rule in RULES for result in rule(extraction, thresholds, today)]
