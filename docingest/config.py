"""Configuration, read once (env ``DOCINGEST_*`` + CLI flags) and passed down as typed options."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RendererName(str, Enum):
    PYPDFIUM2 = "pypdfium2"
    PDF2IMAGE = "pdf2image"


class OcrName(str, Enum):
    RAPIDOCR = "rapidocr"
    TESSERACT = "tesseract"


class ExtractorName(str, Enum):
    LOCAL = "local"  # embedded text-layer / OCR extraction, no network
    VLM = "vlm"  # every page through the vision-language model
    AUTO = "auto"  # per page: local when it is good enough, the VLM otherwise


class RunnerName(str, Enum):
    """Where the per-document tasks run."""

    AUTO = "auto"  # process for a local extraction of many documents, else thread (tasks/runners.py)
    THREAD = "thread"  # a thread pool in the flow's process
    PROCESS = "process"  # `workers` worker processes on this machine (Prefect's process pool)
    DASK = "dask"  # Dask worker processes: a local cluster of `workers` processes, or dask_address


class ImageDetail(str, Enum):
    LOW = "low"
    HIGH = "high"
    AUTO = "auto"


class StructuredOutputs(str, Enum):
    AUTO = "auto"  # try response_format json_schema, fall back to prompt-only JSON once rejected
    ALWAYS = "always"
    NEVER = "never"


class ModelPrice(BaseModel):
    """USD per million tokens, and how the model counts image tokens (tile formula)."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    image_base_tokens: int = 85
    image_tile_tokens: int = 170


# Published list prices (USD / 1M tokens) for common models; override or extend with
# DOCINGEST_VLM__PRICES='{"my-model": {"input_per_mtok": 1.0, ...}}'. Unknown models cost 0
# (tokens are still counted), so set a price before relying on --budget-usd.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o": ModelPrice(input_per_mtok=2.5, output_per_mtok=10.0),
    "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.6,
                              image_base_tokens=2833, image_tile_tokens=5667),
    "gpt-4.1": ModelPrice(input_per_mtok=2.0, output_per_mtok=8.0),
    "gpt-4.1-mini": ModelPrice(input_per_mtok=0.4, output_per_mtok=1.6),
}


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "docingest" / "vlm"


class VlmOptions(BaseModel):
    """The VLM request and its guard rails. The endpoint and key come from the openai
    client's own variables (OPENAI_BASE_URL, OPENAI_API_KEY)."""

    detail: ImageDetail = ImageDetail.HIGH
    max_tokens: int = Field(default=2048, ge=64)
    # A truncated answer is asked again once with twice the tokens, up to this ceiling.
    max_tokens_ceiling: int = Field(default=8192, ge=64)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_in_flight: int = Field(default=8, ge=1, le=256)
    requests_per_minute: float | None = Field(default=None, gt=0)
    structured_outputs: StructuredOutputs = StructuredOutputs.AUTO
    # The page's text layer / OCR words go into the prompt as a hint: fewer misreadings.
    include_page_text: bool = True
    cache: bool = True
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    # auto: an OCR page whose mean word confidence is below this goes to the VLM.
    auto_min_ocr_confidence: float = Field(default=0.85, ge=0, le=1)
    # auto: document types whose local extraction is weak go to the VLM page by page.
    auto_vlm_types: list[str] = Field(default_factory=lambda: ["form"])


class InputLimits(BaseModel):
    """Validation limits (the seed's validate stage). Violations are typed errors."""

    max_file_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    min_dimension: int = Field(default=32, ge=1)
    max_dimension: int = Field(default=20_000, ge=1)
    # Decoding more pixels than this is refused: a small PNG can inflate to gigabytes.
    max_image_pixels: int = Field(default=60_000_000, ge=1)
    max_pages: int = Field(default=2_000, ge=1)
    # Cost bounds: no single upload may hold a worker for long. A document still being read
    # at this many seconds stops (the pages read so far go to review); it is checked between
    # pages, so one page's own time (bounded by target_max_dimension: RapidOCR 1.9-2.9 s on
    # a 2400 px page of noise or nothing, measured) comes on top.
    max_document_seconds: float = Field(default=600.0, gt=0)
    # A page whose OCR took longer stops OCR for the rest of its document (tesseract is
    # killed at this limit; RapidOCR runs in-process and is checked when the page is done).
    max_page_seconds: float = Field(default=60.0, gt=0)
    # Pages OCRed per document; the pages beyond are not read and the document goes to review.
    max_ocr_pages: int = Field(default=200, ge=1)


class PreprocessOptions(BaseModel):
    """Page preprocessing (the seed's preprocess stage)."""

    dpi: int = Field(default=200, ge=36, le=600)
    target_max_dimension: int = Field(default=2400, ge=256)
    jpeg_quality: int = Field(default=85, ge=10, le=100)
    # A page whose text layer has fewer words than this is read by OCR instead.
    min_text_layer_words: int = 5
    # ... and so is one whose words are mostly not word-shaped (a scanner's garbled OCR layer):
    # born-digital dev pages score >= 0.87, garbled ones 0.44-0.81 (docingest/stages/legibility.py).
    min_legible_share: float = Field(default=0.85, ge=0, le=1)


