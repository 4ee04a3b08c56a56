"""One document, start to finish: render → read → classify → extract → validate → route.

This is the body of the per-document Prefect task, kept free of Prefect so that it can be
tested and profiled as a plain function. Expected failures (typed ``DocingestError``) become
``StageError`` records; a transient error is re-raised so that the task can retry it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from docingest.config import ExtractorName, Settings
from docingest.engines.base import PageEngine
from docingest.engines import LazyOcrEngine, TextLayerEngine
from docingest.engines.vlm import PageAnswer, VlmEngine, build_client
from docingest.errors import BudgetExhausted, DocingestError, EInvoiceUnreadable, OcrPageLimit, TimeLimitExceeded
from docingest.progress import Laps
from docingest.stages.calibrate import calibrate_extraction, document_reliability, load_table
from docingest.stages.classify import classify_document
from docingest.stages.e_invoice import (
    MAX_XML_BYTES,
    EInvoiceError,
    as_extraction,
    page_mismatches,
    parse_e_invoice,
)
from docingest.stages.evidence import annotate_evidence
from docingest.stages.extract import extract_fields
from docingest.stages.legibility import legible_share
from docingest.stages.hidden_text import hidden_text_reasons
from docingest.stages.prepare import encode_jpeg, is_blank, preprocess_page_image, validate_page_image
from docingest.stages.render import OpenDocument, open_document
from docingest.stages.route import AUDIT_REASON, audit_selected, route_document, withhold_unverified
from docingest.stages.rules import apply_rules
from docingest.stages.strategy import PagePlan, plan_pages
from docingest.stages.vlm_fields import combine, compare_with_local, page_values, vlm_classification
from docingest.schemas.calibration import CalibrationTable
from docingest.schemas.fields import DocType
from docingest.schemas.records import (
    Classification,
    DocumentReliability,
    DocumentResult,
    EInvoiceInfo,
    Extraction,
    PageInfo,
    PageInput,
    PageStrategy,
    PageText,
    SourceDocument,
    Stage,
    StageError,
    Status,
    VlmUsage,
)

@dataclass
class Engines:
    """The engines of a run, built once by the flow and passed to every document."""

    text_layer: PageEngine
    ocr: PageEngine
    vlm: VlmEngine | None = None  # only when the extractor is vlm/auto and an endpoint is set
    calibration: CalibrationTable | None = None  # read once per run from settings.calibration_file

def build_engines(settings: Settings, cpu_threads: int | None = None) -> Engines:
    """The engines a run's settings choose: the text layer, the OCR engine from its registry
    (built on the first page that needs OCR, with ``cpu_threads`` threads: this process's share
    of the cores, None for all), the calibration table, and the VLM engine with its client when
    the extractor needs one."""
    engines = Engines(text_layer=TextLayerEngine(), ocr=LazyOcrEngine(settings.ocr, cpu_threads),
                      calibration=load_table(settings.calibration_file))
    if settings.effective_extractor() != ExtractorName.LOCAL:
        engines.vlm = VlmEngine.from_settings(settings, build_client(settings.vlm))
    return engines


def process_document(source: SourceDocument, settings: Settings, engines: Engines) -> DocumentResult:
    started = time.perf_counter()
    result = DocumentResult(
        doc_id=source.doc_id, source_path=source.path, source_paths=list(source.paths),
        media_type=source.media_type, size_bytes=source.size_bytes,
    )
    notes: list[str] = []  # review reasons found while reading (hidden text, a polyglot PDF)
    attached: list[bytes] = []  # an embedded e-invoice XML
    laps: Laps | None = None  # classify, extract, validate (reading is timed per page)
    try:
        if source.media_type == "application/xml":
            _read_xml_invoice(source, result)
        pages = [] if source.media_type == "application/xml" else _read_pages(
            source, settings, engines, result, notes, attached)
        if result.extraction is not None:  # an XML e-invoice: read without pages
            calibrate_extraction(result.extraction, engines.calibration)
            result.rule_results = apply_rules(result.extraction, settings.routing, datetime.now(timezone.utc).date())
        elif pages:
            laps = Laps()
            result.classification = classify_document(pages, result.pages)
            laps.lap("classify")
            result.extraction = extract_fields(pages, result.classification.doc_type)
            notes += hidden_text_reasons(pages, result.pages, result.extraction)
            if not (attached and _read_e_invoice(attached[0], pages, result, notes)):
                extractor = settings.effective_extractor() if engines.vlm else ExtractorName.LOCAL
                plan = plan_pages(extractor, result.pages, result.classification, settings.vlm,
                                  settings.routing)
                if plan.vlm_pages:
                    _extract_with_vlm(source, settings, engines.vlm, plan, pages, result)
            annotate_evidence(pages, result.extraction, settings.routing.amount_tolerance)
            calibrate_extraction(result.extraction, engines.calibration)
            laps.lap("extract")
            result.rule_results = apply_rules(
                result.extraction, settings.routing, datetime.now(timezone.utc).date()
            )
            laps.lap("validate")
    except DocingestError as exc:
        if exc.transient:
            raise
        result.errors.append(exc.to_record())
    except Exception as exc:  # a bug or a library surprise: isolate it to this document
        result.errors.append(StageError(
            stage=Stage.EXTRACT if result.classification else Stage.RENDER,
            kind="internal_error", message=f"{type(exc).__name__}: {exc}",
        ))
    if laps is not None:
        result.stage_ms = {stage: round(seconds * 1000, 2) for stage, seconds in laps.seconds.items()}
    withhold_unverified(result.extraction, settings.routing)
    reliability = (document_reliability(engines.calibration, result.extraction)
                   if result.extraction is not None else None)
    if reliability is not None:
        result.reliability = DocumentReliability(kind=reliability[0], lower_bound=reliability[1], n=reliability[2])
    result.status, result.review_reasons = route_document(
        result.classification, result.extraction, result.rule_results, result.errors,
        settings.routing, extra_reasons=notes + (["budget_exhausted"] if result.budget_exhausted else []),
        document_reliability=reliability,
    )
    if result.status == Status.ACCEPTED and audit_selected(result.doc_id, settings.routing.audit_share):
        result.status, result.review_reasons = Status.NEEDS_REVIEW, [AUDIT_REASON]
    result.processed_at = datetime.now(timezone.utc)
    result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return result

@dataclass
class _Budget:
    """What a document may still spend: its deadline and its OCR pages."""

    deadline: float
    ocr_pages_left: int

    def stop_ocr(self) -> None:
        self.ocr_pages_left = 0


def _read_xml_invoice(source: SourceDocument, result: DocumentResult) -> None:
    """An e-invoice that is only XML (XRechnung, a Factur-X XML on its own): the XML is the
    invoice, there is no page to check it against. XML that cannot be used fails the document."""
    if source.size_bytes > MAX_XML_BYTES:
        raise EInvoiceUnreadable(f"e-invoice XML is {source.size_bytes:,} bytes, more than {MAX_XML_BYTES:,}")
    with open(source.path, "rb") as fh:
        data = fh.read(MAX_XML_BYTES + 1)
    try:
        invoice = parse_e_invoice(data)
    except EInvoiceError as exc:
        raise EInvoiceUnreadable(str(exc)) from exc
    result.classification = Classification(doc_type=DocType.INVOICE, confidence=1.0, scores={"invoice": 1.0})
    result.extraction = as_extraction(invoice, page=None)
    result.e_invoice = EInvoiceInfo(syntax=invoice.syntax, profile=invoice.profile,
                                    guideline=invoice.guideline, type_code=invoice.type_code)


def _read_e_invoice(xml: bytes, pages: list[PageText], result: DocumentResult, notes: list[str]) -> bool:
    """Use the embedded invoice XML as the document's extraction, checked against the page.
    XML that cannot be used leaves the page's reading in place, with a warning; False then."""
    try:
        invoice = parse_e_invoice(xml)
    except EInvoiceError as exc:
        result.errors.append(StageError(stage=Stage.EXTRACT, kind="e_invoice_unreadable",
                                        message=f"{exc}; the page was read instead"))
        return False
    result.classification = Classification(doc_type=DocType.INVOICE, confidence=1.0,
                                           scores={"invoice": 1.0})
    result.extraction = as_extraction(invoice, page=pages[0].page)
    result.e_invoice = EInvoiceInfo(syntax=invoice.syntax, profile=invoice.profile,
                                    guideline=invoice.guideline, type_code=invoice.type_code)
    notes += [f"e_invoice_mismatch:{name}" for name in page_mismatches(invoice, pages)]
    return True


