"""Both OCR engines read a rendered page and return words with boxes and confidences."""

from __future__ import annotations

import shutil

import pytest

from docingest.config import OcrName
from docingest.engines import build_ocr_engine
from factories import text_image
from docingest.schemas import PageInput, TextSource


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


def test_text_lines_over_the_same_stretch_are_two_rows_even_when_they_nearly_touch():
    from docingest.engines.ocr import _rows

    def box(x0, x1, y0, y1):
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    # A crumpled receipt: the second centred line sits 6 px under the first (line height 20).
    lines = [(box(100, 400, 100, 120), "No: 28, JALAN ASTANA 1C,", 0.9),
             (box(120, 380, 106, 126), "BANDAR BUKIT RAJA, 41050", 0.9)]
    assert [row for *_, row in _rows(lines)] == [0, 1]
    # A label and its value side by side, at the same height: one row, left to right.
    lines = [(box(300, 400, 102, 122), "9.00", 0.9), (box(20, 120, 100, 120), "Total :", 0.9)]
    lines.sort(key=lambda r: r[0][0][1])
    assert [(text, row) for _, text, _, row in _rows(lines)] == [("Total :", 0), ("9.00", 0)]
