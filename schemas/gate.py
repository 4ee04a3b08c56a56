"""Records of the batch gate: one result per expectation, one verdict per run."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class GateSeverity(str, Enum):
    FAIL = "fail"  # a broken expectation keeps the run out of the published tables
    WARN = "warn"  # recorded in the manifest and Data Docs only


class ExpectationOutcome(BaseModel):
    suite: str
    expectation: str  # the GX expectation type
    column: str | None = None
    severity: GateSeverity
    success: bool
    # What was seen: unexpected count/percent or the observed value, and an exception if one.
    observed: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    # Not run: the view had fewer rows than the expectation's ``meta.min_rows``.
    skipped: bool = False


class GateVerdict(BaseModel):
    enabled: bool = True
    published: bool = True
    outcomes: list[ExpectationOutcome] = Field(default_factory=list)
    data_docs: str | None = None  # index.html, relative to OUT
    seconds: float = 0.0

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == GateSeverity.FAIL]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == GateSeverity.WARN]

    def reasons(self) -> list[str]:
        return [f"{o.suite}: {o.expectation}({o.column or ''}) {o.description}".strip()
                for o in self.failed]
