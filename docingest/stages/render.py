"""Render: open a document and hand out its pages one at a time.

Pages are streamed: a page's image is produced only when asked for and dropped by the caller
after use, so a 500-page PDF never holds more than one page image in memory. The PDF text
layer is read per page (words with boxes) and costs ~5 ms; rendering a page costs ~60 ms, so
pages whose text layer is good are not rendered at all.

PDFium is not thread-safe, not even across different documents: every call into it goes
through ``PDFIUM_LOCK`` (see the pypdfium2 docs, "Incompatibility with Threading").
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageSequence

from docingest.config import InputLimits, PreprocessOptions, RendererName
from docingest.errors import (
    CorruptDocument,
    DecompressionBomb,
    EmptyFile,
    EncryptedDocument,
    EngineUnavailable,
    FileTooLarge,
    TooManyPages,
    UnsupportedFileType,
)
from docingest.schemas.records import SourceDocument, Stage, Word

PDFIUM_LOCK = threading.RLock()

_WS = re.compile(r"\s")


class OpenDocument(Protocol):
    page_count: int

    def text_layer(self, index: int) -> list[Word]:
        """Words of page ``index`` (0-based) from the PDF text layer; [] when there is none."""

    def render(self, index: int) -> Image.Image:
        """Page ``index`` as an image (not yet validated or preprocessed)."""

    def close(self) -> None: ...


# -- PDF via PDFium ----------------------------------------------------------------------------
class PdfiumDocument:
    def __init__(self, path: str, preprocess: PreprocessOptions, limits: InputLimits):
        import pypdfium2 as pdfium

        self._pdfium = pdfium
        self._preprocess = preprocess
        self._limits = limits
        with PDFIUM_LOCK:
            try:
                self._pdf = pdfium.PdfDocument(path)
            except pdfium.PdfiumError as exc:
                raise _classify_pdfium_error(exc) from exc
            self.page_count = len(self._pdf)
        if self.page_count == 0:
            self.close()
            raise CorruptDocument("PDF has no pages")
        if self.page_count > limits.max_pages:
            self.close()
            raise TooManyPages(
                f"PDF has {self.page_count} pages, more than the limit of {limits.max_pages}"
            )

    def page_size_points(self, index: int) -> tuple[float, float]:
        with PDFIUM_LOCK:
            page = self._pdf[index]
            try:
                return page.get_size()
            finally:
                page.close()

    def text_layer(self, index: int) -> list[Word]:
        with PDFIUM_LOCK:
            page = self._pdf[index]
            textpage = page.get_textpage()
            try:
                crop = page.get_cropbox()
                rotation = page.get_rotation()
                count = textpage.count_chars()
                text = textpage.get_text_range() if count else ""
                boxes = [textpage.get_charbox(i) for i in range(len(text))]
            finally:
                textpage.close()
                page.close()
        return _words_from_chars(text, [_displayed(b, crop, rotation) for b in boxes],
                                 *_displayed_size(crop, rotation))

    def render(self, index: int) -> Image.Image:
        with PDFIUM_LOCK:
            page = self._pdf[index]
            try:
                scale = _safe_scale(page.get_size(), self._preprocess.dpi, self._limits)
                bitmap = page.render(scale=scale)
                try:
                    return bitmap.to_pil().copy()
                finally:
                    bitmap.close()
            except self._pdfium.PdfiumError as exc:
                raise CorruptDocument(f"cannot render page: {exc}", page=index + 1) from exc
            finally:
                page.close()

    def close(self) -> None:
        with PDFIUM_LOCK:
            if getattr(self, "_pdf", None) is not None:
                self._pdf.close()
                self._pdf = None


class Pdf2ImageDocument(PdfiumDocument):
    """Renders with poppler's pdftoppm (one page per call); the text layer still comes from PDFium."""

    def __init__(self, path: str, preprocess: PreprocessOptions, limits: InputLimits):
        if shutil.which("pdftoppm") is None:
            raise EngineUnavailable(
                "renderer pdf2image needs poppler-utils (apt-get install -y poppler-utils)",
                stage=Stage.RENDER,
            )
        super().__init__(path, preprocess, limits)
        self._path = path

    def render(self, index: int) -> Image.Image:
        from pdf2image import convert_from_path
        from pdf2image.exceptions import PDFPageCountError, PDFSyntaxError

        dpi = int(_safe_scale(self.page_size_points(index), self._preprocess.dpi, self._limits) * 72)
        try:
            images = convert_from_path(
                self._path, dpi=dpi, first_page=index + 1, last_page=index + 1, timeout=120
            )
        except (PDFPageCountError, PDFSyntaxError) as exc:
            raise CorruptDocument(f"pdftoppm cannot render page: {exc}", page=index + 1) from exc
        if not images:
            raise CorruptDocument("pdftoppm rendered nothing", page=index + 1)
        return images[0]


# -- raster images ------------------------------------------------------------------------------
class ImageFileDocument:
    """PNG, JPEG, WEBP (one page); TIFF (every frame is a page); GIF (first frame only)."""

    def __init__(self, path: str, media_type: str, limits: InputLimits):
        self._path = path
        self._limits = limits
        with _open_image(path, limits) as img:
            frames = getattr(img, "n_frames", 1) if media_type == "image/tiff" else 1
        self.page_count = int(frames)
        if self.page_count > limits.max_pages:
            raise TooManyPages(f"image has {self.page_count} frames, limit {limits.max_pages}")

    def text_layer(self, index: int) -> list[Word]:
        return []

    def render(self, index: int) -> Image.Image:
        with _open_image(self._path, self._limits) as img:
            frame = next(f for i, f in enumerate(ImageSequence.Iterator(img)) if i == index)
            check_pixels(frame.size, self._limits, page=index + 1)
            try:
                frame.load()
                return frame.copy()
            except (OSError, ValueError, SyntaxError) as exc:
                raise CorruptDocument(f"cannot decode image: {exc}", page=index + 1) from exc

    def close(self) -> None:
        pass


