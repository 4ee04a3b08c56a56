"""Render: open a document and hand out its pages one at a time.

Pages are streamed: a page's image is produced only when asked for and dropped by the caller
after use, so a 500-page PDF never holds more than one page image in memory. The PDF text
layer is read per page (words with boxes) and costs ~5 ms; rendering a page costs ~60 ms, so
pages whose text layer is good are not rendered at all.

PDFium is not thread-safe, not even across different documents: every call into it goes
through ``PDFIUM_LOCK`` (see the pypdfium2 docs, "Incompatibility with Threading").
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(slots=True)
class PageLayer:
    """A page's text layer: the words a reader sees, and those nobody sees on the rendered
    page (invisible render mode, transparent, white on white, tiny, outside the crop box)."""

    words: list[Word]
    hidden: list[Word]
    # The page draws an image: a layer that is hidden as a whole is then a scan's own OCR layer
    # (render mode 3 over the picture of the page), the one legitimate invisible text.
    has_image: bool = False
    # False when the page draws nothing at all: blank without rendering it.
    draws: bool = True


class OpenDocument(Protocol):
    page_count: int
    review_reasons: list[str]  # what a person should look at, whatever the pages say
    e_invoice_xml: bytes | None  # an embedded invoice XML (docingest.stages.e_invoice)

    def text_layer(self, index: int) -> list[Word]:
        """Words of page ``index`` (0-based) from the PDF text layer; [] when there is none."""

    def read_text(self, index: int) -> PageLayer:
        """The text layer's visible and hidden words of page ``index``."""

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
        self.review_reasons = _trailing_data(path)
        with PDFIUM_LOCK:
            self.e_invoice_xml = _embedded_invoice_xml(self._pdf)

    def _page(self, index: int):
        """Page ``index``; a page tree that loops or points nowhere is a corrupt document."""
        try:
            return self._pdf[index]
        except self._pdfium.PdfiumError as exc:
            raise CorruptDocument(f"cannot load page: {exc}", page=index + 1) from exc

    def page_size_points(self, index: int) -> tuple[float, float]:
        with PDFIUM_LOCK:
            page = self._page(index)
            try:
                return page.get_size()
            finally:
                page.close()

    def text_layer(self, index: int) -> list[Word]:
        return self.read_text(index).words

    def read_text(self, index: int) -> PageLayer:
        with PDFIUM_LOCK:
            page = self._page(index)
            textpage = page.get_textpage()
            try:
                crop = page.get_cropbox()
                rotation = page.get_rotation()
                if crop[2] - crop[0] <= 0 or crop[3] - crop[1] <= 0:
                    raise CorruptDocument(f"page has no area (crop box {crop})", page=index + 1)
                count = textpage.count_chars()
                text = textpage.get_text_range() if count else ""
                boxes = _char_boxes(textpage.raw, len(text), self._pdfium.PdfiumError)
                suspect = _suspect_objects(page.raw) if text else _NO_SUSPECTS
                hidden = _hidden_chars(textpage.raw, len(text), suspect) if suspect.any else None
                pale = _render_small(page) if suspect.pale else None
                draws = bool(text) or self._pdfium.raw.FPDFPage_CountObjects(page.raw) > 0
            finally:
                textpage.close()
                page.close()
        words, unseen = _words_from_chars(text, _displayed(boxes, crop, rotation),
                                          *_displayed_size(crop, rotation), hidden=hidden, image=pale)
        return PageLayer(words, unseen, suspect.has_image, draws)

    def render(self, index: int) -> Image.Image:
        with PDFIUM_LOCK:
            page = self._page(index)
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


_TAIL = 4096


def _embedded_invoice_xml(pdf) -> bytes | None:
    """The invoice XML a ZUGFeRD / Factur-X / XRechnung PDF embeds, if any. An attachment
    larger than the e-invoice limit is returned cut short (the parser then refuses it)."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    from docingest.stages.e_invoice import ATTACHMENT_NAMES, MAX_XML_BYTES

    try:
        count = pdf.count_attachments()
        for i in range(count):
            attachment = pdf.get_attachment(i)
            if attachment.get_name().strip().lower() not in ATTACHMENT_NAMES:
                continue
            length = ctypes.c_ulong()
            if not pdfium_c.FPDFAttachment_GetFile(attachment.raw, None, 0, ctypes.byref(length)):
                return None
            if length.value > MAX_XML_BYTES:
                return b"\0" * (MAX_XML_BYTES + 1)
            return bytes(attachment.get_data())
    except Exception:  # noqa: BLE001 - a broken attachment tree: read the pages as usual
        return None
    return None


def _trailing_data(path: str) -> list[str]:
    """A PDF ends at its last %%EOF; bytes after it (an appended ZIP, a script, a second file)
    are invisible to every PDF reader and make the file a polyglot: a person should look.
    None of the 361 dev PDFs carries any."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
    end = tail.rfind(b"%%EOF")
    extra = len(tail) - end - 5 if end >= 0 else len(tail)
    if end >= 0 and not tail[end + 5:].strip(b"\r\n\t \x00"):
        return []
    return [f"pdf_trailing_data:{extra}{'+' if end < 0 else ''}"]


