"""Route: accept a document only when nothing speaks against it; otherwise say every reason."""

from __future__ import annotations

from docingest.config import RoutingThresholds
from schemas.fields import DocType
from schemas.records import (
    Classification,
    Extraction,
    RuleResult,
    Severity,
    StageError,
    Status,
)


def route_document(
    classification: Classification | None,
    extraction: Extraction | None,
    rule_results: list[RuleResult],
    errors: list[StageError],
    thresholds: RoutingThresholds,
    extra_reasons: list[str] | None = None,
) -> tuple[Status, list[str]]:
    if classification is None or extraction is None:
        return Status.FAILED, [f"{e.stage.value}:{e.kind}" for e in errors] or ["not processed"]
    reasons: list[str] = list(extra_reasons or [])
    # Recorded errors (a page that failed) never pass silently.
    reasons.extend(f"stage_error:{e.stage.value}:{e.kind}" + (f":p{e.page}" if e.page else "")
                   for e in errors)
    if classification.doc_type == DocType.OTHER:
        reasons.append("unknown_doc_type")
    if classification.confidence < thresholds.min_classification_confidence:
        reasons.append(f"low_classification_confidence:{classification.confidence:.2f}")
    for value in extraction.values:
        label = value.field_name if value.key is None else f"{value.field_name}[{value.key}]"
        if value.confidence < thresholds.min_field_confidence:
            reasons.append(f"low_field_confidence:{label}:{value.confidence:.2f}")
        if not value.grounded:
            reasons.append(f"ungrounded:{label}")
    for rule in rule_results:
        if not rule.passed:
            if rule.rule_id == "fields.required":
                reasons.append(f"missing_required:{rule.message.split()[0]}")
            elif rule.severity == Severity.ERROR:
                reasons.append(f"rule_failed:{rule.rule_id}")
    reasons = list(dict.fromkeys(reasons))
    return (Status.NEEDS_REVIEW if reasons else Status.ACCEPTED), reasons