def check_pixels(size: tuple[int, int], limits: InputLimits, page: int | None = None) -> None:
    width, height = size
    if width * height > limits.max_image_pixels:
        raise DecompressionBomb(
            f"image is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{limits.max_image_pixels:,} (possible decompression bomb); not decoded",
            page=page,
        )


@contextmanager
def _open_image(path: str, limits: InputLimits) -> Iterator[Image.Image]:
    # Image.open reads only the header, so the pixel guard runs before any decoding.
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(f"refused to open: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptDocument(f"cannot decode image: {exc}", stage=Stage.RENDER) from exc
    try:
        check_pixels(img.size, limits)
        yield img
    finally:
        img.close()


# -- opening --------------------------------------------------------------------------------------
def open_document(
    source: SourceDocument,
    renderer: RendererName,
    preprocess: PreprocessOptions,
    limits: InputLimits,
) -> OpenDocument:
    """Check the file-level limits and open it with the right reader. Raises typed errors."""
    if source.size_bytes == 0:
        raise EmptyFile("file is empty (0 bytes)")
    if source.size_bytes > limits.max_file_bytes:
        raise FileTooLarge(
            f"file is {source.size_bytes / 2**20:.1f} MiB, more than the limit of "
            f"{limits.max_file_bytes / 2**20:.0f} MiB"
        )
    if source.media_type == "application/pdf":
        cls = Pdf2ImageDocument if renderer == RendererName.PDF2IMAGE else PdfiumDocument
        return cls(source.path, preprocess, limits)
    if source.media_type is not None and source.media_type.startswith("image/"):
        return ImageFileDocument(source.path, source.media_type, limits)
    suffix = Path(source.path).suffix or "(no extension)"
    raise UnsupportedFileType(
        f"unsupported file type {suffix}: not a PDF, PNG, JPEG, TIFF, WEBP or GIF by its content"
    )


def _classify_pdfium_error(exc: Exception) -> Exception:
    message = str(exc)
    if "password" in message.lower():
        return EncryptedDocument(f"PDF is encrypted and needs a password ({message})")
    return CorruptDocument(f"cannot open PDF: {message}")


def _safe_scale(size_points: tuple[float, float], dpi: int, limits: InputLimits) -> float:
    """Render scale for ``dpi``, lowered when a huge page would exceed the pixel limit."""
    width, height = size_points
    scale = dpi / 72.0
    pixels = width * height * scale * scale
    if pixels > limits.max_image_pixels:
        scale *= (limits.max_image_pixels / pixels) ** 0.5
    return scale


def _displayed_size(crop: tuple[float, float, float, float], rotation: int) -> tuple[float, float]:
    width, height = crop[2] - crop[0], crop[3] - crop[1]
    return (height, width) if rotation in (90, 270) else (width, height)


def _displayed(box: tuple[float, float, float, float], crop: tuple[float, float, float, float],
               rotation: int) -> tuple[float, float, float, float]:
    """A PDFium char box (user space, unrotated, origin at the page's bottom-left) as it is
    shown: relative to the crop box and turned by the page's /Rotate. A landscape order stored
    as a portrait page turned 90° is read, rendered and laid out the way it is printed."""
    left, bottom, right, top = box[0] - crop[0], box[1] - crop[1], box[2] - crop[0], box[3] - crop[1]
    width, height = crop[2] - crop[0], crop[3] - crop[1]
    if rotation == 90:  # clockwise: (x, y) -> (y, width - x)
        return bottom, width - right, top, width - left
    if rotation == 180:
        return width - right, height - top, width - left, height - bottom
    if rotation == 270:  # (x, y) -> (height - y, x)
        return height - top, left, height - bottom, right
    return left, bottom, right, top


def _words_from_chars(
    text: str, boxes: list[tuple[float, float, float, float]], width: float, height: float
) -> list[Word]:
    """Group PDFium characters into words with normalized top-left-origin boxes and line ids."""
    words: list[Word] = []
    line = 0
    chars: list[str] = []
    x0 = y0 = float("inf")
    x1 = y1 = float("-inf")

    def flush() -> None:
        nonlocal chars, x0, y0, x1, y1
        if chars and x1 > x0:
            bbox = (
                _clip(x0 / width), _clip(1 - y1 / height), _clip(x1 / width), _clip(1 - y0 / height)
            )
            words.append(Word(Word.clean("".join(chars)), bbox, 1.0, line))
        chars = []
        x0 = y0 = float("inf")
        x1 = y1 = float("-inf")

    # PDFium char boxes are (left, bottom, right, top) in PDF points, origin bottom-left.
    for ch, (left, bottom, right, top) in zip(text, boxes):
        if ch == "\n":
            flush()
            line += 1
        elif _WS.match(ch) or ch == "\x00":
            flush()
        else:
            chars.append(ch)
            if right > left or top > bottom:
                x0, x1 = min(x0, left), max(x1, right)
                y0, y1 = min(y0, bottom), max(y1, top)
    flush()
    return words


def _clip(v: float) -> float:
    return min(1.0, max(0.0, v))