def _read_pages(
    source: SourceDocument, settings: Settings, engines: Engines, result: DocumentResult,
    reasons: list[str], attached: list[bytes] | None = None,
) -> list[PageText]:
    """Read every page, one page image in memory at a time. Page errors are recorded and the
    remaining pages still read; a document none of whose pages could be read fails. A
    document over its time limit stops between pages; its pages read so far count."""
    limits = settings.limits
    doc: OpenDocument = open_document(source, settings.renderer, settings.preprocess, limits)
    budget = _Budget(time.monotonic() + limits.max_document_seconds, limits.max_ocr_pages)
    pages: list[PageText] = []
    reasons.extend(doc.review_reasons)
    if attached is not None and doc.e_invoice_xml is not None:
        attached.append(doc.e_invoice_xml)
    try:
        result.page_count = doc.page_count
        for index in range(doc.page_count):
            if time.monotonic() > budget.deadline:
                result.errors.append(TimeLimitExceeded(
                    f"stopped at page {index + 1} of {doc.page_count}: reading took more than "
                    f"{limits.max_document_seconds:g} s (limits.max_document_seconds)", page=index + 1).to_record())
                break
            info = PageInfo(page=index + 1)
            result.pages.append(info)
            try:
                pages.append(_read_page(doc, index, info, settings, engines, budget, result))
            except DocingestError as exc:
                if exc.transient:
                    raise
                exc.page = exc.page or index + 1
                result.errors.append(exc.to_record())
    finally:
        doc.close()
    if not pages and not result.errors:
        result.errors.append(StageError(stage=Stage.RENDER, kind="no_pages", message="no page could be read"))
    if not pages:
        return []
    return pages

