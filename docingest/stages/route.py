"""Route: accept a document only when nothing speaks against it; otherwise say every reason."""

from __future__ import annotations

import re

from docingest.config import RoutingThresholds
from docingest.schemas.fields import DocType, field_specs
from docingest.schemas.records import (
    Classification,
    Extraction,
    RuleResult,
    Severity,
    StageError,
    Status,
)


def withhold_unverified(extraction: Extraction | None, thresholds: RoutingThresholds) -> list[str]:
    """Mark the optional fields below the bar as withheld; return their names.

    A document type with required fields (invoice, receipt, contract) is judged on those and
    on every optional value it asserts. An optional value that did not reach the bar is not
    asserted, so it need not hold the document back. Forms have no required fields: their
    key/values are the document, and withholding them would accept an empty form."""
    if extraction is None or not thresholds.withhold_optional_fields:
        return []
    required = {f.name for f in field_specs(extraction.doc_type) if f.required}
    if not required:
        return []
    withheld = []
    for value in extraction.values:
        value.withheld = (value.field_name not in required and value.key is None
                          and value.confidence < thresholds.min_field_confidence)
        if value.withheld:
            withheld.append(value.field_name)
    return withheld


def route_document(
    classification: Classification | None,
    extraction: Extraction | None,
    rule_results: list[RuleResult],
    errors: list[StageError],
    thresholds: RoutingThresholds,
    extra_reasons: list[str] | None = None,
    document_reliability: tuple[str, float, int] | None = None,
) -> tuple[Status, list[str]]:
    """``document_reliability``: (kind, lower bound of the measured share right, documents
    measured) for documents of this type and source whose values all passed
    (``calibrate.document_reliability``); a bound below the bar, and the
    document waits for a person however confident each of its values is."""
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
        if value.withheld:
            continue
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
    if document_reliability is not None and document_reliability[1] < thresholds.min_document_confidence:
        kind, bound, n = document_reliability
        reasons.append(f"unproven_document_reliability:{kind}:{bound:.2f}:n{n}")
    reasons = list(dict.fromkeys(reasons))
    return (Status.NEEDS_REVIEW if reasons else Status.ACCEPTED), reasons


AUDIT_REASON = "audit_sample"


def audit_selected(doc_id: str | None, share: float) -> bool:
    """Whether a document that would be accepted is held as an audit sample: a fixed share
    of documents by their content hash, so a rerun audits the same ones."""
    if not doc_id or share <= 0:
        return False
    return int(doc_id[:8], 16) < share * 0x100000000


def reason_kind(reason: str) -> str:
    """A review reason without its measurements: "low_field_confidence:total:0.70" ->
    "low_field_confidence:total"; a form's key ("key_values[Date]") and a measured value
    ("low_classification_confidence:0.50") go."""
    kind, _, rest = reason.partition(":")
    subject = re.sub(r"\[.*", "", rest.split(":")[0])
    return f"{kind}:{subject}" if subject and not re.fullmatch(r"[\d.]+", subject) else kind
