"""Discover, render and page checks: stages tested as plain functions, no Prefect."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image

from docingest.config import InputLimits, PreprocessOptions, RendererName
from docingest.errors import (
    CorruptDocument,
    DecompressionBomb,
    EmptyFile,
    EncryptedDocument,
    ImageTooSmall,
    UnsupportedFileType,
)
from docingest.stages.discover import discover, sniff_media_type
from docingest.stages.prepare import preprocess_page_image, validate_page_image
from docingest.stages.render import open_document
from factories import bomb_png, text_pdf, truncated_pdf

LIMITS, PRE = InputLimits(), PreprocessOptions()


def _open(path: Path, renderer=RendererName.PYPDFIUM2):
    docs, _ = discover(path)
    return open_document(docs[0], renderer, PRE, LIMITS)


def test_discover_hashes_bytes_and_folds_duplicates(tmp_path):
    a = text_pdf(tmp_path / "a.pdf", ["Invoice A"])
    (tmp_path / "sub").mkdir()
    shutil.copyfile(a, tmp_path / "sub" / "copy-of-a.bin")
    text_pdf(tmp_path / "b.pdf", ["Invoice B"])
    docs, unreadable = discover(tmp_path)
    assert not unreadable
    assert len(docs) == 2
    dup = next(d for d in docs if len(d.paths) == 2)
    assert dup.doc_id == hashlib.sha256(a.read_bytes()).hexdigest()
    assert sorted(Path(p).name for p in dup.paths) == ["a.pdf", "copy-of-a.bin"]
    assert dup.media_type == "application/pdf"  # sniffed from bytes, not the .bin name


@pytest.mark.parametrize("head,expected", [
    (b"%PDF-1.7\n", "application/pdf"), (b"\x89PNG\r\n\x1a\n....", "image/png"),
    (b"\xff\xd8\xff\xe0", "image/jpeg"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"), (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", None), (b"", None),
])
def test_sniff_media_type(head, expected):
    assert sniff_media_type(head) == expected


def test_pdf_text_layer_words_have_normalized_boxes(tmp_path):
    doc = _open(text_pdf(tmp_path / "t.pdf", ["Invoice Number: INV-7", "Total Due 12.50"], pages=3))
    try:
        assert doc.page_count == 3
        words = doc.text_layer(1)
        assert [w.text for w in words] == ["Invoice", "Number:", "INV-7", "Total", "Due", "12.50"]
        assert {w.line for w in words} == {0, 1}
        for w in words:
            x0, y0, x1, y1 = w.bbox
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        # Top-left origin: the first line is above the second; a box is one word, not the page.
        assert words[0].bbox[1] < words[3].bbox[1]
        assert words[0].bbox[3] < words[3].bbox[1]  # line 1 ends above line 2
        # text_pdf draws at x=50 pt, y=800 pt on A4 (595 x 842 pt), 12-pt Helvetica.
        assert abs(words[0].bbox[0] - 50 / 595.28) < 0.005 and abs(words[0].bbox[3] - 41.89 / 841.89) < 0.005  # baseline
        assert all(w.bbox[2] - w.bbox[0] < 0.2 and w.bbox[3] - w.bbox[1] < 0.02 for w in words)
        image = doc.render(0)
        assert image.size == (round(595.28 * 200 / 72), round(841.89 * 200 / 72))
    finally:
        doc.close()


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_rotated_pdf_page_has_its_words_where_they_are_rendered(tmp_path, rotation):
    import pypdfium2 as pdfium

    source = text_pdf(tmp_path / "t.pdf", ["Invoice Number: INV-7", "Total Due 12.50"])
    pdf = pdfium.PdfDocument(str(source))
    pdf[0].set_rotation(rotation)
    pdf.save(str(tmp_path / "rotated.pdf"))
    pdf.close()
    doc = _open(tmp_path / "rotated.pdf")
    try:
        words = doc.text_layer(0)
        image = doc.render(0).convert("L")
    finally:
        doc.close()
    assert sorted(w.text for w in words) == sorted(["Invoice", "Number:", "INV-7", "Total", "Due", "12.50"])
    width, height = image.size
    for w in words:
        x0, y0, x1, y1 = w.bbox
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, w
        ink = image.crop((int(x0 * width), int(y0 * height), int(x1 * width) + 1, int(y1 * height) + 1))
        assert ink.getextrema()[0] < 100, f"no ink under {w.text} at {w.bbox}"


def test_pdf2image_renderer_matches_pdfium_size(tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.fail("poppler-utils (pdftoppm) must be installed for the pdf2image renderer")
    doc = _open(text_pdf(tmp_path / "t.pdf", ["Hello world"]), RendererName.PDF2IMAGE)
    try:
        image = doc.render(0)
        assert abs(image.size[0] - 1654) <= 2 and abs(image.size[1] - 2339) <= 2
        assert [w.text for w in doc.text_layer(0)] == ["Hello", "world"]
    finally:
        doc.close()


def test_bad_inputs_raise_typed_errors_with_clear_messages(tmp_path):
    good = text_pdf(tmp_path / "good.pdf", ["Invoice"])
    cases = {
        truncated_pdf(tmp_path / "truncated.pdf", good): (CorruptDocument, "cannot open PDF"),
        text_pdf(tmp_path / "enc.pdf", ["secret"], encrypt="pw"): (EncryptedDocument, "encrypted"),
        bomb_png(tmp_path / "bomb.png"): (DecompressionBomb, "decompression bomb"),
    }
    (tmp_path / "empty.pdf").write_bytes(b"")
    cases[tmp_path / "empty.pdf"] = (EmptyFile, "0 bytes")
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04 not a document we read")
    cases[tmp_path / "notes.docx"] = (UnsupportedFileType, "unsupported file type .docx")
    for path, (error, words) in cases.items():
        with pytest.raises(error) as info:
            doc = _open(path)
            doc.render(0)
        assert words in info.value.message, (path.name, info.value.message)


def test_tiff_frames_are_pages_and_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (200, 100), c) for c in ("red", "green", "blue")]
    frames[0].save(tmp_path / "multi.tiff", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    tiff = _open(tmp_path / "multi.tiff")
    assert tiff.page_count == 3
    assert tiff.render(2).convert("RGB").getpixel((5, 5)) == (0, 0, 255)
    gif = _open(tmp_path / "anim.gif")
    assert gif.page_count == 1
    assert gif.render(0).convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_huge_pdf_page_is_rendered_below_the_pixel_limit(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "poster.pdf"
    c = canvas.Canvas(str(path), pagesize=(14400, 14400), invariant=1)  # 200 x 200 inches
    c.drawString(100, 100, "poster")
    c.showPage()
    c.save()
    limits = InputLimits(max_image_pixels=4_000_000)
    docs, _ = discover(path)
    doc = open_document(docs[0], RendererName.PYPDFIUM2, PRE, limits)
    try:
        w, h = doc.render(0).size
        assert w * h <= limits.max_image_pixels
    finally:
        doc.close()


def test_validate_and_preprocess_page_image():
    with pytest.raises(ImageTooSmall, match="smaller than the minimum"):
        validate_page_image(Image.new("RGB", (10, 500)), LIMITS, page=1)
    # EXIF orientation 6 (rotate 90° clockwise to view) is applied.
    img = Image.new("RGB", (300, 100), "white")
    exif = img.getexif()
    exif[0x0112] = 6
    import io
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    rotated = preprocess_page_image(Image.open(io.BytesIO(buf.getvalue())), PRE)
    assert rotated.size == (100, 300)
    # Transparent background becomes white RGB, not black.
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    assert preprocess_page_image(rgba, PRE).getpixel((1, 1)) == (255, 255, 255)
    # Resized to the target max dimension, aspect kept.
    big = preprocess_page_image(Image.new("L", (4800, 2400)), PreprocessOptions(target_max_dimension=1200))
    assert big.size == (1200, 600) and big.mode == "RGB"
