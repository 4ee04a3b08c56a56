"""The engine Protocol and the registry that builds engines from typed options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from docingest.config import OcrName
from docingest.schemas.records import PageInput, PageText, TextSource


class PageEngine(Protocol):
    name: str
    source: TextSource
    needs_image: bool  # whether the page must be rendered before ``read``

    def read(self, page: PageInput) -> PageText:
        """Read the page's words with boxes and confidences. Raises typed errors."""


_OCR_REGISTRY: dict[OcrName, Callable[[], PageEngine]] = {}


def register_ocr_engine(name: OcrName) -> Callable[[Callable[[], PageEngine]], Callable[[], PageEngine]]:
    def decorate(factory: Callable[[], PageEngine]) -> Callable[[], PageEngine]:
        _OCR_REGISTRY[name] = factory
        return factory

    return decorate


def build_ocr_engine(name: OcrName) -> PageEngine:
    # Imported here so that registering engines never loads their models at import time.
    from docingest.engines import ocr  # noqa: F401  (registers the built-in engines)

    return _OCR_REGISTRY[name]()
