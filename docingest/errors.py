"""Every exception docingest raises on purpose. Each carries the stage and a stable kind.

Stages raise these; the per-document runner turns them into ``StageError`` records (failures
are data). Only ``TransientError`` subclasses are retried.
"""

from __future__ import annotations

from collections.abc import Iterable

from docingest.schemas.records import FailureCause, Stage, StageError


class DocingestError(Exception):
    stage: Stage = Stage.VALIDATE
    kind: str = "error"
    transient: bool = False
    # The upload's own defect (corrupt, encrypted, empty, unsupported, too large, a bomb): the
    # document fails, but nothing is wrong with the pipeline, so the batch gate does not count it.
    input_defect: bool = False

    def __init__(self, message: str, *, page: int | None = None, stage: Stage | None = None):
        super().__init__(message)
        self.message = message
        self.page = page
        if stage is not None:
            self.stage = stage

    def to_record(self) -> StageError:
        return StageError(
            stage=self.stage, kind=self.kind, message=self.message, page=self.page,
            transient=self.transient,
        )


# -- input / discovery -------------------------------------------------------------------
class UnreadableFile(DocingestError):
    stage, kind = Stage.DISCOVER, "unreadable_file"
    input_defect = True


class NotARegularFile(DocingestError):
    """A FIFO, socket or device: opening one can block forever or never end; never opened."""

    stage, kind = Stage.DISCOVER, "not_regular_file"
    input_defect = True


class SymlinkOutsideSource(DocingestError):
    """A link that leaves the source folder (to /etc/passwd, another share): not followed
    unless --follow-symlinks, so a folder of uploads cannot make a run read the machine."""

    stage, kind = Stage.DISCOVER, "symlink_outside_source"
    input_defect = True


class UnencodableName(DocingestError):
    """A file name that is not valid UTF-8: the tables (and every warehouse) store text, so
    the name would be stored altered. The file is not read; its row shows the name escaped."""

    stage, kind = Stage.DISCOVER, "non_utf8_name"
    input_defect = True


class EmptyFile(DocingestError):
    stage, kind = Stage.VALIDATE, "empty_file"
    input_defect = True


class UnsupportedFileType(DocingestError):
    stage, kind = Stage.VALIDATE, "unsupported_file_type"
    input_defect = True


class FileTooLarge(DocingestError):
    stage, kind = Stage.VALIDATE, "file_too_large"
    input_defect = True


class EInvoiceUnreadable(DocingestError):
    """An XML e-invoice input that is malformed, hostile, too large or of an unknown profile."""

    stage, kind = Stage.VALIDATE, "e_invoice_unreadable"
    input_defect = True


# -- rendering -----------------------------------------------------------------------------
class CorruptDocument(DocingestError):
    stage, kind = Stage.RENDER, "corrupt_document"
    input_defect = True


class EncryptedDocument(DocingestError):
    stage, kind = Stage.RENDER, "encrypted_pdf"
    input_defect = True


class TooManyPages(DocingestError):
    stage, kind = Stage.RENDER, "too_many_pages"
    input_defect = True


# -- page validation -------------------------------------------------------------------------
class DecompressionBomb(DocingestError):
    stage, kind = Stage.VALIDATE, "decompression_bomb"
    input_defect = True


class ImageTooSmall(DocingestError):
    stage, kind = Stage.VALIDATE, "image_too_small"
    input_defect = True


class ImageTooLarge(DocingestError):
    stage, kind = Stage.VALIDATE, "image_too_large"
    input_defect = True


class UnsupportedImageFormat(DocingestError):
    stage, kind = Stage.VALIDATE, "unsupported_image_format"
    input_defect = True


# -- cost bounds (the upload's own cost: a page or time limit of docingest.config.InputLimits) --
class TimeLimitExceeded(DocingestError):
    stage, kind = Stage.OCR, "time_limit"
    input_defect = True