# -- raster images ------------------------------------------------------------------------------
class ImageFileDocument:
    """PNG, JPEG, WEBP (one page); TIFF (every frame is a page); GIF (first frame only)."""

    review_reasons: list[str] = []
    e_invoice_xml: bytes | None = None

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

    def read_text(self, index: int) -> PageLayer:
        return PageLayer([], [])

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
        f"unsupported file type {suffix}: not a PDF, PNG, JPEG, TIFF, WEBP, GIF or CII e-invoice XML by its content"
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
        # The renderer rounds each side up: step down until the bitmap it makes fits.
        while scale > 0 and math.ceil(width * scale) * math.ceil(height * scale) > limits.max_image_pixels:
            scale *= 0.999
    return scale


def _displayed_size(crop: tuple[float, float, float, float], rotation: int) -> tuple[float, float]:
    width, height = crop[2] - crop[0], crop[3] - crop[1]
    return (height, width) if rotation in (90, 270) else (width, height)


@functools.cache
def _pdfium_fast():
    """The few PDFium functions called per character or per page object, re-typed to take and
    return plain integers (addresses): pypdfium2's typed wrappers convert a ctypes object per
    argument, which made the character boxes and the object scan most of a text page's
    reading time. Same library functions, same results; about twice as fast per call."""
    import ctypes
    from types import SimpleNamespace

    import pypdfium2.raw as pdfium_c

    int_, ptr, fptr = ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p

    def retype(fn, restype, *argtypes):
        return ctypes.CFUNCTYPE(restype, *argtypes)(ctypes.cast(fn, ctypes.c_void_p).value)

    return SimpleNamespace(
        char_box=retype(pdfium_c.FPDFText_GetCharBox, int_, ptr, int_, fptr, fptr, fptr, fptr),
        page_count=retype(pdfium_c.FPDFPage_CountObjects, int_, ptr),
        page_object=retype(pdfium_c.FPDFPage_GetObject, ptr, ptr, int_),
        form_count=retype(pdfium_c.FPDFFormObj_CountObjects, int_, ptr),
        form_object=retype(pdfium_c.FPDFFormObj_GetObject, ptr, ptr, ctypes.c_ulong),
        object_type=retype(pdfium_c.FPDFPageObj_GetType, int_, ptr),
        render_mode=retype(pdfium_c.FPDFTextObj_GetTextRenderMode, int_, ptr),
        font_size=retype(pdfium_c.FPDFTextObj_GetFontSize, int_, ptr, fptr),
        matrix=retype(pdfium_c.FPDFPageObj_GetMatrix, int_, ptr, fptr),
        fill_color=retype(pdfium_c.FPDFPageObj_GetFillColor, int_, ptr, fptr, fptr, fptr, fptr),
    )


def _address(handle) -> int:
    import ctypes

    return ctypes.cast(handle, ctypes.c_void_p).value


def _char_boxes(textpage_raw, count: int, error: type[Exception]):
    """Every character's PDFium box as an (n, 4) array of left, bottom, right, top, written by
    PDFium straight into the array."""
    import numpy as np

    boxes = np.zeros((count, 4), dtype=np.float64)
    char_box, textpage, base = _pdfium_fast().char_box, _address(textpage_raw), boxes.ctypes.data
    for i in range(count):
        at = base + 32 * i
        if not char_box(textpage, i, at, at + 16, at + 8, at + 24):  # PDFium's order: l, r, b, t
            raise error("Failed to get charbox.")
    return boxes


