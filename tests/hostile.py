"""A folder of bad and hostile inputs, generated: ``python tests/hostile.py OUT``.

Each kind is a file (or a link, a pipe, a socket) written into OUT with what docingest must
make of it: ``failed:<error kind>`` (a failure row of that kind, caused by the input),
``review:<reason prefix>`` (sent to review with that reason), or ``review`` / ``not accepted``
(any clear reason). The expectations are written to ``OUT/../hostile-expected.json`` (keys:
the path as the tables store it). tests/test_hostile_inputs.py runs them beside good
documents through ``docingest run``.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from docingest.samples import INVOICES, _invoice_pdf, attach_xml, invoice_cii
from docingest.stages.discover import display_path

NOT_ACCEPTED = "not accepted"


# -- raw PDF building ---------------------------------------------------------------------------
def raw_pdf(objects: list[bytes], root: int = 1, trailer_extra: bytes = b"") -> bytes:
    """A PDF of the given object bodies (1-based ids) with a correct cross-reference table."""
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += (b"trailer\n<< /Size %d /Root %d 0 R " % (len(objects) + 1, root) + trailer_extra
            + b">>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d " % len(data) + extra + b">>\nstream\n" + data + b"\nendstream"


def content_pdf(content: bytes, mediabox: bytes = b"0 0 595 842", page_extra: bytes = b"") -> bytes:
    """One page drawing ``content`` with Helvetica as /F1."""
    return raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [" + mediabox + b"] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> " + page_extra + b">>",
        _stream(content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])


def _text(lines: list[str], size: int = 11) -> bytes:
    ops = [b"BT /F1 %d Tf 50 780 Td 14 TL" % size]
    for line in lines:
        ops.append(b"(" + line.encode("latin-1").replace(b"(", b"\\(").replace(b")", b"\\)") + b") '")
    ops.append(b"ET")
    return b"\n".join(ops)


# -- images --------------------------------------------------------------------------------------
def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG header claiming 10^10 pixels over a few hundred bytes of zlib'd nothing."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    data = _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9))
    return b"\x89PNG\r\n\x1a\n" + header + data + _png_chunk(b"IEND", b"")


# -- doctored invoices ------------------------------------------------------------------------------
def _doctored(draw: Callable) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _invoice_pdf(INVOICES[0], path, extra=draw)
    return write


def _invisible_number(c, width, height) -> None:
    c.saveState()
    text = c.beginText(width - 250, height - 150)
    text.setTextRenderMode(3)
    text.setFont("Helvetica", 10)
    text.textLine("Invoice Number: EVIL-99999")
    text.textLine("Total Due 99,999.00 USD")
    c.drawText(text)
    c.restoreState()


def _white_number(c, width, height) -> None:
    c.saveState()
    c.setFillColorRGB(1, 1, 1)
    c.setFont("Helvetica", 10)
    c.drawString(width - 250, height - 150, "Invoice Number: EVIL-99999")
    c.restoreState()


def _outside_number(c, width, height) -> None:
    c.saveState()
    c.setFont("Helvetica", 10)
    c.drawString(width + 200, height - 90, "Invoice Number: EVIL-99999")
    c.restoreState()


def _tiny_number(c, width, height) -> None:
    c.saveState()
    c.setFont("Helvetica", 0.4)
    c.drawString(width - 250, height - 150, "Invoice Number: EVIL-99999")
    c.restoreState()


# -- the catalogue ------------------------------------------------------------------------------------
def _blank_pages(n: int, size=(595, 842)) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from reportlab.pdfgen import canvas

        c = canvas.Canvas(str(path), pagesize=size, invariant=1)
        for _ in range(n):
            c.showPage()
        c.save()
    return write


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _image(image: Image.Image, fmt: str, **kw) -> Callable[[Path], None]:
    return lambda path: image.save(path, format=fmt, **kw)


def _truncated(write: Callable[[Path], None], keep: float) -> Callable[[Path], None]:
    def truncated(path: Path) -> None:
        write(path)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
    return truncated


def _encrypted(path: Path) -> None:
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), encrypt=pdfencrypt.StandardEncryption("secret", canPrint=0))
    c.drawString(50, 800, "Invoice Number: ENC-1 Total 10.00")
    c.showPage()
    c.save()


def _noise_png(path: Path) -> None:
    rng = np.random.default_rng(7)
    Image.fromarray((rng.random((900, 700)) * 255).astype("uint8")).save(path, format="PNG")


def _png_with_pdf_marker(path: Path) -> None:
    image = Image.new("RGB", (400, 300), "white")
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "%PDF-1.7 not a pdf")
    image.save(path, format="PNG", pnginfo=info)


def _deep_nesting(path: Path) -> None:
    path.write_bytes(content_pdf(b"BT /F1 11 Tf 50 780 Td (" + b"[" * 50_000 + b") Tj ET")
                     .replace(b"/Contents 4 0 R", b"/Contents 4 0 R /Annots " + b"[" * 20_000 + b"]" * 20_000))


_XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100">&x;</rsm:CrossIndustryInvoice>"""
_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE z [<!ENTITY a "aaaaaaaaaa">'
           + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), b"&%s;" % bytes([97 + i]) * 10) for i in range(9))
           + b']><z>&j;</z>')


