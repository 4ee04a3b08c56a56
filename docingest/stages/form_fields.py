"""Form fields (embedded): key/value pairs ("Key: value") and where their values sit."""

from __future__ import annotations

import re

from docingest.stages.labels import NEXT_LINE, SAME_LINE, Candidate, cell_under, cells
from docingest.stages.layout import Line
from docingest.schemas.fields import DocType
from docingest.schemas.records import ExtractedValue, Extraction


_KEY_VALUE = re.compile(r"^\s*([A-Za-z][^:]{1,60}?)\s*:\s*(.*)$")


def form_fields(lines: list[Line]) -> Extraction:
    """Key/value pairs: "Key: value" in a cell of its line, the value in the same cell, the
    next cell of the row, or the line under it."""
    values: list[ExtractedValue] = []
    for i, line in enumerate(lines):
        spans = cells(line)
        for k, (cs, ce) in enumerate(spans):
            m = _KEY_VALUE.match(line.text[cs:ce])
            if not m:
                continue
            key, rest = m.group(1).strip(), m.group(2).strip()
            if rest:
                start = line.text.index(rest, cs + m.start(2))
                cand = Candidate(rest, rest, line, start, start + len(rest), SAME_LINE * 0.8)
            elif k + 1 < len(spans) and not _KEY_VALUE.match(line.text[spans[k + 1][0]:spans[k + 1][1]]):
                ns, ne = spans[k + 1]
                cand = Candidate(line.text[ns:ne], line.text[ns:ne], line, ns, ne, SAME_LINE * 0.7)
            elif (under := cell_under(lines, i, cs, ce)) is not None and ":" not in under[0].text[under[1]:under[2]]:
                nxt, us, ue = under
                cand = Candidate(nxt.text[us:ue], nxt.text[us:ue], nxt, us, ue, NEXT_LINE * 0.7)
            elif i + 1 < len(lines) and lines[i + 1].page == line.page and ":" not in lines[i + 1].text:
                nxt = lines[i + 1]
                cand = Candidate(nxt.text, nxt.text, nxt, 0, len(nxt.text), NEXT_LINE * 0.7)
            else:
                continue
            values.append(cand.to_value("key_values", key=key))
    return Extraction(doc_type=DocType.FORM, values=values)
