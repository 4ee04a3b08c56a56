"""The processing key: what a document's result depends on besides its bytes.

The package (its version and a digest of its source files, so an edited checkout never reuses a
stale result), the libraries that read pages, the calibration table's bytes, and the settings
that change a result: renderer, OCR engine, preprocessing (dpi), input limits, routing
thresholds, the extractor actually used, the VLM model, prompt and schema versions and the
request options that change an answer. Not in it: workers, retries, progress, the batch gate,
VLM cache and rate limits, prices; they change how a run goes, not what a document reads.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from docingest.config import ExtractorName, Settings
from docingest.schemas.runs import ProcessingKey

# The installed docingest packages: docingest itself and the design card's folders (installed
# as docingest.flows, .tasks, .schemas).
_LIBRARIES = ("pypdfium2", "pillow", "rapidocr", "onnxruntime", "pytesseract", "pdf2image", "numpy", "openai")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over the package's Python sources and data files, by package and relative path."""
    import docingest
    import docingest.flows
    import docingest.schemas
    import docingest.tasks

    digest = hashlib.sha256()
    for package in (docingest, docingest.flows, docingest.tasks, docingest.schemas):
        base = Path(package.__file__).resolve().parent
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                name = f"{package.__name__}/{path.relative_to(base)}"
                digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _file_digest(path: Path | None) -> str | None:
    if path is None or not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def processing_key(settings: Settings) -> ProcessingKey:
    extractor = settings.effective_extractor()
    components: dict = {
        "docingest": _version("docingest"),
        "code": code_digest(),
        "libraries": {dist: _version(dist) for dist in _LIBRARIES},
        "calibration": _file_digest(settings.calibration_file),
        "renderer": settings.renderer.value,
        "ocr": settings.ocr.value,
        "preprocess": settings.preprocess.model_dump(mode="json"),
        "limits": settings.limits.model_dump(mode="json"),
        "routing": settings.routing.model_dump(mode="json"),
        "extractor": extractor.value,
    }
    if extractor != ExtractorName.LOCAL:
        from docingest.engines.vlm import PROMPT_VERSION
        from docingest.schemas.vlm import SCHEMA_VERSION

        components["vlm"] = {
            "model": settings.vlm_model, "prompt": PROMPT_VERSION, "schema": SCHEMA_VERSION,
            **settings.vlm.model_dump(mode="json", include={
                "detail", "max_tokens", "max_tokens_ceiling", "structured_outputs", "include_page_text",
                "auto_min_ocr_confidence", "auto_vlm_types"}),
        }
    text = json.dumps(components, sort_keys=True, separators=(",", ":"))
    return ProcessingKey(digest=hashlib.sha256(text.encode()).hexdigest()[:20], components=components)
