"""Contract fields (embedded): the parties (the "between ... and ..." clause, completed from
the signature blocks), the effective date, the governing law and the agreement's own term."""

from __future__ import annotations

import re

from docingest.stages.labels import FALLBACK, NEXT_LINE, SAME_LINE, Candidate, cells, is_grounded, plausible
from docingest.stages.layout import Line
from docingest.stages.normalize import find_dates, fold_text
from docingest.schemas.fields import DocType
from docingest.schemas.records import ExtractedValue, Extraction


# "between|among X (…) and Y (…)": where each name ends, its description or definition starts.
_BETWEEN = re.compile(r"\b(?:between|among)\s*:?\s+", re.I)
_FIRST_PARTY = re.compile(
    r"(.{3,160}?)(?:\s*\(|,\s*a\s|,\s*an\s|,\s*having|,\s*with|(?<!\b[A-Z])\.\s)", re.I | re.S)
_AND = re.compile(r"\band\s+", re.I)
# A sentence ends at ". ", but not after an initial ("Ronald A. Bucchi").
_SECOND_PARTY = re.compile(
    r"(.{3,160}?)(?:\s*\(|,\s*a\s|,\s*an\s|,\s*having|,\s*with|(?<!\b[A-Z])\.\s)", re.I | re.S)
_CLAUSES_TRIED = 3
# "… AGREEMENT BETWEEN THE COMPANY AND BTMU, DATED …": two names in capitals joined by AND.
_TITLE_PAIR = re.compile(r"[^a-z]*\bAND\b")
# Where a party's name ends: its description follows ("…, existing under the laws of", "…, who
# resides at", "…, its affiliates").
_PARTY_TAIL = re.compile(
    r"\s*,?\s*\b(?:who|which|existing|organized|incorporated\s+(?:in|under)|having|located|"
    r"residing|with\s+(?:its|offices)|its\s+(?:affiliates|subsidiaries)|on\s+behalf|dated|exhibit)\b.*$",
    re.I | re.S)
# Text a "between … and …" clause catches that is no party: a blank, a role, a clause.
_NOT_A_PARTY = re.compile(
    # "A." is an initial ("A. Bruce Montgomery"); "a" followed by a word is an article.
    r"^(?:(?:its|any|each|all|the\s+laws|person|company\s+and|you|us|parties|gentlemen|dear)\b|an?\s|"
    # A role, not a name: "between the Bank and Employee", "the Disclosing Party".
    r"(?:employee|employer|executive|recipient|discloser|consultant|bank)\b(?!\s+(?-i:[A-Z]))|"
    r"(?:disclosing|receiving)\s+party\b|"
    r"company\W*(?:or|and)?\W*$|[\W_]*$)", re.I)


_CREDENTIAL = re.compile(r",?\s+(?:M\.D\.|Ph\.D\.|Esq\.|J\.D\.)$")
_COMPANY_FORM = re.compile(r"(?i)\b(?:inc|corp|corporation|llc|ltd|limited|l\.?p|n\.v|s\.a|gmbh|plc)\b")
_ABBREVIATED = re.compile(r"\b(?:Inc|Corp|Ltd|Co|L\.P|N\.V|S\.A)$", re.I)


def _party_name(span: str) -> str | None:
    raw = re.sub(r"\s+", " ", span).strip(" ,;:\"“”")
    raw = re.sub(r"^(the\s+)", "", raw, flags=re.I)
    raw = _PARTY_TAIL.sub("", raw).strip(" ,;:\"“”")
    raw = _CREDENTIAL.sub("", raw)  # "A. Bruce Montgomery, M.D." is A. Bruce Montgomery
    # A name starts with a capital or a digit ("3M Company"), or is a company's ("salesforce.com,
    # inc."); "rights and obligations set forth herein" or "myself and each of" is the clause
    # around the names.
    if not raw or _NOT_A_PARTY.match(raw) or len(raw) > 80:
        return None
    if not (raw[0].isupper() or raw[0].isdigit() or _COMPANY_FORM.search(raw)):
        return None
    return raw