class OcrPageLimit(DocingestError):
    stage, kind = Stage.OCR, "ocr_page_limit"
    input_defect = True


# -- reading / extraction ------------------------------------------------------------------
class OcrFailed(DocingestError):
    stage, kind = Stage.OCR, "ocr_failed"


class EngineUnavailable(DocingestError):
    """An engine's binary or model is missing: a setup problem, never retried."""

    stage, kind = Stage.OCR, "engine_unavailable"


class WorkersCannotStart(DocingestError):
    """The worker processes exit before they are ready for a first document: a setup problem
    (an environment the spawned interpreter cannot import, a script that starts the run at
    import), never retried."""

    stage, kind = Stage.RENDER, "workers_cannot_start"


class NoTextFound(DocingestError):
    stage, kind = Stage.OCR, "no_text"


# -- VLM (permanent: recorded and sent to review, never retried) ----------------------------------
class VlmRefusal(DocingestError):
    """The model declined (the API's refusal field, a refusal sentence, or no expected key)."""

    stage, kind = Stage.EXTRACT, "vlm_refusal"


class VlmInvalidOutput(DocingestError):
    """Still not valid JSON for the schema after asking once more with the validation error."""

    stage, kind = Stage.EXTRACT, "vlm_invalid_output"


class VlmTruncated(DocingestError):
    """finish_reason == "length" even at the token ceiling: half an answer is never accepted."""

    stage, kind = Stage.EXTRACT, "vlm_truncated"


class VlmRequestRejected(DocingestError):
    """The endpoint refused the request itself (bad model name, auth, payload): a setup problem."""

    stage, kind = Stage.EXTRACT, "vlm_request_rejected"


class BudgetExhausted(DocingestError):
    """--budget-usd reached: no new requests; the document goes to review, not lost."""

    stage, kind = Stage.EXTRACT, "budget_exhausted"


# -- transient ---------------------------------------------------------------------------------
class TransientError(DocingestError):
    """Worth retrying: a timeout, a rate limit, a server hiccup, a busy resource."""

    kind = "transient"
    transient = True


class VlmRateLimited(TransientError):
    stage, kind = Stage.EXTRACT, "vlm_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, page: int | None = None):
        super().__init__(message, page=page)
        self.retry_after = retry_after


class VlmUnavailable(TransientError):
    """5xx, timeout or connection error: the endpoint may answer on the next attempt."""

    stage, kind = Stage.EXTRACT, "vlm_unavailable"


class WorkerCrashed(TransientError):
    """The worker process reading the document died (a library's segfault, the OOM killer);
    the documents it had in flight are retried in a new worker."""

    stage, kind = Stage.RENDER, "worker_crashed"


# -- run level (the run itself cannot proceed) ---------------------------------------------------
class RunError(Exception):
    """Bad arguments, unreadable source, unwritable output: the CLI exits non-zero."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, DocingestError) and exc.transient


class OutputLocked(RunError):
    """Another run holds the output folder: two runs into one OUT would both read the same
    history and could both accept one invoice."""


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


# Every kind an input defect can have, plus "no_pages" (a file without a single page).
INPUT_DEFECT_KINDS = frozenset({c.kind for c in _subclasses(DocingestError) if c.input_defect} | {"no_pages"})


def failure_cause(errors: Iterable[StageError]) -> FailureCause:
    """Why a document failed: its own defect (``input``) only when every error it recorded is
    one; anything else (an internal error, an engine, a timeout, retries exhausted) is the
    pipeline's (``system``)."""
    kinds = [e.kind for e in errors]
    if kinds and all(k in INPUT_DEFECT_KINDS for k in kinds):
        return FailureCause.INPUT
    return FailureCause.SYSTEM


class SuiteError(RunError):
    """An expectation suite in expectations/ is malformed: unknown expectation type (GX would
    drop it silently), a missing severity, or a table that does not exist."""


class ReviewError(Exception):
    """A review decision that cannot be applied: unknown document, field or action."""
