"""One document, start to finish: render → read → classify → extract → validate → route.

This is the body of the per-document Prefect task, kept free of Prefect so that it can be
tested and profiled as a plain function. Expected failures (typed ``DocingestError``) become
``StageError`` records; a transient error is re-raised so that the task can retry it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from docingest.config import Settings
from docingest.engines.base import PageEngine
from docingest.errors import DocingestError
from docingest.stages.classify import classify_document
from docingest.stages.extract import extract_fields
from docingest.stages.prepare import preprocess_page_image, validate_page_image
from docingest.stages.render import OpenDocument, open_document
from docingest.stages.route import route_document
from docingest.stages.rules import apply_rules
from schemas.records import (
    DocumentResult,
    PageInfo,
    PageInput,
    PageText,
    SourceDocument,
    Stage,
    StageError,
    Status,
)

@dataclass
class Engines:
    """The engines of a run, built once by the flow and passed to every document."""

    text_layer: PageEngine
    ocr: PageEngine

def process_document(source: SourceDocument, settings: Settings, engines: Engines) -> DocumentResult:
    started = time.perf_counter()
    result = DocumentResult(
        doc_id=source.doc_id, source_path=source.path, source_paths=list(source.paths),
        media_type=source.media_type, size_bytes=source.size_bytes,
    )
    try:
        pages = _read_pages(source, settings, engines, result)
        if pages:
            result.classification = classify_document(pages, result.pages)
            result.extraction = extract_fields(pages, result.classification.doc_type)
            result.rule_results = apply_rules(
                result.extraction, settings.routing, datetime.now(timezone.utc).date()
            )
    except DocingestError as exc:
        if exc.transient:
            raise
        result.errors.append(exc.to_record())
    except Exception as exc:  # a bug or a library surprise: isolate it to this document
        result.errors.append(StageError(
            stage=Stage.EXTRACT if result.classification else Stage.RENDER,
            kind="internal_error", message=f"{type(exc).__name__}: {exc}",
        ))
    result.status, result.review_reasons = route_document(
        result.classification, result.extraction, result.rule_results, result.errors,
        settings.routing,
    )
    result.processed_at = datetime.now(timezone.utc)
    result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return result

def _read_pages(
    source: SourceDocument, settings: Settings, engines: Engines, result: DocumentResult
) -> list[PageText]:
    """Read every page, one page image in memory at a time. Page errors are recorded and the
    remaining pages still read; a document none of whose pages could be read fails."""
    doc: OpenDocument = open_document(source, settings.renderer, settings.preprocess, settings.limits)
    pages: list[PageText] = []
    try:
        result.page_count = doc.page_count
        for index in range(doc.page_count):
            info = PageInfo(page=index + 1)
            result.pages.append(info)
            try:
                pages.append(_read_page(doc, index, info, settings, engines))
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
               engines: Engines) -> PageText:
    page_no = index + 1
    t0 = time.perf_counter()
    words = doc.text_layer(index)
    min_words = settings.preprocess.min_text_layer_words
    if len(words) >= min_words:
        info.read_ms = round((time.perf_counter() - t0) * 1000, 2)
        text = engines.text_layer.read(PageInput(page=page_no, text_layer=words))
        info.strategy_reason = f"text layer has {len(words)} words (>= {min_words})"
        return _finish(info, text)

    image = doc.render(index)
    validate_page_image(image, settings.limits, page_no)
    image = preprocess_page_image(image, settings.preprocess)
    info.width_px, info.height_px = image.size
    t1 = time.perf_counter()
    info.render_ms = round((t1 - t0) * 1000, 2)
    text = engines.ocr.read(PageInput(page=page_no, text_layer=words, image=image))
    del image  # the page image is not kept beyond its OCR
    info.read_ms = round((time.perf_counter() - t1) * 1000, 2)
    info.strategy_reason = (
        f"text layer has {len(words)} words (< {min_words}): OCR with {engines.ocr.name}"
    )
    if len(text.words) < len(words):  # OCR saw less than the sparse text layer: keep the layer
        text = engines.text_layer.read(PageInput(page=page_no, text_layer=words))
        info.strategy_reason += "; kept the text layer, OCR found fewer words"
    return _finish(info, text)

def _finish(info: PageInfo, text: PageText) -> PageText:
    info.text_source = text.source
    info.word_count = len(text.words)
    if text.words:
        info.mean_confidence = round(sum(w.confidence for w in text.words) / len(text.words), 4)
    return text

def unreadable_result(path: str, message: str) -> DocumentResult:
    """A file that could not even be read for hashing: it still gets its documents row."""
    return DocumentResult(
        doc_id=None, source_path=path, source_paths=[path], status=Status.FAILED,
        review_reasons=["discover:unreadable_file"],
        errors=[StageError(stage=Stage.DISCOVER, kind="unreadable_file", message=message)],
        processed_at=datetime.now(timezone.utc),
    )

def crashed_result(source: SourceDocument, message: str, kind: str = "task_failed") -> DocumentResult:
    """A document whose task failed after its retries: recorded, never dropped."""
    return DocumentResult(
        doc_id=source.doc_id, source_path=source.path, source_paths=list(source.paths),
        media_type=source.media_type, size_bytes=source.size_bytes, status=Status.FAILED,
        review_reasons=[f"task:{kind}"],
        errors=[StageError(stage=Stage.EXTRACT, kind=kind, message=message)],
        processed_at=datetime.now(timezone.utc),
    )
