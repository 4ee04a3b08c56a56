"""The engine Protocol and the registry that builds engines from typed options."""

from __future__ import annotations

import threading
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


# name -> factory(cpu_threads): the threads one engine may use (None: all cores)
OcrFactory = Callable[..., PageEngine]
_OCR_REGISTRY: dict[OcrName, OcrFactory] = {}


def register_ocr_engine(name: OcrName) -> Callable[[OcrFactory], OcrFactory]:
    def decorate(factory: OcrFactory) -> OcrFactory:
        _OCR_REGISTRY[name] = factory
        return factory

    return decorate


def build_ocr_engine(name: OcrName, cpu_threads: int | None = None) -> PageEngine:
    # Imported here so that registering engines never loads their models at import time.
    from docingest.engines import ocr  # noqa: F401  (registers the built-in engines)

    return _OCR_REGISTRY[name](cpu_threads=cpu_threads)


class LazyOcrEngine:
    """The OCR engine ``name``, built on the first page that needs OCR (once, thread-safe):
    a run whose pages all carry text layers never loads OCR models (RapidOCR's import alone
    costs ≈ 0.8 s). Name, source and image need are the engine class's own."""

    def __init__(self, name: OcrName, cpu_threads: int | None = None):
        from docingest.engines import ocr  # noqa: F401  (registers the built-in engines)

        self._factory = _OCR_REGISTRY[name]
        self._cpu_threads = cpu_threads
        self.name: str = self._factory.name
        self.source: TextSource = self._factory.source
        self.needs_image: bool = self._factory.needs_image
        self._engine: PageEngine | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._engine is not None

    def read(self, page: PageInput) -> PageText:
        with self._lock:
            if self._engine is None:
                self._engine = self._factory(cpu_threads=self._cpu_threads)
        return self._engine.read(page)
