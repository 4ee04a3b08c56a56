"""Configuration, read once (env ``DOCINGEST_*`` + CLI flags) and passed down as typed options."""

from __future__ import annotations

import os
from enum import Enum

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RendererName(str, Enum):
    PYPDFIUM2 = "pypdfium2"
    PDF2IMAGE = "pdf2image"


class OcrName(str, Enum):
    RAPIDOCR = "rapidocr"
    TESSERACT = "tesseract"


class InputLimits(BaseModel):
    """Validation limits (the seed's validate stage). Violations are typed errors."""

    max_file_bytes: int = 200 * 1024 * 1024
    min_dimension: int = 32
    max_dimension: int = 20_000
    # Decoding more pixels than this is refused: a small PNG can inflate to gigabytes.
    max_image_pixels: int = 60_000_000
    max_pages: int = 2_000


class PreprocessOptions(BaseModel):
    """Page preprocessing (the seed's preprocess stage)."""

    dpi: int = Field(default=200, ge=36, le=600)
    target_max_dimension: int = Field(default=2400, ge=256)
    jpeg_quality: int = Field(default=85, ge=10, le=100)
    # A page whose text layer has fewer words than this is read by OCR instead.
    min_text_layer_words: int = 5


class RoutingThresholds(BaseModel):
    min_classification_confidence: float = Field(default=0.6, ge=0, le=1)
    min_field_confidence: float = Field(default=0.5, ge=0, le=1)
    # Amount tolerance for total = subtotal + tax and total = sum(lines).
    amount_tolerance: float = Field(default=0.02, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOCINGEST_", env_nested_delimiter="__", extra="ignore"
    )

    renderer: RendererName = RendererName.PYPDFIUM2
    ocr: OcrName = OcrName.RAPIDOCR
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    task_retries: int = Field(default=2, ge=0)
    retry_delay_seconds: float = Field(default=2.0, ge=0)
    limits: InputLimits = Field(default_factory=InputLimits)
    preprocess: PreprocessOptions = Field(default_factory=PreprocessOptions)
    routing: RoutingThresholds = Field(default_factory=RoutingThresholds)
    show_progress: bool = True