def _read_page(doc: OpenDocument, index: int, info: PageInfo, settings: Settings,
               engines: Engines, budget: _Budget, result: DocumentResult) -> PageText:
    page_no = index + 1
    t0 = time.perf_counter()
    layer = doc.read_text(index)
    words, hidden = layer.words, layer.hidden
    note = ""
    if hidden and not words and layer.has_image:
        # A scan's own OCR layer: invisible by design, over the picture it was read from.
        words, hidden = hidden, []
        note = "; the layer is invisible text over an image (a scan's OCR layer)"
    elif hidden:
        info.hidden_words = len(hidden)
        note = f"; {len(hidden)} hidden text-layer words not read"

    def read_layer() -> PageText:
        text = engines.text_layer.read(PageInput(page=page_no, text_layer=words))
        text.hidden = hidden
        return text

    min_words = settings.preprocess.min_text_layer_words
    min_legible = settings.preprocess.min_legible_share
    legible = legible_share(w.text for w in words)
    if len(words) >= min_words and legible >= min_legible:
        info.read_ms = round((time.perf_counter() - t0) * 1000, 2)
        text = read_layer()
        info.strategy_reason = f"text layer has {len(words)} words (>= {min_words})" + note
        return _finish(info, text)
    if not layer.draws:
        info.strategy_reason = "blank page (draws nothing): not rendered" + note
        return _finish(info, read_layer())
    if budget.ocr_pages_left <= 0:
        info.strategy_reason = "not OCRed: the document's OCR limit was reached" + note
        return _finish(info, read_layer())

    image = doc.render(index)
    validate_page_image(image, settings.limits, page_no)
    image = preprocess_page_image(image, settings.preprocess)
    info.width_px, info.height_px = image.size
    if is_blank(image):
        info.render_ms = round((time.perf_counter() - t0) * 1000, 2)
        info.strategy_reason = "blank page: not OCRed" + note
        return _finish(info, read_layer())
    budget.ocr_pages_left -= 1
    if budget.ocr_pages_left == 0 and index + 1 < doc.page_count:
        result.errors.append(OcrPageLimit(
            f"OCR stops after page {page_no}: the limit is {settings.limits.max_ocr_pages} OCR pages per "
            "document (limits.max_ocr_pages); later pages without a text layer are not read", page=page_no).to_record())
    t1 = time.perf_counter()
    info.render_ms = round((t1 - t0) * 1000, 2)
    text = engines.ocr.read(PageInput(page=page_no, text_layer=words, image=image,
                                      time_limit=settings.limits.max_page_seconds))
    text.hidden = hidden
    del image  # the page image is not kept beyond its OCR
    info.read_ms = round((time.perf_counter() - t1) * 1000, 2)
    if info.read_ms > settings.limits.max_page_seconds * 1000 and budget.ocr_pages_left > 0:
        budget.stop_ocr()
        result.errors.append(TimeLimitExceeded(
            f"OCR of page {page_no} took {info.read_ms / 1000:.1f} s, more than "
            f"{settings.limits.max_page_seconds:g} s (limits.max_page_seconds): no more pages of this "
            "document are OCRed", page=page_no).to_record())
    if len(words) < min_words:
        info.strategy_reason = f"text layer has {len(words)} words (< {min_words}): OCR with {engines.ocr.name}" + note
        if len(text.words) < len(words):  # OCR saw less than the sparse text layer: keep the layer
            text = read_layer()
            info.strategy_reason += "; kept the text layer, OCR found fewer words"
        return _finish(info, text)
    # A garbled layer (a scanner's own OCR): keep whichever reading has more legible words.
    info.strategy_reason = (f"text layer is garbled ({legible:.0%} legible words < {min_legible:.0%}): "
                            f"OCR with {engines.ocr.name}" + note)
    ocr_legible = legible_share(w.text for w in text.words)
    if ocr_legible <= legible:
        text = read_layer()
        info.strategy_reason += f"; kept the text layer, OCR read {ocr_legible:.0%} legible"
    return _finish(info, text)

