"""Records of a run as a whole: what makes a document's result reusable, what the flow keeps of
each document while the run goes on, and what the duplicate check decides."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from docingest.schemas.fields import DocType
from docingest.schemas.records import FailureCause, RuleResult, Status, VlmUsage


class ProcessingKey(BaseModel, frozen=True):
    """Everything that changes a document's result besides its bytes. A document whose bytes
    were processed under the same key is not processed again: its stored result is reused."""

    digest: str
    # What went into the digest (package, code, libraries, calibration table, settings), so a
    # manifest says why a run reprocessed what an earlier one had done.
    components: dict[str, Any]


class DocumentSummary(BaseModel):
    """What the flow holds in memory per document; the full result is in the result store.
    Small on purpose: a run of many thousands of documents must not grow with their pages,
    fields and rule results."""

    doc_id: str | None  # None: a file that could not even be read
    source_path: str
    source_paths: list[str]
    doc_type: DocType | None = None
    status: Status
    review_reasons: list[str] = Field(default_factory=list)
    failure_cause: FailureCause | None = None  # set on failed documents only
    error_kinds: list[str] = Field(default_factory=list)
    page_count: int = 0
    pages_by_strategy: dict[str, int] = Field(default_factory=dict)
    duration_ms: float = 0.0
    stage_ms: dict[str, float] = Field(default_factory=dict)  # render, text, ocr, classify, extract, validate
    vlm_usage: VlmUsage = Field(default_factory=VlmUsage)
    budget_exhausted: bool = False
    # The result was computed by an earlier run under the same processing key.
    reused: bool = False
    # Invoices and receipts: every field value read (field -> sorted values), for the duplicate
    # check, which compares a re-issue with its original field for field.
    values: dict[str, list[str]] = Field(default_factory=dict)


class DuplicateVerdict(BaseModel):
    """What the duplicate check decided for one invoice or receipt."""

    rule: RuleResult  # the ``duplicates.invoice`` result
    status: Status  # the document's status after the check
    duplicate_of: str | None = None  # status duplicate: the accepted original
    review_reason: str | None = None  # added to the document's review reasons
