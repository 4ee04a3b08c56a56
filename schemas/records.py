"""Records that flow between stages. Stages take and return these; nothing else crosses."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from pydantic import BaseModel, Field

from docingest.schemas.fields import DocType

# A bounding box normalized to the page: (x0, y0, x1, y1), origin top-left, each in [0, 1].
BBox = tuple[float, float, float, float]


class TextSource(str, Enum):
    TEXT_LAYER = "text_layer"
    OCR = "ocr"
    VLM = "vlm"
    E_INVOICE = "e_invoice"  # the invoice XML embedded in a ZUGFeRD / Factur-X PDF


class Status(str, Enum):
    ACCEPTED = "accepted"
    # A re-issue of an accepted invoice that reads the same field for field: nothing new to
    # load and nothing for a person to check. The row names its original (duplicate_of).
    DUPLICATE = "duplicate"
    NEEDS_REVIEW = "needs_review"
    FAILED = "failed"


class FailureCause(str, Enum):
    """Why a document failed. The batch gate counts only ``system`` failures: an upload's own
    defect says nothing about the health of the pipeline."""

    INPUT = "input"  # corrupt, encrypted, empty, unsupported, too large, a decompression bomb
    SYSTEM = "system"  # an internal error, an engine crash, a timeout, retries exhausted


class Stage(str, Enum):
    DISCOVER = "discover"
    RENDER = "render"
    VALIDATE = "validate"
    OCR = "ocr"
    CLASSIFY = "classify"
    EXTRACT = "extract"
    RULES = "rules"
    ROUTE = "route"
    WRITE = "write"


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


# Words are a plain slotted dataclass rather than pydantic: a 500-page PDF holds a few
# hundred thousand of them, and a pydantic model per word costs ~10x the memory.
@dataclass(slots=True, frozen=True)
class Word:
    text: str
    bbox: BBox
    confidence: float  # 1.0 for text-layer words
    line: int  # line index within the page, in reading order

    @staticmethod
    def clean(text: str) -> str:
        """NFKC: OCR and PDFs print fullwidth brackets, ligatures and odd spaces that every
        label pattern would otherwise miss ("（incl GST）", "ﬁnal")."""
        return unicodedata.normalize("NFKC", text)


# A slotted dataclass like Word: a run holds one per input file from discovery to the end, and
# a pydantic model costs about three times the memory.
@dataclass(slots=True, frozen=True)
class SourceDocument:
    """One distinct input: all paths that hold the same bytes share one doc_id."""

    doc_id: str  # sha256 of the file bytes
    path: str  # canonical path (first in sorted order)
    paths: tuple[str, ...]
    size_bytes: int
    media_type: str | None  # sniffed from the bytes, None when unrecognised

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class StageError(BaseModel):
    stage: Stage
    kind: str  # the typed exception's kind, e.g. "encrypted_pdf"
    message: str
    page: int | None = None  # 1-based
    transient: bool = False


class PageStrategy(str, Enum):
    """Who extracted a page's fields (``auto`` chooses per page)."""

    TEXT_LAYER = "text_layer"
    OCR = "ocr"
    VLM = "vlm"


class PageInfo(BaseModel):
    page: int  # 1-based
    width_px: int = 0
    height_px: int = 0
    text_source: TextSource | None = None
    strategy: PageStrategy | None = None
    word_count: int = 0
    mean_confidence: float | None = None
    strategy_reason: str = ""
    render_ms: float = 0.0
    read_ms: float = 0.0
    hidden_words: int = 0  # text-layer words invisible on the page, not read as evidence


@dataclass(slots=True)
class PageText:
    """What one page says: its words with boxes, from the text layer or OCR."""

    page: int
    source: TextSource
    words: list[Word]
    # Text-layer words nobody sees on the rendered page: not evidence, kept to tell whether
    # they would have changed what was read (docingest.stages.hidden_text).
    hidden: list[Word] = field(default_factory=list)

    def lines(self) -> list[list[Word]]:
        by_line: dict[int, list[Word]] = {}
        for word in self.words:
            by_line.setdefault(word.line, []).append(word)
        return [sorted(ws, key=lambda w: w.bbox[0]) for _, ws in sorted(by_line.items())]

    def text(self) -> str:
        return "\n".join(" ".join(w.text for w in line) for line in self.lines())


class Classification(BaseModel):
    doc_type: DocType
    confidence: float = Field(ge=0.0, le=1.0)
    scores: dict[str, float] = Field(default_factory=dict)