# A signature line: "By:", "By: ______", "By: /s/ Jane Roe".
_SIGNATURE = re.compile(r"^\s*(?:By|BY)\s*:?\s*(?:_{2,}|/s/|$|[A-Z])")
# A line above a signature line that is a closing or a caption, not the signing company.
_NOT_SIGNER = re.compile(r"(?i)witness|whereof|sincerely|very truly|accepted|agreed|acknowledged|signature|"
                         r"page|date|\d{3,}")


def _signing_companies(lines: list[Line]) -> list[Candidate]:
    """The companies named right above signature lines, once each, in the order signed. Two
    signature blocks side by side share a line: each cell is read on its own."""
    found: list[Candidate] = []
    for i, line in enumerate(lines):
        if not _SIGNATURE.match(line.text):
            continue
        above = next((l for l in reversed(lines[max(0, i - 3): i]) if l.text.strip(" _:,[]")), None)
        if above is None or _NOT_SIGNER.search(above.text):
            continue
        for start, end in cells(above):
            # "Recipient Name: KBS Capital Advisors LLC", "[RECIPIENT] Perseon Corporation"
            cell = re.sub(r"^[^:]{1,30}:\s*|^\[?[A-Z]+\]\s*", "", above.text[start:end]).strip(" :,[]")
            if (_COMPANY_FORM.search(cell) and len(cell) < 70 and cell[:1].isupper()
                    and not any(_same_party(cell, c.value) for c in found)):
                offset = above.text.index(cell, start)
                found.append(Candidate(cell, cell, above, offset, offset + len(cell), NEXT_LINE,
                                       method="signature_block"))
    return found


def _same_party(a: str, b: str | None) -> bool:
    """"NitroMed, Inc." and "NITROMED, INC." (or a name inside a clause that names it)."""
    x, y = (fold_text(t).replace(" ", "") for t in (a, b or ""))
    return bool(x and y) and (x in y or y in x)


_EFFECTIVE = re.compile(
    r"(?:effective\s+(?:as\s+of|date|on)|dated\s+(?:as\s+of)?|entered\s+into(?:\s+(?:as\s+of|on))?|"
    r"made\s+(?:as\s+of|on)|as\s+of)\s*:?\s*(?:(?:this|the)\s+)?", re.I
)
# '(the "Effective Date")' right after a date names it the effective one.
_NAMED_EFFECTIVE = re.compile(r"\s*\(?\s*(?:the|this)?\s*[\"“”']?\s*effective\s+date", re.I)
_SIGNED_ON = re.compile(r"\b(?:Date|Dated)\s*:\s*")
_GOVERNING = re.compile(r"govern(?:ed|s)?\b|governing\s+law|construed|applicable\s+law", re.I)
# "the laws of the State of New York", also in capitals ("LAWS OF THE STATE OF DELAWARE"); a
# state named after "the United States and" is the one meant.
_LAWS_OF = re.compile(
    r"(?i:laws?\s+of\s+(?:the\s+)?(?:united\s+states\s+(?:of\s+america\s+)?and\s+(?:the\s+)?)?"
    r"(?:state|commonwealth|province)?\s*(?:of\s+)?)"
    r"([A-Z][A-Za-z]+(?:\s+[A-Z][a-z]+|\s+[A-Z]+(?=\s+(?:WITHOUT|APPLICABLE|AND|SHALL|,)))?)"
)
_TERM = re.compile(
    r"\b(?:term|period)\s+of\s+(?:\w+\s+)?\(?(\d+|one|two|three|four|five|six|seven|eight|nine|ten|"
    r"twelve|eighteen|twenty-four|thirty-six)\)?\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b",
    re.I,
)
_NUMBERS = (r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|eighteen|"
            r"twenty-four|thirty-six)")