def _displayed(boxes, crop: tuple[float, float, float, float], rotation: int):
    """PDFium char boxes (user space, unrotated, origin at the page's bottom-left; an (n, 4)
    array of left, bottom, right, top) as they are shown: relative to the crop box and turned by
    the page's /Rotate. A landscape order stored as a portrait page turned 90° is read,
    rendered and laid out the way it is printed."""
    import numpy as np

    left, bottom = boxes[:, 0] - crop[0], boxes[:, 1] - crop[1]
    right, top = boxes[:, 2] - crop[0], boxes[:, 3] - crop[1]
    width, height = crop[2] - crop[0], crop[3] - crop[1]
    if rotation == 90:  # clockwise: (x, y) -> (y, width - x)
        columns = (bottom, width - right, top, width - left)
    elif rotation == 180:
        columns = (width - right, height - top, width - left, height - bottom)
    elif rotation == 270:  # (x, y) -> (height - y, x)
        columns = (height - top, left, height - bottom, right)
    else:
        columns = (left, bottom, right, top)
    return np.stack(columns, axis=1) if len(boxes) else boxes


# Text-layer characters nobody sees on the page. A doctored PDF can carry a second text layer
# (invisible render mode, transparent or white fill, a size nobody reads, placed outside the
# crop box) that says another invoice number than the printed one: such words are not
# evidence of what the document says.
_VISIBLE, _HIDDEN, _PALE = 0, 1, 2
# Text set smaller than this many points is not legible on paper or screen.
_MIN_LEGIBLE_POINTS = 2.0
# Fill brighter than this on every channel may be white on white: decided on the rendering.
_PALE_FILL = 235
# A pale word whose rendered box spans fewer grey levels than this shows nothing.
_MIN_CONTRAST = 40


@dataclass(slots=True, frozen=True)
class _Suspects:
    hidden: frozenset[int]  # text objects never seen (invisible render mode, transparent, tiny)
    pale: frozenset[int]  # text objects in near-white fill: seen only on a dark background
    has_image: bool = False

    @property
    def any(self) -> bool:
        return bool(self.hidden or self.pale)


_NO_SUSPECTS = _Suspects(frozenset(), frozenset())


def _suspect_objects(page_raw) -> _Suspects:
    """The page's text objects that may not be visible, found from their attributes (a few
    calls per text object, not per character; most pages have none)."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    f = _pdfium_fast()
    hidden: set[int] = set()
    pale: set[int] = set()
    images = 0
    rgba = (ctypes.c_uint * 4)()
    size = ctypes.c_float()
    matrix = pdfium_c.FS_MATRIX()
    color_at = [ctypes.addressof(rgba) + 4 * k for k in range(4)]
    size_at, matrix_at = ctypes.addressof(size), ctypes.addressof(matrix)
    invisible_modes = {pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE, pdfium_c.FPDF_TEXTRENDERMODE_CLIP}
    image_type, form_type, text_type = (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_FORM,
                                        pdfium_c.FPDF_PAGEOBJ_TEXT)

    def visit(count, get, parent: int, depth: int) -> None:
        nonlocal images
        if depth > 8:  # nested form XObjects: deep enough for any real document
            return
        for i in range(count(parent)):
            obj = get(parent, i)
            if not obj:
                continue
            kind = f.object_type(obj)
            if kind == image_type:
                images += 1
                continue
            if kind == form_type:
                visit(f.form_count, f.form_object, obj, depth + 1)
                continue
            if kind != text_type:
                continue
            # A few calls per text object. Size by the font and its matrix, not the glyph
            # boxes: some fonts give PDFium boxes of no height for glyphs that print normally.
            if f.render_mode(obj) in invisible_modes or (
                    f.font_size(obj, size_at) and f.matrix(obj, matrix_at)
                    and 0 < size.value * abs(matrix.a * matrix.d - matrix.b * matrix.c) ** 0.5 < _MIN_LEGIBLE_POINTS):
                hidden.add(obj)
            elif f.fill_color(obj, *color_at):
                if rgba[3] == 0:
                    hidden.add(obj)
                elif rgba[0] >= _PALE_FILL and rgba[1] >= _PALE_FILL and rgba[2] >= _PALE_FILL:
                    pale.add(obj)

    visit(f.page_count, f.page_object, _address(page_raw), 0)
    return _Suspects(frozenset(hidden), frozenset(pale - hidden), images > 0)


def _hidden_chars(textpage_raw, count: int, suspects: _Suspects) -> list[int]:
    """Per character: visible, hidden or pale, from the text object that drew it."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    flags = [_VISIBLE] * count
    last_key, last_flag = None, _VISIBLE
    for i in range(count):
        obj = pdfium_c.FPDFText_GetTextObject(textpage_raw, i)
        key = ctypes.cast(obj, ctypes.c_void_p).value if obj else None
        if key != last_key:
            last_key = key
            last_flag = _HIDDEN if key in suspects.hidden else _PALE if key in suspects.pale else _VISIBLE
        flags[i] = last_flag
    return flags


