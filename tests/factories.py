"""Test inputs the tests make themselves: good documents and every kind of bad one."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw


def text_pdf(path: Path, lines: list[str], pages: int = 1, encrypt: str | None = None) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    kwargs = {"encrypt": encrypt} if encrypt else {}
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1, **kwargs)
    for page in range(pages):
        y = 800
        for line in lines:
            c.drawString(50, y, line.replace("{page}", str(page + 1)))
            y -= 16
        c.showPage()
    c.save()
    return path


def truncated_pdf(path: Path, source: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def bomb_png(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A tiny PNG whose header claims 1.6 gigapixels: must be refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = b"\x00" + b"\xff" * width
    compressor = zlib.compressobj(9)
    idat = compressor.compress(row * 16) + compressor.flush()  # a few rows are enough
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def text_image(text_lines: list[str], size=(900, 600)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    y = 40
    for line in text_lines:
        draw.text((40, y), line, fill="black", font_size=28)
        y += 44
    return image