# "shall terminate two years after", "will expire two (2) years from", "remain in effect for three years"
_TERM_ENDS = re.compile(
    r"\b(?:terminat\w*|expir\w*|remain\s+in\s+(?:full\s+force\s+and\s+)?effect|continue\s+in\s+"
    r"(?:full\s+force\s+and\s+)?effect)\s+(?:automatically\s+)?(?:for\s+)?(?:a\s+period\s+of\s+)?"
    r"(?:upon\s+the\s+)?" + _NUMBERS + r"\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b", re.I)
_DURATION = _NUMBERS + r"\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b"
# "17. Term. This letter agreement will terminate two (2) years from the date hereof."; a
# "5. Duration." or "3. TERM AND TERMINATION" section says the same.
_TERM_HEADING = re.compile(
    r"(?i:\bterm(?:\s+of\s+(?:this\s+)?agreement)?\s*[.:]|\bduration\s*[.:])\s[^.]{0,200}?\b(?i:" + _DURATION + ")"
    r"|\b(?:TERM AND TERMINATION|Term and Termination)\b\.?\s[^.]{0,200}?\b(?i:" + _DURATION + ")")
# "for a period of one year following the Effective Date ("the Term")": the duration the
# agreement defines as its term.
_NAMED_TERM = re.compile(r"(?i)\b" + _DURATION + r"[^.()]{0,60}\(\s*[\"“]?(?:the\s+)?[\"“]?(?:[a-z]+\s+)?term[\"”]?\s*\)")
# "The term of this Agreement shall be one (1) year from the date hereof."
_TERM_IS = re.compile(r"(?i)\bterm\s+of\s+this\s+(?:letter\s+)?agreement\s+(?:shall|will)\s+be\s+(?:for\s+)?"
                      r"(?:a\s+period\s+of\s+)?" + _DURATION)
# "This Agreement shall terminate in its entirety one year after", "the obligations hereunder
# shall terminate five years from".
_AGREEMENT_ENDS = re.compile(
    r"(?i)\b(?:agreement|obligations?|hereunder|confidentiality)\b[^.;]{0,80}?\b(?:shall|will)\s+"
    r"(?:automatically\s+)?(?:terminat\w*|expir\w*|remain\s+in\s+(?:full\s+force\s+and\s+)?effect|"
    r"continue\s+in\s+(?:full\s+force\s+and\s+)?effect)\b[^.;]{0,40}?\b" + _DURATION)
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "eighteen": 18,
                 "twenty-four": 24, "thirty-six": 36}


def _governing_law(text: str) -> re.Match[str] | None:
    """The jurisdiction named by a governing-law clause: "governed by ... the laws of the State
    of New York", looked for within a sentence of the clause's verb."""
    for anchor in _GOVERNING.finditer(text):
        # After the verb ("governed by the laws of ..."), else just before it ("the laws of
        # the State of Indiana shall govern").
        for m in (_LAWS_OF.search(text, anchor.end(), anchor.end() + 250),
                  _LAWS_OF.search(text, max(0, anchor.start() - 80), anchor.start())):
            if m and m.group(1).split()[0].casefold() not in ("agreement", "this", "such", "any", "the"):
                return m
    return None


def term_value(text: str) -> str | None:
    """'a term of two (2) years' -> '2_years'; None when no term is stated."""
    t = _TERM.search(text) or re.search(
        r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|eighteen|twenty-four|"
        r"thirty-six)\s*(?:\(\d+\)\s*)?(years?|months?|days?)\b", text, re.I)
    return _duration(t.group(1), t.group(2)) if t else None