def _e_invoice(xml: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _invoice_pdf(INVOICES[0], path)
        attach_xml(path, xml)
    return write


def catalogue() -> dict[str, tuple[Callable[[Path], None], str]]:
    """name -> (writer, expectation). Names are file names inside OUT."""
    inv = INVOICES[0]
    blank_png = Image.new("RGB", (1200, 1600), "white")
    return {
        # -- not documents at all
        "empty.pdf": (_bytes(b""), "failed:empty_file"),
        "text-named.pdf": (_bytes(b"hello, this is not a PDF\n" * 20), "failed:unsupported_file_type"),
        "random-bytes.bin": (_bytes(np.random.default_rng(1).bytes(4096)), "failed:unsupported_file_type"),
        "invoice.html": (_bytes(b"<html><script>alert(1)</script>Invoice 12.00</html>"), "failed:unsupported_file_type"),
        "drawing.svg": (_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><text>Total 9.99</text></svg>'),
                        "failed:unsupported_file_type"),
        "xxe.xml": (_bytes(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'),
                    "failed:unsupported_file_type"),
        "archive.zip": (_bytes(b"PK\x03\x04" + b"\x00" * 200), "failed:unsupported_file_type"),
        "nul-bytes.pdf": (_bytes(b"\x00" * 10_000), "failed:unsupported_file_type"),
        # -- broken PDFs
        "header-only.pdf": (_bytes(b"%PDF-1.7\n"), "failed:corrupt_document"),
        "truncated-invoice.pdf": (_truncated(lambda p: _invoice_pdf(inv, p), 0.5), "failed:corrupt_document"),
        "garbage-after-header.pdf": (_bytes(b"%PDF-1.4\n" + np.random.default_rng(2).bytes(20_000)),
                                     "failed:corrupt_document"),
        "no-pages.pdf": (_bytes(raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                                         b"<< /Type /Pages /Kids [] /Count 0 >>"])), "failed:corrupt_document"),
        "page-tree-loop.pdf": (_bytes(raw_pdf([
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>"])), "failed:corrupt_document"),
        "page-count-lie.pdf": (_bytes(raw_pdf([
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1000000000 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"])), "review"),
        "encrypted.pdf": (_encrypted, "failed:encrypted_pdf"),
        "pdf-then-zip.pdf": (lambda p: (_invoice_pdf(inv, p), p.write_bytes(p.read_bytes() + b"PK\x03\x04" + b"\x00" * 64)),
                             NOT_ACCEPTED),
        "deep-nesting.pdf": (_deep_nesting, NOT_ACCEPTED),
        "content-operator-flood.pdf": (_bytes(content_pdf(b"0 0 m 1 1 l S\n" * 200_000)), "review"),
        "long-line.pdf": (_bytes(content_pdf(_text(["A" * 20_000]))), "review"),
        "zero-size-mediabox.pdf": (_bytes(content_pdf(_text(["Total 5.00"]), mediabox=b"0 0 0 0"))
                                   , NOT_ACCEPTED),
        "tiny-page.pdf": (_bytes(content_pdf(_text(["x"]), mediabox=b"0 0 1 1")), NOT_ACCEPTED),
        # -- cost
        "sixty-blank-pages.pdf": (_blank_pages(60), "review"),
        "huge-blank-page.pdf": (_blank_pages(1, (20_000, 20_000)), "review"),
        "huge-page-with-text.pdf": (_bytes(content_pdf(_text(["Invoice Number: BIG-1", "Total 1.00"], size=200),
                                                       mediabox=b"0 0 14400 14400")), NOT_ACCEPTED),
        "too-many-pages.pdf": (_blank_pages(2_001, (100, 100)), "failed:too_many_pages"),
        # -- values that cannot be stored or believed
        "total-1e15.pdf": (lambda p: _invoice_pdf(inv, p, total_text="1,000,000,000,000,000.00"), "review"),
        "total-exponent.pdf": (lambda p: _invoice_pdf(inv, p, total_text="1E309"), "review"),
        "total-nan.pdf": (lambda p: _invoice_pdf(inv, p, total_text="NaN"), "review"),
        "total-negative.pdf": (lambda p: _invoice_pdf(inv, p, total_text="-342.07"), "review"),
        "total-40-digits.pdf": (lambda p: _invoice_pdf(inv, p, total_text="9" * 40 + ".00"), "review"),
        # -- what you see is not what is read
        "doctored-invisible.pdf": (_doctored(_invisible_number), "review:hidden_text_layer"),
        "doctored-white.pdf": (_doctored(_white_number), "review:hidden_text_layer"),
        "doctored-outside-cropbox.pdf": (_doctored(_outside_number), "review:hidden_text_layer"),
        "doctored-tiny.pdf": (_doctored(_tiny_number), "review:hidden_text_layer"),
        # -- e-invoices: hostile or lying XML inside a PDF
        "einvoice-xxe.pdf": (_e_invoice(_XXE), "review:stage_error:extract:e_invoice_unreadable"),
        "einvoice-billion-laughs.pdf": (_e_invoice(_LAUGHS), "review:stage_error:extract:e_invoice_unreadable"),
        "einvoice-malformed.pdf": (_e_invoice(b"<rsm:CrossIndustryInvoice><open>"),
                                   "review:stage_error:extract:e_invoice_unreadable"),
        "xrechnung-xxe.xml": (_bytes(_XXE), "failed:e_invoice_unreadable"),
        "einvoice-total-not-printed.pdf": (_e_invoice(invoice_cii(INVOICES[0], total=INVOICES[0].total + 1000)),
                                           "review:e_invoice_mismatch:total"),
        # -- images
        "bomb.png": (_bytes(png_bomb()), "failed:decompression_bomb"),
        "truncated.png": (_truncated(_image(Image.new("RGB", (800, 800), "gray"), "PNG"), 0.3), "failed:corrupt_document"),
        "truncated.jpg": (_truncated(_image(Image.new("RGB", (800, 800), "gray"), "JPEG"), 0.3), NOT_ACCEPTED),
        "header-only.webp": (_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 "), "failed:corrupt_document"),
        "one-pixel.png": (_image(Image.new("RGB", (1, 1), "white"), "PNG"), "failed:image_too_small"),
        "sliver.png": (_image(Image.new("RGB", (20_001, 40), "white"), "PNG"), "failed:image_too_large"),
        "blank-scan.png": (_image(blank_png, "PNG"), "review"),
        "noise.png": (_noise_png, "review"),
        "png-containing-pdf-marker.png": (_png_with_pdf_marker, "review"),
        "animated.gif": (lambda p: blank_png.resize((300, 400)).save(
            p, format="GIF", save_all=True, append_images=[Image.new("RGB", (300, 400), "black")]), "review"),
        "black-page.tiff": (_image(Image.new("L", (1000, 1400), 0), "TIFF"), "review"),
        "sparse-file.pdf": (lambda p: (p.write_bytes(b"%PDF-1.7\n"), os.truncate(p, 300 * 1024 * 1024)),
                            "failed:file_too_large"),
    }


def generate(out: Path) -> dict[str, str]:
    """Write every hostile input into ``out`` (which must not exist yet or be empty). Returns
    {path as the tables store it: expectation}; a path with no row expected is not listed."""
    out.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    for name, (write, expectation) in catalogue().items():
        path = out / name
        write(path)
        expected[str(path.resolve())] = expectation
    root = str(out.resolve())

    # -- things that are not regular files, or lead out of the folder
    os.mkfifo(out / "pipe.pdf")
    expected[f"{root}/pipe.pdf"] = "failed:not_regular_file"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(out / "socket.pdf"))
    finally:
        sock.close()
    expected[f"{root}/socket.pdf"] = "failed:not_regular_file"
    os.symlink("/dev/zero", out / "zero.pdf")
    expected[f"{root}/zero.pdf"] = "failed:symlink_outside_source"
    os.symlink("/etc/passwd", out / "passwd.pdf")
    expected[f"{root}/passwd.pdf"] = "failed:symlink_outside_source"
    os.symlink("/etc", out / "etc-folder")
    expected[f"{root}/etc-folder"] = "failed:symlink_outside_source"
    os.symlink(out / "no-such-target.pdf", out / "dangling.pdf")
    expected[f"{root}/dangling.pdf"] = "failed:unreadable_file"
    os.symlink("loop-b.pdf", out / "loop-a.pdf")
    os.symlink("loop-a.pdf", out / "loop-b.pdf")
    expected[f"{root}/loop-a.pdf"] = expected[f"{root}/loop-b.pdf"] = "failed:unreadable_file"
    (out / "nested").mkdir()
    os.symlink("..", out / "nested" / "up")  # a folder loop: inside the source, not followed
    # -- names
    bad = os.fsencode(str(out)) + b"/invoice-\xff\xfe.pdf"
    _invoice_pdf(INVOICES[0], Path(os.fsdecode(bad)))
    expected[display_path(os.fsdecode(bad))] = "failed:non_utf8_name"
    odd = out / "line\nbreak\ttab ;rm -rf $HOME.pdf"
    odd.write_bytes(b"%PDF-1.7\n")
    expected[str(odd.resolve())] = "failed:corrupt_document"
    deep = out.joinpath(*[f"d{i}" for i in range(40)])
    deep.mkdir(parents=True)
    (deep / "deep.pdf").write_bytes(b"%PDF-")
    expected[str((deep / "deep.pdf").resolve())] = "failed:corrupt_document"
    long_name = out / ("n" * 240 + ".pdf")
    long_name.write_bytes(b"not a pdf")
    expected[str(long_name.resolve())] = "failed:unsupported_file_type"
    (out / ".hidden.pdf").write_bytes(b"hidden files are not inputs")
    return expected


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-inputs")
    kinds = generate(target)
    (target.parent / "hostile-expected.json").write_text(json.dumps(kinds, indent=1, ensure_ascii=False))
    print(f"wrote {len(kinds)} hostile inputs into {target}")
