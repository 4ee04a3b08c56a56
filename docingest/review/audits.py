"""Earned autonomy: reviewed audits and would-be-accepted documents update how much is automated.

A document that routing would have accepted but held as an ``audit_sample``, or held only by the
document bar (``unproven_document_reliability``), and that a person then reviewed, is a
measurement on the user's own documents: approved unchanged, it was right; corrected or
rejected, it was not. ``reviewed_counts`` counts those per kind (type|source), recomputed from
the decision log each time (idempotent); the calibration table keeps them beside the counts
measured on labelled data, and routing bounds the sum: wrong audits lower the bound until the
kind stops being accepted, right ones earn it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from docingest.review.queue import PublishedTables
from docingest.review.store import DecisionLog
from docingest.stages.route import AUDIT_REASON
from docingest.schemas.calibration import DocumentCount
from docingest.schemas.review import ReviewAction

_WOULD_BE_ACCEPTED = (AUDIT_REASON, "unproven_document_reliability:")


def would_have_been_accepted(document: dict) -> bool:
    reasons = document.get("review_reasons") or []
    return (document.get("status") == "needs_review" and bool(reasons) and bool(document.get("reliability_kind"))
            and all(r.startswith(_WOULD_BE_ACCEPTED) for r in reasons))


def reviewed_counts(out: Path) -> dict[str, DocumentCount]:
    """Per kind: would-be-accepted documents of OUT's published runs that were reviewed, and
    how many of them were approved as extracted (same type, no value changed)."""
    documents = PublishedTables(out).documents()
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for doc_id, decision in DecisionLog(out).latest_by_doc().items():
        document = documents.get(doc_id)
        if document is None or not would_have_been_accepted(document):
            continue
        cell = counts[document["reliability_kind"]]
        cell[0] += 1
        cell[1] += int(decision.action == ReviewAction.APPROVED and decision.doc_type == document["doc_type"])
    return {kind: DocumentCount(n=n, right=r) for kind, (n, r) in sorted(counts.items())}