def contract_fields(lines: list[Line]) -> Extraction:
    values: list[ExtractedValue] = []
    head = lines[:120]
    text, index = _joined(head)

    for raw, start in _between_parties(text):
        values.append(_span_value("parties", raw, start, start + len(raw), index, NEXT_LINE))
    # Letter agreements and "by and between" clauses that name only one side: the companies
    # above the signature lines ("ACME, INC." / "By: ____") are the others.
    for signer in _signing_companies(lines):
        if len(values) >= 2:
            break
        if not any(_same_party(signer.value, v.value) for v in values):
            values.append(signer.to_value("parties"))

    full, full_index = _joined(lines)
    effective = _effective_date(text, index) or _signature_date(full, full_index)
    if effective is None:
        dates = [d for d in find_dates(text, dayfirst=False) if plausible(d[2])]
        if dates:
            s, e, d = dates[0]
            effective = _span_value("effective_date", text[s:e], s, e, index, FALLBACK, value=d.isoformat())
            effective.method = "first_date"
    if effective is not None:
        values.append(effective)

    g = _governing_law(full)
    if g:
        name = g.group(1)
        values.append(_span_value("jurisdiction", name, g.start(1), g.end(1), full_index, NEXT_LINE,
                                  value=name.title() if name.isupper() else name))  # "DELAWARE"
    # The agreement's own duration: the one it defines as "the Term", a "Term." / "Duration."
    # section, else the agreement (or its obligations) ending N years on. A bare "for a period of one year" is a non-solicit or a survival
    # clause more often than the term: on the 83 dev NDAs it was the labelled term 5 times
    # in 25, so it is not read as one.
    for method, pattern in (("named_term", _NAMED_TERM), ("term_heading", _TERM_HEADING), ("term_is", _TERM_IS),
                            ("agreement_ends", _AGREEMENT_ENDS), ("ends", _TERM_ENDS)):
        t = pattern.search(full)
        if t:
            term = _span_value("term", t.group(0), t.start(), t.end(), full_index, NEXT_LINE,
                               value=_duration(*[g for g in t.groups() if g][-2:]))
            term.method = method
            values.append(term)
            break
    return Extraction(doc_type=DocType.CONTRACT, values=values)


def _between_parties(text: str) -> list[tuple[str, int]]:
    """The parties a "between … and …" clause names, with where each starts: the first of the
    opening clauses that names two, else what the first one names. A filing's title in
    capitals ("CONFIDENTIALITY AGREEMENT BETWEEN THE COMPANY AND BTMU, DATED …") uses short
    names and is no such clause."""
    clauses = [_clause_parties(text, b.end()) for b in list(_BETWEEN.finditer(text))[:_CLAUSES_TRIED]
               if not _TITLE_PAIR.match(text, b.end(), b.end() + 60)]
    return next((names for names in clauses if len(names) == 2), clauses[0] if clauses else [])


def _clause_parties(text: str, at: int) -> list[tuple[str, int]]:
    first = _FIRST_PARTY.match(text, at)
    if first is None:
        return []
    # "between Galil Medical, Inc., and Perseon Corporation, a Delaware corporation": one
    # description after both names.
    pair = re.match(r"(.+?),?\s+(?i:and)\s+(.+)$", first.group(1), re.S)
    spans = [(first.start(1), first.group(1))] if pair is None else [
        (first.start(1) + pair.start(g), pair.group(g)) for g in (1, 2)]
    if text[first.end(1): first.end(1) + 1] == "." and _ABBREVIATED.search(spans[-1][1]):
        spans[-1] = (spans[-1][0], spans[-1][1] + ".")  # "… and DMI Furniture, Inc. RECITALS"
    names: list[tuple[str, int]] = []
    for start, span in spans:
        if raw := _party_name(span):
            names.append((raw, start + span.find(raw.split()[0])))
    if pair is None:
        names.extend(n for n in _second_party(text, first.end())
                     if not any(_same_party(n[0], m[0]) for m in names))
    return names


