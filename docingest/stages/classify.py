"""Classify a document as invoice / receipt / contract / form / other from its words.

An embedded, explainable scorer: weighted cue phrases per type (English, German, French),
plus layout cues (a tall narrow scanned page is a till receipt). The confidence is the
softmax share of the winning type, so two types that both score high give a low confidence
and the document is routed to review rather than guessed.
"""

from __future__ import annotations

import math
import re

from docingest.schemas.fields import DocType
from docingest.schemas.records import Classification, PageInfo, PageText, TextSource

# (pattern, weight). Patterns are matched case-insensitively on the document's text; each
# counts at most twice so that one repeated word cannot decide the type on its own.
CUES: dict[DocType, list[tuple[str, float]]] = {
    DocType.INVOICE: [
        (r"\binvoice\b", 3.0), (r"\brechnung", 3.0), (r"\bfacture\b", 3.0),
        (r"invoice\s*(no|number|#|date)", 2.0), (r"rechnungs(nummer|datum)", 2.0),
        (r"\bbill\s*to\b", 2.0), (r"\bdue\s*date\b", 1.5), (r"\bamount\s*due\b", 1.5),
        (r"payment\s*terms", 1.5), (r"zahlungs(ziel|bedingungen)", 1.5), (r"\biban\b", 1.0),
        (r"\bust[.-]?id", 1.0), (r"\bvat\s*(no|number|id|reg)", 1.0), (r"\bnet(to)?\b", 0.5),
        (r"unit\s*price", 1.0), (r"einzelpreis", 1.0), (r"\bgross\b", 0.5),
        (r"\badvertiser\b", 1.5), (r"\bagency\b", 0.5), (r"\bcontract\s*(#|no|number)", 1.0),
        (r"\border\s*(#|no|number)", 0.5), (r"\bspots?\b", 0.5), (r"\bestimate\b", 0.5),
        (r"\bsumme\b", 1.0), (r"\bmwst|\bmehrwertsteuer|\bust\b", 1.0), (r"\btva\b", 1.0),
        (r"\btotal\b", 0.5),
        # Broadcast orders print their money table under a "Contract" title with terms and
        # conditions on the back: the totals make them a money document.
        (r"\bgross\s*amount\b", 1.0), (r"\bnet\s*amount\b", 1.0),
        (r"\bagency\s*comm", 1.0),
    ],
    DocType.RECEIPT: [
        (r"\breceipt\b", 3.0), (r"\bcash(ier)?\b", 2.0), (r"\bchange\b", 1.5),
        (r"\btendered\b", 2.0), (r"thank\s*you", 1.5), (r"\bgst\b", 1.5),
        (r"\bsdn\.?\s*bhd\b", 2.0), (r"\brounding\b", 2.0), (r"\bqty\b", 0.5),
        (r"tax\s*invoice", 1.5), (r"\bmember\b", 0.5), (r"\bvisa\b|\bmastercard\b", 0.5),
        (r"\btotal\b", 1.0), (r"\bsubtotal\b|\bsub\s*total\b", 0.5), (r"\btel\b", 0.5),
        (r"\bbill\s*no\b|\breceipt\s*no\b", 1.5), (r"\brm\s*\d", 1.0), (r"\bpax\b|\btable\b", 0.5),
    ],
    DocType.CONTRACT: [
        (r"\bagreement\b", 3.0), (r"\bwhereas\b", 2.5), (r"\bhereby\b", 1.5),
        (r"\bparties\b", 2.0), (r"\bshall\b", 1.0), (r"\bconfidential(ity)?\b", 1.5),
        (r"governed\s+by", 2.0), (r"in\s+witness\s+whereof", 2.5), (r"\btermination\b", 1.0),
        (r"non-?disclosure", 2.5), (r"\bhereinafter\b", 1.5), (r"\bindemnif", 1.0),
        (r"\bvertrag\b", 2.0), (r"\bcontrat\b", 2.0),
    ],
    DocType.FORM: [
        (r"\bform\b", 1.5), (r"please\s*(print|type|complete)", 2.0), (r"\bsignature\b", 1.0),
        (r"[☐□■☑☒]|\[\s?[xX ]?\s?\]", 1.0), (r"\bomb\s*(no|number|control)", 2.5),
        (r"registration\s*(no|number|statement)", 1.5), (r"\bregistrant\b", 2.0),
        (r"\bforeign\s+principal\b", 2.5), (r"\bitem\s*\d", 1.0), (r"\bname\s+of\b", 0.5),
        (r"\bcheck\s*(one|box|if)\b", 1.5), (r"\byes\b.{0,20}\bno\b", 0.5),
        (r"\bto:\s", 0.5), (r"\bfrom:\s", 0.5), (r"\bsubject:\s|\bre:\s", 0.5), (r"\bfax\b", 1.0),
        (r"\bdate:", 0.5), (r"\bpage\s*\d+\s*of\s*\d+\b", 0.3), (r"\brequest\b", 0.5),
        (r"\bapproved\s*by\b|\bprepared\s*by\b", 1.0), (r"\bbrand\b", 0.5),
        # Memos, request and specification sheets: the forms of an office.
        (r"\battention\b|\battn\b", 1.0), (r"\bcopies\s*to\b|\bcc\s*:", 1.0),
        (r"\b(received|submitted|requested|written|made|initiated)\s*by\b", 1.0),
        (r"\bproject\s*(no|number|#)", 1.0), (r"\bspecifications?\b", 1.0),
        (r"\bdate\s*(of|submitted|received)\b", 1.0), (r"\bremarks\b|\bcomments?\b", 0.5),
        # Blanks to fill in ("Name ____", "Batch Size_ 50") and ticked boxes.
        (r"_{2,}|[A-Za-z]_|_[A-Za-z0-9]", 1.0), (r"[口√✓✔]", 1.0),
    ],
}
_COMPILED = {t: [(re.compile(p, re.I), w) for p, w in cues] for t, cues in CUES.items()}


