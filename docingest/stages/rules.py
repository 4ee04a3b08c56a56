"""Row-level business rules. Each returns a ``RuleResult`` with a stable id and a severity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation

from docingest.config import RoutingThresholds
from docingest.stages.normalize import ISO_4217
from schemas.fields import DocType, FieldKind, field_specs
from schemas.records import Extraction, RuleResult, Severity

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
    # The line sum may be net (before tax) or gross: either matching is a pass.
    candidates = {target}
    total = _amount(ex, "total")
    if total is not None:
        candidates.add(total)
    tolerance = Decimal(str(th.amount_tolerance)) * max(1, len(amounts))
    ok = any(abs(line_sum - c) <= tolerance for c in candidates)
    return [RuleResult(
        rule_id="amounts.total_eq_line_sum", severity=Severity.ERROR, passed=ok,
        message=f"sum of {len(amounts)} line amounts {line_sum} vs {label} {target}",
    )]


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
    dates_plausible,
    currency_valid,
    required_fields_present,
]


def apply_rules(extraction: Extraction, thresholds: RoutingThresholds, today: date) -> list[RuleResult]:
    return [result for rule in RULES for result in rule(extraction, thresholds, today)]