class ExtractedValue(BaseModel):
    field_name: str
    value_raw: str  # as printed
    value: str | None  # normalized: ISO date, decimal amount, ISO-4217 code; None if not parseable
    confidence: float = Field(ge=0.0, le=1.0)  # calibrated (docingest.stages.calibrate)
    confidence_raw: float | None = None  # before calibration: what the extractor said
    page: int | None = None
    bbox: BBox | None = None
    grounded: bool = False  # the raw text is found in that page's words: seen, not inferred
    source: TextSource = TextSource.TEXT_LAYER
    key: str | None = None  # forms: the key of a key/value pair
    # VLM values: whether the local extractor found the same normalized value (None: it did
    # not run on that page or found nothing to compare).
    agrees_with_local: bool | None = None
    # How the local extractor found the value ("party_block", "invoice_label", ...): the
    # calibration table keys on it, because the ways of finding a field differ in reliability.
    method: str | None = None
    # An optional field below the acceptance bar on a document of a type with required fields:
    # kept here for inspection and review, but not asserted (docingest.stages.route).
    withheld: bool = False
    # What else speaks for the value (docingest.stages.evidence): whole_token / partial_token,
    # repeated, reconciles, line_items_sum.
    evidence: list[str] = Field(default_factory=list)


class LineItem(BaseModel):
    line_no: int
    description: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    amount: str | None = None
    page: int | None = None
    confidence: float = 0.0


class Extraction(BaseModel):
    doc_type: DocType
    values: list[ExtractedValue] = Field(default_factory=list)
    line_items: list[LineItem] = Field(default_factory=list)
    # A sum printed on the document outside the item rows that they add up to ("Positionssumme
    # 457,20"), as the reader found it: document-level charges and discounts may put the
    # subtotal elsewhere, and the line-sum rule checks the items against this too.
    line_items_sum: str | None = None
    # Why item rows that were read are not delivered (they add up to no printed sum).
    line_items_withheld: str | None = None
    # A credit note ("Gutschrift", "avoir") legitimately carries negative amounts.
    credit_note: bool = False

    def get(self, name: str) -> ExtractedValue | None:
        return next((v for v in self.values if v.field_name == name), None)


class RuleResult(BaseModel):
    rule_id: str
    severity: Severity
    passed: bool
    message: str


class VlmUsage(BaseModel):
    """What a document cost at the VLM endpoint."""

    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_prompt_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: "VlmUsage") -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class DocumentReliability(BaseModel):
    """What acceptance rested on: documents of this kind (type|source) measured with all values
    passing, and the one-sided 95% lower bound of the share of them that were right."""

    kind: str
    n: int
    lower_bound: float


class EInvoiceInfo(BaseModel):
    """The embedded e-invoice a document was read from."""

    syntax: str  # CII
    profile: str  # MINIMUM, BASIC WL, BASIC, EN16931, EXTENDED, XRECHNUNG
    guideline: str  # the guideline id as the XML states it (carries the version)
    type_code: str  # 380 invoice, 381 credit note, 384 corrected invoice, ...


class DocumentResult(BaseModel):
    """Everything the pipeline learned about one document; the writer turns it into rows."""

    doc_id: str | None
    source_path: str
    source_paths: list[str]
    media_type: str | None = None
    size_bytes: int = 0
    page_count: int = 0
    pages: list[PageInfo] = Field(default_factory=list)
    classification: Classification | None = None
    extraction: Extraction | None = None
    rule_results: list[RuleResult] = Field(default_factory=list)
    status: Status = Status.FAILED
    duplicate_of: str | None = None  # doc_id of the accepted original (status duplicate)
    review_reasons: list[str] = Field(default_factory=list)
    errors: list[StageError] = Field(default_factory=list)
    vlm_usage: VlmUsage = Field(default_factory=VlmUsage)
    budget_exhausted: bool = False
    reliability: DocumentReliability | None = None
    e_invoice: EInvoiceInfo | None = None
    processed_at: datetime | None = None
    duration_ms: float = 0.0
    # Milliseconds in classify, extract (fields, e-invoice, VLM, evidence, calibration) and
    # validate (rules); rendering and reading are per page (PageInfo.render_ms, read_ms).
    stage_ms: dict[str, float] = Field(default_factory=dict)


class PriorDocument(BaseModel):
    """A document already in the published tables: what duplicate checks compare against."""

    doc_id: str
    source_paths: list[str]
    run_id: str  # the latest published run that holds it
    # The first published run that held it: of several copies of an invoice, the one published
    # first stays the original, whatever later runs see.
    first_run_id: str | None = None
    status: str | None = None
    vendor_name: str | None = None
    invoice_number: str | None = None
    # Every field value read on the document (field name -> its values, sorted), to tell a
    # re-issue of the same invoice from a different invoice under a reused number.
    values: dict[str, list[str]] = Field(default_factory=dict)


@dataclass(slots=True)
class PageInput:
    """What an engine reads: one page's text-layer words and, when rendered, its image."""

    page: int  # 1-based
    text_layer: list[Word]
    image: object | None = None  # PIL.Image.Image, preprocessed; None when not rendered
    time_limit: float | None = None  # seconds an engine that can stop itself may take
