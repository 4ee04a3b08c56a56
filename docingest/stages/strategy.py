"""Which pages go to the VLM: the ``auto`` strategy, decided per page and explained."""

from __future__ import annotations

from dataclasses import dataclass

from docingest.config import ExtractorName, RoutingThresholds, VlmOptions
from docingest.schemas.fields import DocType
from docingest.schemas.records import Classification, PageInfo, PageStrategy, TextSource


@dataclass(frozen=True)
class PagePlan:
    vlm_pages: list[int]  # 1-based, in order
    classify_with_vlm: bool  # the first VLM request also classifies the document


def plan_pages(extractor: ExtractorName, pages: list[PageInfo], local: Classification,
               options: VlmOptions, thresholds: RoutingThresholds) -> PagePlan:
    """Set each page's ``strategy`` and ``strategy_reason``; return the pages for the VLM.

    ``local``: nothing goes to the VLM. ``vlm``: every readable page, and the VLM classifies.
    ``auto``: a text-layer page stays local, an OCR page stays local when its words are
    confident, and everything else goes to the VLM; a document type whose local extraction
    is weak, or a document the local classifier is unsure about, goes to the VLM entirely.
    """
    readable = [p for p in pages if p.text_source is not None]
    for p in readable:
        p.strategy = PageStrategy(p.text_source.value)
    if extractor == ExtractorName.LOCAL:
        return PagePlan([], False)
    if extractor == ExtractorName.VLM:
        for p in readable:
            _to_vlm(p, "extractor=vlm")
        return PagePlan([p.page for p in readable], True)

    uncertain = (local.doc_type == DocType.OTHER
                 or local.confidence < thresholds.min_classification_confidence)
    weak_type = local.doc_type.value in options.auto_vlm_types
    for p in readable:
        if uncertain:
            _to_vlm(p, f"local classification uncertain ({local.doc_type.value} {local.confidence:.2f})")
        elif weak_type:
            _to_vlm(p, f"local extraction is weak for {local.doc_type.value} documents")
        elif p.text_source == TextSource.OCR and (p.mean_confidence or 0.0) < options.auto_min_ocr_confidence:
            _to_vlm(p, f"OCR confidence {p.mean_confidence or 0.0:.2f} < {options.auto_min_ocr_confidence:.2f}")
        elif p.text_source == TextSource.OCR:
            p.strategy_reason += f"; OCR confidence {p.mean_confidence:.2f} is enough, no VLM"
    return PagePlan([p.page for p in readable if p.strategy == PageStrategy.VLM], uncertain)


def _to_vlm(page: PageInfo, reason: str) -> None:
    page.strategy = PageStrategy.VLM
    page.strategy_reason += f"; VLM: {reason}"