def _extract_with_vlm(source: SourceDocument, settings: Settings, vlm: VlmEngine, plan: PagePlan,
                      pages: list[PageText], result: DocumentResult) -> None:
    """Send the planned pages to the VLM and fold the answers into the result.

    The first page goes alone when the VLM also classifies (the other pages need the type);
    the rest go concurrently, each rendered only when its request starts, so at most
    ``max_in_flight`` page images are in memory. A page whose request fails keeps its local
    values and records the error; a transient failure is re-raised after the other pages
    finished (their answers are cached, so the task's retry only repeats the failed ones).
    """
    local_cls, local_ext = result.classification, result.extraction
    by_page = {p.page: p for p in pages}
    info = {p.page: p for p in result.pages}
    doc_type, classification = local_cls.doc_type, local_cls
    answers: dict[int, PageAnswer] = {}
    transient: list[DocingestError] = []
    lock = threading.Lock()
    doc = open_document(source, settings.renderer, settings.preprocess, settings.limits)

    def ask(page_no: int, ask_type: DocType | None) -> None:
        usage = VlmUsage()
        try:
            if result.budget_exhausted:
                raise BudgetExhausted("budget reached earlier in this document")
            image = doc.render(page_no - 1)
            validate_page_image(image, settings.limits, page_no)
            image = preprocess_page_image(image, settings.preprocess)
            size, jpeg = image.size, encode_jpeg(image, settings.preprocess)
            del image
            answer = vlm.extract_page(page=page_no, jpeg=jpeg, size=size, doc_type=ask_type,
                                      page_text=by_page[page_no].text(), usage=usage)
            with lock:
                answers[page_no] = answer
                info[page_no].strategy_reason += "; answer from cache" if answer.from_cache else ""
        except BudgetExhausted:
            with lock:
                result.budget_exhausted = True
                _back_to_local(info[page_no], "budget exhausted")
        except DocingestError as exc:
            with lock:
                _back_to_local(info[page_no], f"VLM failed ({exc.kind})")
                if exc.transient:
                    transient.append(exc)
                else:
                    exc.page = exc.page or page_no
                    result.errors.append(exc.to_record())
        finally:
            with lock:
                result.vlm_usage.add(usage)

    def ask_all(jobs: list[tuple[int, DocType | None]]) -> None:
        if jobs:
            workers = min(len(jobs), vlm.limiter.max_in_flight)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlm-page") as pool:
                list(pool.map(lambda job: ask(*job), jobs))

    try:
        todo = list(plan.vlm_pages)
        if plan.classify_with_vlm:
            first = todo.pop(0)
            # Speculate: when the local classifier is confident, the other pages are asked at
            # the same time with its type, and only asked again if the VLM disagrees.
            speculate = local_cls.doc_type != DocType.OTHER and (
                local_cls.confidence >= settings.routing.min_classification_confidence)
            ask_all([(first, None)] + ([(n, local_cls.doc_type) for n in todo] if speculate else []))
            if first in answers:
                answer = answers[first].answer
                doc_type = answer.doc_type
                classification = vlm_classification(doc_type, answer.doc_type_confidence, local_cls)
            if speculate and doc_type == local_cls.doc_type:
                todo = []
            for n in todo:
                answers.pop(n, None)
        if doc_type != DocType.OTHER:
            ask_all([(n, doc_type) for n in todo])
    finally:
        doc.close()
    if transient:
        raise transient[0]

    local = local_ext if doc_type == local_ext.doc_type else extract_fields(pages, doc_type)
    per_page = [page_values(answers[n].answer, doc_type, by_page[n]) for n in sorted(answers)]
    extraction: Extraction = combine(doc_type, local, set(answers), per_page)
    compare_with_local(extraction, local)
    result.classification: Classification = classification
    result.extraction = extraction


