"""Engines that read a page. All implement ``PageEngine``; pick one from the registry."""

from docingest.engines.base import LazyOcrEngine, PageEngine, build_ocr_engine, register_ocr_engine
from docingest.engines.text_layer import TextLayerEngine

__all__ = ["LazyOcrEngine", "PageEngine", "TextLayerEngine", "build_ocr_engine", "register_ocr_engine"]
