"""Validate and preprocess a page image (the seed's validate + preprocess stages).

Validation turns every violation into a typed error for that page; preprocessing gives the
engines a consistent input: upright (EXIF), RGB, at most ``target_max_dimension`` pixels.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from docingest.config import InputLimits, PreprocessOptions
from docingest.errors import ImageTooLarge, ImageTooSmall
from docingest.stages.render import check_pixels


def validate_page_image(image: Image.Image, limits: InputLimits, page: int) -> None:
    check_pixels(image.size, limits, page=page)
    width, height = image.size
    if width < limits.min_dimension or height < limits.min_dimension:
        raise ImageTooSmall(
            f"page image is {width}x{height}, smaller than the minimum of "
            f"{limits.min_dimension} px on a side",
            page=page,
        )
    if width > limits.max_dimension or height > limits.max_dimension:
        raise ImageTooLarge(
            f"page image is {width}x{height}, larger than the maximum of "
            f"{limits.max_dimension} px on a side",
            page=page,
        )


def preprocess_page_image(image: Image.Image, options: PreprocessOptions) -> Image.Image:
    image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        # Flatten transparency onto white: a transparent background read as black hides text.
        if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            background = Image.new("RGB", rgba.size, (255, 255, 255))
            background.paste(rgba, mask=rgba.getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
    longest = max(image.size)
    if longest > options.target_max_dimension:
        scale = options.target_max_dimension / longest
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


# A page is blank when fewer pixels than this stand out from its background: a speck of
# dust, not a word (one printed digit at 200 dpi is a few hundred pixels).
_BLANK_MAX_INK_PIXELS = 64
_INK_CONTRAST = 96


def is_blank(image: Image.Image) -> bool:
    """Nothing printed on the page: OCR would spend seconds to find nothing (a few ms here)."""
    import numpy as np

    gray = np.asarray(image.convert("L"), dtype=np.int16)
    background = int(np.median(gray[::8, ::8]))
    return int(np.count_nonzero(np.abs(gray - background) > _INK_CONTRAST)) < _BLANK_MAX_INK_PIXELS


def encode_jpeg(image: Image.Image, options: PreprocessOptions) -> bytes:
    """The page as JPEG for engines that take bytes (a VLM request)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=options.jpeg_quality, optimize=True)
    return buffer.getvalue()
