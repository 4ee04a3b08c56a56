"""How much of a text layer reads as words: a garbled layer is OCRed again.

Scanned PDFs often carry an invisible text layer from the scanner's own OCR. Some of those
are noise ("SlaUon oilred or Fqrtded"), some are upside down. Such a layer has enough words to
pass for born-digital, so the word count alone does not send it to OCR; the shape of its
words does. A word is legible when each of its pieces (split at punctuation) is lower case,
capitalised, upper case, a number, or a code of capitals and digits. Measured on the dev
set: born-digital and good layers ≥ 0.87 (median 0.99), the garbled ones 0.44–0.81.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EDGE_PUNCTUATION = "\"'“”‘’«»()[]{}.,;:!?*•·"
_SEPARATORS = re.compile(r"[-/.,:;&'’()+#%$€£=_]+")
# "3rd", "7:48AM", "8a", "563-2974x": a number with a short unit or ordinal.
_NUMBER_WITH_SUFFIX = re.compile(r"\d+(?:st|nd|rd|th|am|pm|a|p|x|h|m|s|k)", re.IGNORECASE)


def _piece_is_legible(piece: str) -> bool:
    if piece.isdigit():
        return True
    if piece.isalpha():
        return piece.islower() or piece.isupper() or (piece[0].isupper() and piece[1:].islower())
    if piece.isalnum():  # letters and digits: an id in capitals ("DE123456789") or "3rd"
        return piece.upper() == piece or bool(_NUMBER_WITH_SUFFIX.fullmatch(piece))
    return False


def is_legible(token: str) -> bool | None:
    """True / False for a word, None for punctuation alone (it says nothing either way)."""
    core = token.strip(EDGE_PUNCTUATION)
    if not any(c.isalnum() for c in core):
        return None
    pieces = [p for p in _SEPARATORS.split(core) if p]
    return bool(pieces) and all(_piece_is_legible(p) for p in pieces)


def legible_share(tokens: Iterable[str]) -> float:
    """The share of legible words; 1.0 when there is nothing to judge."""
    verdicts = [v for v in (is_legible(t) for t in tokens) if v is not None]
    return sum(verdicts) / len(verdicts) if verdicts else 1.0