def _render_small(page):
    """The page in grey at 72 dpi (one pixel per point), to see whether pale text shows."""
    import numpy as np

    bitmap = page.render(scale=1.0, grayscale=True)
    try:
        return np.array(bitmap.to_numpy(), copy=True).reshape(bitmap.height, bitmap.width, -1)[:, :, 0]
    finally:
        bitmap.close()


def _shows(image, bbox: tuple[float, float, float, float]) -> bool:
    """Whether the rendered page shows anything in ``bbox`` (normalized, top-left origin)."""
    height, width = image.shape
    x0, x1 = int(bbox[0] * width), max(int(bbox[0] * width) + 1, int(round(bbox[2] * width)))
    y0, y1 = int(bbox[1] * height), max(int(bbox[1] * height) + 1, int(round(bbox[3] * height)))
    region = image[y0:y1, x0:x1]
    return region.size > 0 and int(region.max()) - int(region.min()) >= _MIN_CONTRAST


def _words_from_chars(
    text: str, boxes, width: float, height: float, hidden: list[int] | None = None, image=None,
) -> tuple[list[Word], list[Word]]:
    """Group PDFium characters into words with normalized top-left-origin boxes and line ids.
    Returns the visible words and the hidden ones (most of their characters hidden: drawn
    invisibly, or outside the page's crop box; pale ones that the rendering does not show).

    ``boxes``: the characters' (left, bottom, right, top) in PDF points, origin bottom-left, an
    (n, 4) array. A word is a run of characters between whitespace, NUL and line breaks; its box
    spans its characters that have an area. Computed per run with numpy, not per character."""
    import numpy as np

    n = len(text)
    if n == 0:
        return [], []
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    separators = [ord(c) for c in set(text) if _WS.match(c) or c == "\x00"]
    is_sep = np.isin(codes, separators)
    line_of = np.cumsum(codes == ord("\n")) if "\n" in text else np.zeros(n, dtype=np.int64)
    # Runs of non-separators: their starts and ends.
    edges = np.diff(np.concatenate(([True], is_sep, [True])).astype(np.int8))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    if len(starts) == 0:
        return [], []
    left, bottom, right, top = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    # reduceat spans a run and the separators after it: separators count for nothing.
    in_word = ~is_sep
    has_area = in_word & ((right > left) | (top > bottom))
    # Drawn outside the crop box: cut off the page everyone sees.
    outside = has_area & ((right <= 0) | (left >= width) | (top <= 0) | (bottom >= height))
    flags = np.asarray(hidden, dtype=np.int8) if hidden is not None else np.zeros(n, dtype=np.int8)
    inside = in_word & ~outside
    n_hidden = np.add.reduceat((outside | (inside & (flags == _HIDDEN))).astype(np.int64), starts)
    n_pale = np.add.reduceat((inside & (flags == _PALE)).astype(np.int64), starts)
    x0 = np.minimum.reduceat(np.where(has_area, left, np.inf), starts)
    x1 = np.maximum.reduceat(np.where(has_area, right, -np.inf), starts)
    y0 = np.minimum.reduceat(np.where(has_area, bottom, np.inf), starts)
    y1 = np.maximum.reduceat(np.where(has_area, top, -np.inf), starts)

    words: list[Word] = []
    unseen: list[Word] = []
    for k in np.flatnonzero(x1 > x0).tolist():
        start, end = int(starts[k]), int(ends[k])
        bbox = (_clip(float(x0[k]) / width), _clip(1 - float(y1[k]) / height),
                _clip(float(x1[k]) / width), _clip(1 - float(y0[k]) / height))
        word = Word(Word.clean(text[start:end]), bbox, 1.0, int(line_of[start]))
        length, hid, pale = end - start, int(n_hidden[k]), int(n_pale[k])
        if 2 * hid > length:
            unseen.append(word)
        elif 2 * (hid + pale) > length and image is not None and not _shows(image, bbox):
            unseen.append(word)
        else:
            words.append(word)
    return words, unseen


def _clip(v: float) -> float:
    return min(1.0, max(0.0, v))