def _second_party(text: str, after: int) -> list[tuple[str, int]]:
    """The party after the "and" that names it. An "and" inside a description ("organized and
    existing under the laws of Minnesota", "on behalf of itself and its subsidiaries") is
    followed by lower-case words, so the next "and" is tried: "… and Jerald K. Dittmer"."""
    for n, a in enumerate(_AND.finditer(text, after, after + 400)):
        follows = text[a.end(): a.end() + 1]  # "" when the text ends there
        if n and follows.islower():
            continue  # still inside the description
        if n and not follows.isupper():
            return []
        second = _SECOND_PARTY.match(text, a.end())
        if second is None:
            return []
        # "…, existing under the laws of Delaware, and John D. Thomas": the last "and" names him.
        span = re.split(r",\s+and\s+", second.group(1))[-1]
        if text[second.end(1): second.end(1) + 1] == "." and _ABBREVIATED.search(span):
            span += "."
        if raw := _party_name(span):
            return [(raw, second.start(1) + second.group(1).find(raw.split()[0]))]
        if not follows.islower():
            return []
    return []


def _effective_date(text: str, index: list[tuple[int, Line]]) -> ExtractedValue | None:
    """The date after "effective as of", "dated", "entered into as of" ... An agreement "dated
    as of October 15 and effective as of September 20 (the "Effective Date")" takes effect on
    the date it names as effective, so that one wins over the first."""
    found = []
    for em in _EFFECTIVE.finditer(text):
        dates = find_dates(text[em.end(): em.end() + 40], dayfirst=False)
        if dates and dates[0][0] == 0 and plausible(dates[0][2]):
            s, e, d = dates[0]
            named = em.group(0).lower().startswith("effective") or bool(
                _NAMED_EFFECTIVE.match(text, em.end() + e))
            found.append((not named, em.end() + s, em.end() + e, d))
    if not found:
        return None
    _, start, end, d = min(found, key=lambda f: (f[0], f[1]))
    value = _span_value("effective_date", text[start:end], start, end, index, SAME_LINE, value=d.isoformat())
    value.method = "effective_phrase"
    return value


def _signature_date(text: str, index: list[tuple[int, Line]]) -> ExtractedValue | None:
    """With no effective date stated, the agreement takes effect when the last party signs:
    the latest "Date: 9/4/12" / "Dated: January 27, 2016" of the signature blocks."""
    found = []
    for m in _SIGNED_ON.finditer(text):
        dates = find_dates(text[m.end(): m.end() + 30], dayfirst=False)
        if dates and dates[0][0] == 0 and plausible(dates[0][2]):
            s, e, d = dates[0]
            found.append((d, m.end() + s, m.end() + e))
    if not found:
        return None
    d, start, end = max(found, key=lambda f: (f[0], -f[1]))
    value = _span_value("effective_date", text[start:end], start, end, index, NEXT_LINE, value=d.isoformat())
    value.method = "signature_date"
    return value


def _duration(number: str, unit: str) -> str:
    """('two', 'years') -> '2_years'; ('one', 'year') -> '1_year'."""
    n = int(number) if number.isdigit() else _NUMBER_WORDS[number.lower()]
    return f"{n}_{unit.lower().rstrip('s')}" + ("" if n == 1 else "s")


def _joined(lines: list[Line]) -> tuple[str, list[tuple[int, Line]]]:
    """Lines joined by spaces, with the offset at which each line starts."""
    parts, index, pos = [], [], 0
    for line in lines:
        index.append((pos, line))
        parts.append(line.text)
        pos += len(line.text) + 1
    return " ".join(parts), index


def _span_value(name: str, raw: str, start: int, end: int, index: list[tuple[int, Line]],
                how: float, value: str | None = None) -> ExtractedValue:
    line_start, line = next(((s, l) for s, l in reversed(index) if s <= start), index[0])
    cand = Candidate(raw, value if value is not None else raw, line,
                     start - line_start, max(start - line_start + 1, min(end - line_start, len(line.text))), how)
    result = cand.to_value(name)
    # A span that wraps onto the next line is still seen on the page.
    result.grounded = is_grounded(raw, " ".join(l.text for _, l in index))
    return result
