"""Human review: decisions (append-only log) and the curated status they lead to."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, Field


class ReviewAction(str, Enum):
    APPROVED = "approved"  # the extraction is right as shown
    CORRECTED = "corrected"  # the reviewer changed at least one value
    REJECTED = "rejected"  # not a document we load (wrong type, unreadable, junk)


class CuratedStatus(str, Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # a re-issue of an accepted invoice (see schemas.records.Status)
    NEEDS_REVIEW = "needs_review"
    REJECTED = "rejected"
    FAILED = "failed"


class ReviewedValue(BaseModel):
    """One value as the reviewer left it: ``value_raw`` as typed, ``value`` normalized."""

    field_name: str
    key: str | None = None  # forms: the key of a key/value pair
    value_raw: str
    value: str | None


class ReviewDecision(BaseModel):
    decision_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    doc_id: str
    run_id: str  # the extraction run the reviewer saw
    action: ReviewAction
    doc_type: str  # as the reviewer confirmed or corrected it
    # The complete set of values after review (not a diff): apply-reviews needs no guessing.
    values: list[ReviewedValue] = Field(default_factory=list)
    reviewer: str
    note: str = ""
    decided_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