class RoutingThresholds(BaseModel):
    min_classification_confidence: float = Field(default=0.6, ge=0, le=1)
    # Confidences are calibrated (docingest.stages.calibrate): 0.9 means about 9 in 10 right.
    min_field_confidence: float = Field(default=0.9, ge=0, le=1)
    # An optional field below the bar (a due date, a service period) is withheld instead of
    # sending a document whose required fields all pass to review: the value stays in the
    # ``fields`` table with ``withheld = true`` and is left out of the curated table.
    withhold_optional_fields: bool = True
    # Every value passing the field bar does not make a document right: 0.9 per field allows
    # one wrong field in ten. A document is accepted only when documents of its type, read
    # from the same source, whose values all passed were measured right at least this often,
    # as a one-sided 95% lower bound (Wilson) over the calibration table's ``documents``
    # (measured out of fold) and ``reviewed`` counts: 42 of 42 right is a bound of 0.94, so a
    # kind is accepted only once a few dozen of its documents were measured and all but very
    # few were right. Out of fold on the dev set, 0.9 accepts 29 of 68 e-invoices, all right,
    # and no receipts (0.85 would accept receipts at 0.86 precision): benchmarks in README.
    min_document_confidence: float = Field(default=0.9, ge=0, le=1)
    # Amount tolerance for total = subtotal + tax and total = sum(lines).
    amount_tolerance: float = Field(default=0.02, ge=0)
    # This share of the documents that would be accepted goes to review instead (reason
    # audit_sample), chosen by doc_id so a rerun picks the same ones: reviewed audits measure
    # the user's own documents (`docingest calibrate --from-reviews OUT`).
    audit_share: float = Field(default=0.02, ge=0, le=1)


class GateOptions(BaseModel):
    """The batch gate (Great Expectations suites in ``expectations/``). The ceilings feed the
    suites' ``$PARAMETER`` entries; whether a broken expectation quarantines the run or only
    warns is written in the suite (``meta.severity``)."""

    enabled: bool = True
    expectations_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parents[1] / "expectations")
    # Above this share of documents failed by the pipeline (failure_cause "system": internal
    # errors, engines, timeouts, retries exhausted) something systemic broke (fail-level).
    # Inputs rejected for their own defects are not counted: they are a warning.
    max_failed_share: float = Field(default=0.5, ge=0, le=1)
    # Above this share sent to review, someone should look at the batch (warn-level).
    max_review_share: float = Field(default=0.9, ge=0, le=1)
    # Invoices / receipts without a total (fail-level).
    max_null_total_share: float = Field(default=0.2, ge=0, le=1)
    # Invoices / receipts with a negative total that are not credit notes (fail-level).
    max_negative_total_share: float = Field(default=0.1, ge=0, le=1)
    # Invoices whose subtotal + tax differs from the total (warn-level).
    max_unbalanced_share: float = Field(default=0.4, ge=0, le=1)
    # Issue dates older than this are misreads, not invoices (fail-level with max_null_total_share).
    max_invoice_age_days: int = Field(default=36 * 365, ge=1)
    # A share-based expectation (a suite entry with meta.min_rows) needs this many rows in its
    # view: over fewer documents one bad one is a large share, and its own row rules already
    # hold it for review. The failed share (system failures) is judged on any run.
    min_rows_for_shares: int = Field(default=20, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOCINGEST_", env_nested_delimiter="__", extra="ignore"
    )

    renderer: RendererName = RendererName.PYPDFIUM2
    ocr: OcrName = OcrName.RAPIDOCR
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    runner: RunnerName = RunnerName.AUTO
    # An existing Dask cluster's scheduler (tcp://host:8786) for runner dask; None: a local cluster.
    dask_address: str | None = None
    task_retries: int = Field(default=2, ge=0)
    retry_delay_seconds: float = Field(default=2.0, ge=0)
    limits: InputLimits = Field(default_factory=InputLimits)
    # Links in the source that point outside it are recorded, not followed, unless this is set:
    # a folder of uploads must not make a run read the rest of the machine.
    follow_symlinks: bool = False
    preprocess: PreprocessOptions = Field(default_factory=PreprocessOptions)
    routing: RoutingThresholds = Field(default_factory=RoutingThresholds)
    show_progress: bool = True
    extractor: ExtractorName = ExtractorName.AUTO
    vlm_model: str | None = None  # DOCINGEST_VLM_MODEL / --vlm-model
    budget_usd: float | None = Field(default=None, ge=0)  # DOCINGEST_BUDGET_USD / --budget-usd
    vlm: VlmOptions = Field(default_factory=VlmOptions)
    gate: GateOptions = Field(default_factory=GateOptions)
    # Fitted by `docingest eval --fit-calibration`; a missing file means raw confidences.
    calibration_file: Path | None = Field(
        default_factory=lambda: Path(__file__).resolve().parent / "calibration.json")

    def vlm_endpoint_configured(self) -> bool:
        return bool(os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"))

    def effective_extractor(self) -> ExtractorName:
        """``auto`` means local when no endpoint or model is configured."""
        if self.extractor == ExtractorName.AUTO and not (
            self.vlm_endpoint_configured() and self.vlm_model
        ):
            return ExtractorName.LOCAL
        return self.extractor

    def effective_workers(self) -> int:
        """Threads waiting on a remote model cost nothing: let enough documents run to keep
        ``max_in_flight`` requests busy. Twice as many, because a document also spends time
        outside requests (rendering, its first page asked alone when the VLM classifies);
        measured: 5.8 pages/s with 8 workers, 6.4 with 16 (benchmarks/vlm_throughput.py)."""
        if self.workers_set or self.effective_extractor() == ExtractorName.LOCAL:
            return self.workers
        return max(self.workers, 2 * self.vlm.max_in_flight)

    @property
    def workers_set(self) -> bool:
        return "workers" in self.model_fields_set
