"""Both OCR engines read a rendered page and return words with boxes and confidences."""

from __future__ import annotations

import shutil

import pytest

from docingest.config import OcrName
from docingest.engines import build_ocr_engine
from factories import text_image
from schemas import PageInput, TextSource


@pytest.mark.parametrize("name", [OcrName.RAPIDOCR, OcrName.TESSERACT])
def test_ocr_engine_reads_words(name):
    if name == OcrName.TESSERACT and shutil.which("tesseract") is None:
        pytest.fail("tesseract-ocr must be installed (apt-get install -y tesseract-ocr)")
    engine = build_ocr_engine(name)
    image = text_image(["INVOICE 4711", "TOTAL 99.50"])
    text = engine.read(PageInput(page=1, text_layer=[], image=image))
    assert text.source == TextSource.OCR
    joined = " ".join(w.text for w in text.words).upper()
    assert "4711" in joined and "99.50" in joined
    for w in text.words:
        assert 0 <= w.confidence <= 1
        assert 0 <= w.bbox[0] < w.bbox[2] <= 1 and 0 <= w.bbox[1] < w.bbox[3] <= 1
    lines = {w.line for w in text.words}
    assert len(lines) == 2


def test_rapidocr_loads_its_bundled_models_offline_and_keeps_word_spaces(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network use at OCR engine start")

    # A model download at start would fail on an offline machine: none may be attempted.
    monkeypatch.setattr(socket.socket, "connect", no_network)
    engine = build_ocr_engine(OcrName.RAPIDOCR)
    image = text_image(["NO 55, JALAN SAGU 18, TAMAN DAYA", "81100 JOHOR BAHRU"])
    words = [w.text for w in engine.read(PageInput(page=1, text_layer=[], image=image)).words]
    # An address is compared word by word (on real receipts the PP-OCRv4 models read "JALANSAGU18").
    assert {"JALAN", "SAGU", "TAMAN", "DAYA", "JOHOR", "BAHRU"} <= {w.strip(",") for w in words}
    blank = engine.read(PageInput(page=1, text_layer=[], image=text_image([])))
    assert blank.words == []
