"""A confidence calibration table: what a raw confidence has meant, measured on labelled data.

Keyed by field name and value source (``text_layer`` / ``ocr`` / ``vlm``), and again by the
method that found the value (a party block, an invoice-number label ...), each entry lists raw
confidence buckets with how many values fell in them and how many of those were right. Fitted by
``docingest eval LABELS --fit-calibration FILE`` from the raw confidences of a run, together
with ``documents``: per document type and source, how often a document whose values all passed
was right in every labelled field.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

# Raw-confidence bucket edges; coarse on purpose: a few hundred labelled values per field
# cannot support a finer curve without fitting noise.
BUCKET_EDGES = (0.0, 0.5, 0.7, 0.85, 0.95, 1.0001)


class Bucket(BaseModel):
    low: float
    high: float
    n: int
    right: int


class DocumentCount(BaseModel):
    """Documents of one type, read from one source, whose every value passed the field bar
    when the table was fitted (``n``), and how many of those had every labelled field right."""

    n: int
    right: int


class CalibrationTable(BaseModel):
    fitted_on: str = ""
    min_count: int = 10  # fewer values than this in a bucket: not enough evidence
    # "field|source" (all values of the field) and "field|source|method" -> buckets
    entries: dict[str, list[Bucket]] = Field(default_factory=dict)
    # "doc_type|source" -> documents: field confidences bound each value, not the document; a
    # document is right only when all its values are, and this is how often that held.
    documents: dict[str, DocumentCount] = Field(default_factory=dict)
    # "doc_type|source" -> the user's own documents that would have been accepted (audit
    # samples, or held only by the document bar) and were reviewed: approved unchanged counts
    # right. Written by `docingest calibrate --from-reviews OUT`, recomputed from the decision
    # log each time; routing bounds the sum of both counts.
    reviewed: dict[str, DocumentCount] = Field(default_factory=dict)

    @staticmethod
    def key(field_name: str, source: str, method: str | None = None) -> str:
        return f"{field_name}|{source}" + (f"|{method}" if method else "")

    @staticmethod
    def document_key(doc_type: str, source: str) -> str:
        return f"{doc_type}|{source}"

    def document_count(self, kind: str) -> DocumentCount:
        measured = self.documents.get(kind, DocumentCount(n=0, right=0))
        reviewed = self.reviewed.get(kind, DocumentCount(n=0, right=0))
        return DocumentCount(n=measured.n + reviewed.n, right=measured.right + reviewed.right)

    def document_kinds(self) -> list[str]:
        return sorted(set(self.documents) | set(self.reviewed))

    def sources(self) -> set[str]:
        return {k.split("|")[1] for k in self.entries}
