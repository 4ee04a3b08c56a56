"""What you see is what is read: text-layer words invisible on the page are not evidence.

A PDF can carry text nobody sees (render mode 3, transparent or white-on-white fill, a size
nobody reads, placed outside the crop box: ``docingest.stages.render``). Real documents carry
some (an invisible "powered by" mark, a repeated header); a doctored one carries another
invoice number or total than the printed one. The hidden words are kept out of extraction,
and a document goes to review when they say something the page does not show: when reading
them would change a value or the document type, or when they hold a number or code that is
printed nowhere on that page.
"""

from __future__ import annotations

import re

from docingest.stages.classify import classify_document
from docingest.stages.extract import extract_fields
from docingest.stages.legibility import EDGE_PUNCTUATION
from docingest.schemas.records import Extraction, PageInfo, PageText

_HAS_DIGIT = re.compile(r"\d")


def _token(text: str) -> str:
    return text.strip(EDGE_PUNCTUATION).casefold()


def hidden_text_reasons(pages: list[PageText], infos: list[PageInfo], extraction: Extraction) -> list[str]:
    """Review reasons (``hidden_text_layer:<what>``) for hidden words that disagree with the
    page; [] when there are none or they say nothing new."""
    if not any(p.hidden for p in pages):
        return []
    reasons: list[str] = []
    for page in pages:
        shown = {_token(w.text) for w in page.words}
        unseen = [w.text for w in page.hidden if _HAS_DIGIT.search(w.text) and _token(w.text) not in shown]
        if unseen:
            reasons.append(f"hidden_text_layer:numbers_p{page.page}")
    merged = [PageText(p.page, p.source, sorted(p.words + p.hidden, key=lambda w: (w.line, w.bbox[0])))
              for p in pages]
    if classify_document(merged, infos).doc_type != extraction.doc_type:
        reasons.append("hidden_text_layer:doc_type")
    read = {(v.field_name, v.key): v.value for v in extraction.values}
    with_hidden = {(v.field_name, v.key): v.value for v in extract_fields(merged, extraction.doc_type).values}
    changed = sorted({name for (name, key), value in with_hidden.items() if read.get((name, key)) != value}
                     | {name for (name, key) in read if (name, key) not in with_hidden})
    reasons.extend(f"hidden_text_layer:{name}" for name in changed)
    return reasons