def _required_words(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Words one of which every match of ``pattern`` contains: per top-level alternative its
    longest run of literal ASCII letters and digits. None when an alternative has none (the
    pattern is always searched)."""
    try:
        from re import _parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover
        import sre_parse  # type: ignore[no-redef]

    parsed = list(sre_parse.parse(pattern.pattern, pattern.flags))
    branches = ([list(b) for b in parsed[0][1][1]]
                if len(parsed) == 1 and parsed[0][0] == sre_parse.BRANCH else [parsed])
    words = []
    for branch in branches:
        runs, run = [], ""
        for op, av in branch:
            if op == sre_parse.LITERAL and chr(av).isascii() and chr(av).isalnum():
                run += chr(av).lower()
            else:
                runs.append(run)
                run = ""
        best = max(runs + [run], key=len)
        if len(best) < 2:
            return None
        words.append(best)
    return tuple(words)


def _folded(text: str) -> str:
    """``text`` as the cue prefilter compares it. Under re.IGNORECASE an ASCII letter also
    matches a few other characters (K, ſ, İ, ı); casefold maps them onto it, but for the two
    Turkish i's, mapped here: if a pattern matches, its required word is in the folded text."""
    return text.casefold().replace("\u0131", "i").replace("i\u0307", "i")


# Per cue: the pattern, its weight and the words it cannot match without. Most cues are absent
# from most documents: a substring test rules them out without running the regex.
_CUES = {t: [(p, w, _required_words(p)) for p, w in cues] for t, cues in _COMPILED.items()}


def _present(pattern: re.Pattern[str], words: tuple[str, ...] | None, folded: str) -> bool:
    return words is None or any(word in folded for word in words)

# A form is mostly labels waiting for values: "Name:", "Date:", "Request No.:". Labels that
# belong to money documents do not count, so a receipt's "Total:" and "Cash:" stay receipts.
_FORM_LABEL = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z/&.#()' -]{1,28}?)\s?[:;]", re.M)
_MONEY_LABEL = re.compile(
    r"total|tax|gst|vat|cash|change|amount|price|qty|invoice|receipt|bill|balance|due|rm|"
    r"subtotal|tel|fax|no\.?$|iban|bic|rechnung|summe|betrag|mwst|ust|montant", re.I)
FORM_LABEL_WEIGHT, FORM_LABEL_CAP = 0.35, 3.5

OTHER_THRESHOLD = 2.0  # below this best score nothing looks like a known type
FORM_FALLBACK = 1.0  # ... unless form cues alone reach this much
TEMPERATURE = 1.5  # softmax temperature: the score gap needed for a confident call


def classify_document(pages: list[PageText], page_info: list[PageInfo]) -> Classification:
    # The first pages carry the type (titles, headers); the last page carries totals.
    sample = pages[:3] + (pages[-1:] if len(pages) > 3 else [])
    text = "\n".join(p.text() for p in sample)
    scores = _text_scores(text)
    if len(sample) > 1:
        # The first page names the document: a broadcast order's money table is on page 1,
        # its terms and conditions ("agreement", "shall", "indemnify") on the pages after.
        # Averaging in page 1 alone keeps a single page's scale while letting it lead.
        first_page = _text_scores(pages[0].text())
        scores = {t: (s + first_page[t]) / 2 for t, s in scores.items()}

    first = page_info[0] if page_info else None
    if first and first.height_px and first.width_px:
        aspect = first.height_px / first.width_px
        if first.text_source == TextSource.OCR and aspect > 1.8:
            scores[DocType.RECEIPT] += 2.0  # till slips are long and narrow
    if len(pages) >= 4:
        scores[DocType.RECEIPT] -= 2.0  # receipts are short
        scores[DocType.CONTRACT] += 0.5

    best = max(scores, key=scores.get)
    # Scanned office forms often carry only a few weak cues ("Date:", "Attention", a
    # signature line) and nothing of a bill or a contract: several of them make a form.
    weak_form = (best == DocType.FORM and scores[best] >= FORM_FALLBACK
                 and _distinct_cues(text, DocType.FORM) + bool(_form_layout_score(text)) >= 2)
    if scores[best] < OTHER_THRESHOLD and not weak_form:
        confidence = 1.0 - scores[best] / (2 * OTHER_THRESHOLD)
        return Classification(
            doc_type=DocType.OTHER, confidence=round(confidence, 4),
            scores={t.value: round(s, 3) for t, s in scores.items()},
        )
    exps = {t: math.exp((s - scores[best]) / TEMPERATURE) for t, s in scores.items()}
    confidence = exps[best] / sum(exps.values())
    return Classification(
        doc_type=best, confidence=round(confidence, 4),
        scores={t.value: round(s, 3) for t, s in scores.items()},
    )


def _text_scores(text: str) -> dict[DocType, float]:
    folded = _folded(text)
    scores = {t: _score(text, folded, cues) for t, cues in _CUES.items()}
    scores[DocType.FORM] += _form_layout_score(text)
    # A table of priced lines makes a money document, whatever its title: a broadcast order
    # headed "Contract" with terms and conditions on its back is still billed line by line.
    money = _money_score(text)
    scores[DocType.INVOICE] += money
    scores[DocType.RECEIPT] += money
    # A bill without a single amount is a specification sheet or a memo that says "net" and
    # "total"; a contract is many clauses, not one passing "agreement".
    if not _AMOUNT.search(text):
        scores[DocType.INVOICE] *= 0.5
        scores[DocType.RECEIPT] *= 0.5
    if _distinct_cues(text, DocType.CONTRACT, folded) < 2:
        scores[DocType.CONTRACT] *= 0.5
    return scores


def _distinct_cues(text: str, doc_type: DocType, folded: str | None = None) -> int:
    folded = _folded(text) if folded is None else folded
    return sum(1 for pattern, _, words in _CUES[doc_type] if _present(pattern, words, folded) and pattern.search(text))


def _form_layout_score(text: str) -> float:
    labels = [m.group(1) for m in _FORM_LABEL.finditer(text)]
    form_like = [l for l in labels if not _MONEY_LABEL.search(l)]
    return min(FORM_LABEL_CAP, FORM_LABEL_WEIGHT * len(form_like))


# Any sign of money: an amount with cents, or a currency before a number ("$280").
_AMOUNT = re.compile(r"\b\d+(?:[,.]\d{3})*[.,]\d{2}\b|[$€£]\s?\d")
_PRICED = re.compile(r"[$€£]\s?\d{1,3}(?:,\d{3})*\.\d{2}\b|\b\d{1,3}(?:\.\d{3})*,\d{2}\s?€")
MONEY_WEIGHT, MONEY_CAP = 0.3, 6.0


def _money_score(text: str) -> float:
    return min(MONEY_CAP, MONEY_WEIGHT * len(_PRICED.findall(text)))


def _score(text: str, folded: str, cues: list[tuple[re.Pattern[str], float, tuple[str, ...] | None]]) -> float:
    return sum(w * min(2, len(p.findall(text))) for p, w, words in cues if _present(p, words, folded))