def _back_to_local(info: PageInfo, why: str) -> None:
    info.strategy = PageStrategy(info.text_source.value) if info.text_source else None
    info.strategy_reason += f"; {why}: local values kept"


def _finish(info: PageInfo, text: PageText) -> PageText:
    info.text_source = text.source
    info.word_count = len(text.words)
    if text.words:
        info.mean_confidence = round(sum(w.confidence for w in text.words) / len(text.words), 4)
    return text

def rejected_result(path: str, error: StageError) -> DocumentResult:
    """An input discovery did not read (unreadable, not a regular file, a link out of the
    source, a name that cannot be stored, too large): it still gets its documents row."""
    return DocumentResult(
        doc_id=None, source_path=path, source_paths=[path], status=Status.FAILED,
        review_reasons=[f"discover:{error.kind}"], errors=[error],
        processed_at=datetime.now(timezone.utc),
    )

def crashed_result(source: SourceDocument, message: str, kind: str = "task_failed") -> DocumentResult:
    """A document whose task failed after its retries: recorded, never dropped."""
    return failed_result(source, StageError(stage=Stage.EXTRACT, kind=kind, message=message), "task")


def failed_result(source: SourceDocument, error: StageError, reason_prefix: str | None = None) -> DocumentResult:
    """A document that failed with ``error`` before any result of its own (its task, its worker)."""
    return DocumentResult(
        doc_id=source.doc_id, source_path=source.path, source_paths=list(source.paths),
        media_type=source.media_type, size_bytes=source.size_bytes, status=Status.FAILED,
        review_reasons=[f"{reason_prefix or error.stage.value}:{error.kind}"], errors=[error],
        processed_at=datetime.now(timezone.utc),
    )
