"""Lines of text with the word boxes behind every character span.

Extraction matches regular expressions on line text; ``Line.bbox`` and ``Line.confidence``
map a matched span back to the words it covers, so every value keeps its page and box.
"""

from __future__ import annotations

from dataclasses import dataclass

from docingest.schemas.records import BBox, PageText, TextSource, Word


@dataclass(slots=True)
class Line:
    page: int
    index: int  # order within the document
    words: list[Word]
    text: str
    starts: list[int]  # character offset of each word in ``text``
    source: TextSource

    def span_words(self, start: int, end: int) -> list[Word]:
        return [
            w for w, s in zip(self.words, self.starts) if s < end and s + len(w.text) > start
        ]

    def bbox(self, start: int, end: int) -> BBox | None:
        return union_bbox(self.span_words(start, end))

    def confidence(self, start: int, end: int) -> float:
        words = self.span_words(start, end)
        return min((w.confidence for w in words), default=0.0)

    @property
    def top(self) -> float:
        return min((w.bbox[1] for w in self.words), default=0.0)


def union_bbox(words: list[Word]) -> BBox | None:
    if not words:
        return None
    return (
        min(w.bbox[0] for w in words), min(w.bbox[1] for w in words),
        max(w.bbox[2] for w in words), max(w.bbox[3] for w in words),
    )


def document_lines(pages: list[PageText]) -> list[Line]:
    lines: list[Line] = []
    for page in pages:
        by_line: dict[int, list[Word]] = {}
        for word in page.words:
            by_line.setdefault(word.line, []).append(word)
        for _, words in sorted(by_line.items()):
            words.sort(key=lambda w: w.bbox[0])
            starts, parts, pos = [], [], 0
            for w in words:
                starts.append(pos)
                parts.append(w.text)
                pos += len(w.text) + 1
            lines.append(
                Line(page.page, len(lines), words, " ".join(parts), starts, page.source)
            )
    return lines


# Between two columns of a page there is more room than between two words of one column: a
# tenth of the page width (words of an address line sit 0.01-0.02 apart).
COLUMN_GAP = 0.1


def column_of(line: Line, left: float, next_column: float | None = None,
              slack: float = 0.03) -> tuple[Line, float | None]:
    """The part of ``line`` in the column starting at ``left`` (a page fraction), and where the
    next column to its right starts. The column's words run from the first one at or right of
    ``left`` up to a gap as wide as a column gap (one after a label, "Name:      Lieferant GmbH",
    joins a label to its value), or up to ``next_column`` when an earlier row found it."""
    words: list[Word] = []
    for w in line.words:
        if w.bbox[0] < left - slack:
            continue
        if next_column is not None and w.bbox[0] >= next_column - slack:
            break
        if words and w.bbox[0] - words[-1].bbox[2] > COLUMN_GAP and not words[-1].text.endswith(":"):
            next_column = w.bbox[0]
            break
        words.append(w)
    if len(words) == len(line.words):
        return line, next_column
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w.text) + 1
    return Line(line.page, line.index, words, " ".join(w.text for w in words), starts, line.source), next_column
