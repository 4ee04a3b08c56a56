"""``docingest eval``: run the pipeline over a labelled set and score it.

Labels use the realdata-dev format (one JSON object per line: id, path, source_set, doc_type,
classify, fields, optional line_items / key_values). Scores:

* per field precision / recall / F1, overall and per source set. A field is scored only on
  the sets whose labels ever contain it (a set with no vendor labels says nothing about vendor
  predictions); a prediction counts as a false positive when it is wrong or the field is
  labelled absent in a set that does label it;
* classification accuracy over items with ``classify: true``, with a confusion matrix;
* automation rate: share of documents that need no person: accepted, or a ``duplicate`` (a
  re-issue of an accepted invoice that reads the same field for field, recorded but not
  loaded again). ``accepted_rate`` counts the accepted ones alone;
* accepted-precision: share of those automated documents whose type (when scored) and every
  labelled field are right. A duplicate is scored on its own labels like an accepted one;
* line items, on the documents whose labels list them: an item read is right when its amount,
  quantity and unit price equal a labelled item's (descriptions wrap and are not compared);
  precision / recall / F1 over items, and the documents read exactly (every item, none extra)
  or not at all.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from docingest.config import Settings
from docingest.published import run_table_rows
from docingest.stages.route import reason_kind
from docingest.schemas.fields import DOC_FIELDS, DocType, FieldKind, all_field_names
from docingest.schemas.records import ExtractedValue, Extraction, TextSource

# What needs no person: accepted, or recorded as a re-issue of an accepted invoice.
AUTOMATED = ("accepted", "duplicate")

LIST_FIELDS = {"parties", "key_values"}


def _kinds() -> dict[str, FieldKind]:
    kinds: dict[str, FieldKind] = {}
    for specs in DOC_FIELDS.values():
        for spec in specs:
            kinds.setdefault(spec.name, spec.kind)
    return kinds


KINDS = _kinds()


REVIEW_REASONS_SHOWN = 6  # per set, in the report


def _squash(text: str) -> str:
    # Spacing and punctuation are layout, not content: OCR drops spaces ("NO12JALAN").
    return re.sub(r"[\W_]+", "", text.casefold())


def values_match(name: str, predicted: str | None, expected: str) -> bool:
    if predicted is None:
        return False
    kind = KINDS.get(name, FieldKind.TEXT)
    if kind == FieldKind.AMOUNT:
        try:
            return Decimal(predicted) == Decimal(expected)
        except InvalidOperation:
            return False
    if kind in (FieldKind.DATE, FieldKind.CURRENCY):
        return predicted.strip().upper() == expected.strip().upper()
    if _squash(predicted) == _squash(expected) and bool(_squash(expected)):
        return True
    if name.endswith("_address"):
        # Addresses are printed in a country's order ("DE 12345 Musterstadt") and labelled in
        # another ("12345 Musterstadt, DE"): the same words in any order are the same address.
        if _tokens(predicted) == _tokens(expected) and bool(_tokens(expected)):
            return True
        # Labels built from structured data end with the country code even where the page
        # prints no country (a domestic letter) or prints its name ("Germany"): the street,
        # postcode and town decide, and a printed country must be the label's.
        street, code = _split_country(expected)
        printed_street, printed_code = _split_country(predicted)
        return (code is not None and printed_code in (None, code) and bool(_tokens(street))
                and _tokens(printed_street) == _tokens(street))
    return False


# Country names as printed at the end of an address, by the ISO code a label uses.
_COUNTRY_NAMES = {
    "DE": "germany|deutschland", "FR": "france|frankreich", "AT": "austria|österreich",
    "CH": "switzerland|schweiz|suisse", "NL": "netherlands|niederlande", "BE": "belgium|belgien|belgique",
    "IT": "italy|italien|italia", "ES": "spain|spanien|españa", "GB": "united kingdom",
    "US": "united states|usa", "MY": "malaysia",
}
_COUNTRY_AT_END = re.compile(
    r"[\s,;/-]*\b(?:(?P<code>" + "|".join(_COUNTRY_NAMES) + r")|(?P<name>(?i:"
    + "|".join(_COUNTRY_NAMES.values()) + r")))\s*$")


def _split_country(address: str) -> tuple[str, str | None]:
    """("Ecke 12, 12345 Stadthausen", "DE") from "Ecke 12, 12345 Stadthausen, DE" or "..., Germany"."""
    m = _COUNTRY_AT_END.search(address.strip())
    if m is None:
        return address, None
    code = m["code"] or next(c for c, names in _COUNTRY_NAMES.items()
                             if re.fullmatch(names, m["name"], re.IGNORECASE))
    return address.strip()[: m.start()], code


def _tokens(text: str) -> list[str]:
    return sorted(t for t in re.split(r"[\W_]+", text.casefold()) if t)


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: "Counts") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def scores(self) -> dict[str, float | int]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass
class Report:
    labels: str
    out: str
    seconds: float
    documents: int
    overall: dict[str, Any] = field(default_factory=dict)
    per_set: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_field: dict[str, dict[str, Any]] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    calibration: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    line_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "doc_type|source" -> documents whose values all passed the field bar, and how many of
    # those were right (what the document bar is fitted on).
    document_reliability: dict[str, dict[str, Any]] = field(default_factory=dict)
    # {scheme: {set: ...}}: routing re-judged with calibration fitted in-sample, K-fold out of
    # fold and leave-one-set-out (docingest.out_of_fold).
    out_of_sample: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    run_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": self.labels, "out": self.out, "run_id": self.run_id,
            "wall_seconds": self.seconds, "documents": self.documents, "overall": self.overall,
            "per_set": self.per_set, "per_field": self.per_field,
            "classification_confusion": self.confusion,
            "calibration": self.calibration, "line_items": self.line_items,
            "document_reliability": self.document_reliability,
            "out_of_sample": self.out_of_sample,
        }

    def render_text(self) -> str:
        lines = [f"eval of {self.labels}: {self.documents} documents in {self.seconds:.1f}s (run {self.run_id})"]
        o = self.overall
        lines.append(
            f"overall: classification accuracy {o['classification_accuracy']}, automation rate "
            f"{o['automation_rate']}, accepted-precision {o['accepted_precision']} "
            f"({o['accepted']} accepted, {o['duplicates']} duplicates of accepted ones, {o['failed']} failed)"
        )
        lines.append("")
        lines.append(f"{'set':<24}{'docs':>6}{'cls acc':>9}{'auto':>7}{'accept':>8}{'dup':>5}{'acc-prec':>10}"
                     f"{'failed':>8}")
        for name, s in sorted(self.per_set.items()):
            lines.append(
                f"{name:<24}{s['documents']:>6}{_fmt(s['classification_accuracy']):>9}"
                f"{_fmt(s['automation_rate']):>7}{_fmt(s['accepted_rate']):>8}{s['duplicates']:>5}"
                f"{_fmt(s['accepted_precision']):>10}{s['failed']:>8}"
            )
        lines.append("")
        lines.append("why documents went to review (documents with the reason; held back by it alone)")
        for name, s in sorted(self.per_set.items()):
            for r in s.get("review_reasons", []):
                lines.append(f"  {name:<22}{r['reason']:<50}{r['documents']:>6}{r['only_reason']:>6}")
        lines.append("")
        lines.append(f"{'field':<18}{'P':>7}{'R':>7}{'F1':>7}{'tp':>6}{'fp':>6}{'fn':>6}")
        for name, sc in self.per_field.items():
            lines.append(f"{name:<18}{sc['precision']:>7.3f}{sc['recall']:>7.3f}{sc['f1']:>7.3f}"
                         f"{sc['tp']:>6}{sc['fp']:>6}{sc['fn']:>6}")
        if self.line_items:
            lines.append("")
            lines.append("line items (right: amount, quantity and unit price equal a labelled item's)")
            lines.append(f"{'set':<24}{'docs':>6}{'exact':>7}{'none':>6}{'P':>7}{'R':>7}{'F1':>7}"
                         f"{'tp':>6}{'fp':>6}{'fn':>6}")
            for name, li in sorted(self.line_items.items()):
                lines.append(f"{name:<24}{li['documents']:>6}{li['exact']:>7}{li['none_read']:>6}"
                             f"{li['precision']:>7.3f}{li['recall']:>7.3f}{li['f1']:>7.3f}"
                             f"{li['tp']:>6}{li['fp']:>6}{li['fn']:>6}")
        lines.append("")
        types = sorted({t for row in self.confusion.values() for t in row} | set(self.confusion))
        lines.append("confusion (rows: labelled, columns: predicted)")
        lines.append(f"{'':<10}" + "".join(f"{t[:9]:>10}" for t in types))
        for label in sorted(self.confusion):
            lines.append(f"{label:<10}" + "".join(f"{self.confusion[label].get(t, 0):>10}" for t in types))
        if self.calibration:
            lines.append("")
            lines.append("calibration (share of values right per confidence bucket)")
            lines.append(f"{'bucket':<12}{'raw n':>8}{'raw right':>11}{'cal n':>8}{'cal right':>11}")
            for raw, cal in zip(self.calibration["raw"], self.calibration["calibrated"]):
                lines.append(f"{raw['low']:.2f}-{raw['high']:.2f}  {raw['n']:>8}{_fmt(raw['right']):>11}"
                             f"{cal['n']:>8}{_fmt(cal['right']):>11}")
        if self.document_reliability:
            lines.append("")
            lines.append("documents whose values all passed the field bar (the document bar is fitted on these)")
            lines.append(f"{'type|source':<24}{'passed':>8}{'right':>7}{'share':>8}{'bound':>8}")
            for kind, d in sorted(self.document_reliability.items()):
                lines.append(f"{kind:<24}{d['n']:>8}{d['right']:>7}{_fmt(d['share']):>8}{_fmt(d.get('bound')):>8}")
        if self.out_of_sample:
            lines.append("")
            lines.append("routing re-judged from this run's raw confidences with calibration fitted on: all documents "
                         "(in-sample), the other folds (5-fold), the other sets (leave-one-set-out)")
            lines.append(f"{'set':<24}" + "".join(f"{h:>24}" for h in ("in-sample auto / prec", "5-fold auto / prec",
                                                                            "set-out auto / prec")))
            names = sorted(self.out_of_sample["in_sample"], key=lambda n: (n == "overall", n))
            for name in names:
                cells = []
                for scheme in ("in_sample", "k_fold", "leave_one_set_out"):
                    c = self.out_of_sample[scheme].get(name, {})
                    cells.append(f"{_fmt(c.get('automation'))} / {_fmt(c.get('accepted_precision'))} "
                                 f"({c.get('right', 0)}/{c.get('automated', 0)})")
                lines.append(f"{name:<24}" + "".join(f"{cell:>24}" for cell in cells))
        return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def read_labels(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _expected_values(label: dict[str, Any]) -> dict[str, list[str]]:
    expected: dict[str, list[str]] = {}
    for name, value in (label.get("fields") or {}).items():
        expected[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if label.get("key_values"):
        expected["key_values"] = [f"{kv['key']}={kv['value']}" for kv in label["key_values"]]
    return expected


def _score_document(expected: dict[str, list[str]], predicted: dict[str, list[str]],
                    scored_fields: set[str]) -> tuple[dict[str, Counts], bool]:
    per_field: dict[str, Counts] = {}
    all_right = True
    for name in scored_fields:
        exp, pred = expected.get(name, []), predicted.get(name, [])
        c = Counts()
        if name in LIST_FIELDS:
            matched_pred: set[int] = set()
            for e in exp:
                hit = next((i for i, p in enumerate(pred) if i not in matched_pred and _list_match(name, p, e)), None)
                if hit is None:
                    c.fn += 1
                else:
                    matched_pred.add(hit)
                    c.tp += 1
            c.fp += len(pred) - len(matched_pred)
            if exp and c.fn:
                all_right = False
        else:
            p = pred[0] if pred else None
            if exp:
                if values_match(name, p, exp[0]):
                    c.tp += 1
                else:
                    c.fn += 1
                    all_right = False
                    if p is not None:
                        c.fp += 1
            elif p is not None:
                c.fp += 1
        per_field[name] = c
    return per_field, all_right


def _list_match(name: str, predicted: str, expected: str) -> bool:
    if name == "key_values":
        pk, _, pv = predicted.partition("=")
        ek, _, ev = expected.partition("=")
        return _squash(pk) == _squash(ek) and _squash(pv) == _squash(ev)
    return values_match(name, predicted, expected)


def _field_value(f: dict[str, Any]) -> str:
    """A fields row as the labels write it (a form's pair as "key=value")."""
    if f["field_name"] == "key_values":
        return f"{f['key']}={f['value_raw']}"
    return f["value"] if f["value"] is not None else f["value_raw"]


def score(labels: list[dict[str, Any]], documents: list[dict[str, Any]],
          fields: list[dict[str, Any]], base: Path) -> tuple[dict, dict, dict, dict]:
    docs_by_path = {}
    for d in documents:
        for p in d["source_paths"] or [d["source_path"]]:
            docs_by_path[str(Path(p).resolve())] = d
    preds: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    # What an accepted document asserts: its values without the withheld ones. A labelled
    # field that was withheld is missing from the output, so the document is not all right.
    asserted: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for f in fields:
        value = _field_value(f)
        preds[f["doc_id"]][f["field_name"]].append(value)
        if not f.get("withheld"):
            asserted[f["doc_id"]][f["field_name"]].append(value)

    labelled_fields: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        labelled_fields[label["source_set"]].update(_expected_values(label))

    field_counts: dict[str, Counts] = {n: Counts() for n in all_field_names() + ["key_values"]}
    set_field_counts: dict[str, dict[str, Counts]] = defaultdict(lambda: defaultdict(Counts))
    sets: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    # Why documents went to review, per set: a reason's documents, and those it alone held back.
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    sole_reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for label in labels:
        s = sets[label["source_set"]]
        s["documents"] += 1
        doc = docs_by_path.get(str((base / label["path"]).resolve()))
        status = doc["status"] if doc else "missing"
        s[status] += 1
        if status == "needs_review":
            kinds = sorted({reason_kind(r) for r in doc["review_reasons"] or []})
            reasons[label["source_set"]].update(kinds)
            if len(kinds) == 1:
                sole_reasons[label["source_set"]].update(kinds)
        predicted_type = (doc or {}).get("doc_type") or "none"
        type_right = predicted_type == label["doc_type"]
        if label.get("classify"):
            s["classified"] += 1
            s["classified_right"] += int(type_right)
            confusion[label["doc_type"]][predicted_type] += 1
        predicted = preds.get(doc["doc_id"], {}) if doc else {}
        per_field, _ = _score_document(
            _expected_values(label), predicted, labelled_fields[label["source_set"]]
        )
        for name, c in per_field.items():
            field_counts.setdefault(name, Counts()).add(c)
            set_field_counts[label["source_set"]][name].add(c)
        if status in AUTOMATED:
            _, all_asserted_right = _score_document(
                _expected_values(label), asserted.get(doc["doc_id"], {}), labelled_fields[label["source_set"]])
            s["accepted_right"] += int(all_asserted_right and (type_right or not label.get("classify")))

    per_set = {}
    totals = defaultdict(int)
    for name, s in sets.items():
        for k, v in s.items():
            totals[k] += v
        per_set[name] = _set_summary(s)
        per_set[name]["fields"] = {f: c.scores() for f, c in sorted(set_field_counts[name].items())}
        per_set[name]["review_reasons"] = [
            {"reason": r, "documents": n, "only_reason": sole_reasons[name][r]}
            for r, n in sorted(reasons[name].items(), key=lambda kv: (-kv[1], kv[0]))[:REVIEW_REASONS_SHOWN]]
    overall = _set_summary(totals)
    per_field = {n: c.scores() for n, c in field_counts.items() if c.tp + c.fp + c.fn}
    return overall, per_set, per_field, {k: dict(v) for k, v in confusion.items()}


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).normalize() if value not in (None, "") else None
    except InvalidOperation:
        return None


def _item_key(item: dict[str, Any]) -> tuple[Decimal | None, ...]:
    return tuple(_number(item.get(k)) for k in ("quantity", "unit_price", "amount"))


def score_line_items(labels: list[dict[str, Any]], documents: list[dict[str, Any]],
                     line_items: list[dict[str, Any]], base: Path) -> dict[str, dict[str, Any]]:
    """Line items per source set (and ``overall``) on the documents whose labels list them."""
    docs_by_path = {str(Path(p).resolve()): d for d in documents for p in (d["source_paths"] or [d["source_path"]])}
    read: dict[str, Counter] = defaultdict(Counter)
    for item in line_items:
        read[item["doc_id"]][_item_key(item)] += 1
    counts: dict[str, Counter] = defaultdict(Counter)
    for label in labels:
        if not label.get("line_items"):
            continue
        doc = docs_by_path.get(str((base / label["path"]).resolve()))
        expected = Counter(_item_key(item) for item in label["line_items"])
        got = read.get(doc["doc_id"], Counter()) if doc else Counter()
        tp = sum((expected & got).values())
        for name in (label["source_set"], "overall"):
            c = counts[name]
            c["documents"] += 1
            c["exact"] += int(expected == got)
            c["none_read"] += int(not got)
            c["tp"] += tp
            c["fp"] += sum(got.values()) - tp
            c["fn"] += sum(expected.values()) - tp
    return {name: {"documents": c["documents"], "exact": c["exact"], "none_read": c["none_read"],
                   **Counts(c["tp"], c["fp"], c["fn"]).scores()} for name, c in counts.items()}


# What better-calibrated values could lift; any other reason holds a document whatever its
# confidences, so such a document is no evidence of how often passing documents are right.
# An audit sample is chosen at random among documents that passed: it says nothing against them.
_CONFIDENCE_REASONS = ("low_field_confidence:", "unproven_document_reliability:", "audit_sample")


def _recalibrated(f: dict[str, Any], table) -> ExtractedValue:
    """A fields row as the value routing sees, its confidence recalibrated by ``table``."""
    from docingest.stages.calibrate import calibrated

    raw = f["confidence_raw"] if f.get("confidence_raw") is not None else f["confidence"]
    return ExtractedValue(field_name=f["field_name"], key=f["key"], value_raw=f["value_raw"], value=f["value"],
                          source=TextSource(f["source"]), method=f.get("method"),
                          confidence=calibrated(table, f["field_name"], f["source"], raw, f.get("method")))


def document_verdicts(labels, documents, fields, base: Path, table, thresholds):
    """Each labelled document as routing judges it with ``table``: (label, kind, right), where
    ``kind`` is its "doc_type|source" when nothing but confidence holds it and every value it
    asserts passes the field bar under ``table`` (an optional value below the bar is withheld),
    else None; right when its type and every labelled field it asserts are."""
    from docingest.stages.calibrate import document_source
    from docingest.stages.route import withhold_unverified
    from docingest.schemas.calibration import CalibrationTable

    docs_by_path = {str(Path(p).resolve()): d for d in documents for p in (d["source_paths"] or [d["source_path"]])}
    by_doc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in fields:
        by_doc[f["doc_id"]].append(f)
    labelled_fields: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        labelled_fields[label["source_set"]].update(_expected_values(label))
    for label in labels:
        doc = docs_by_path.get(str((base / label["path"]).resolve()))
        if (not doc or doc["status"] == "failed" or doc.get("doc_type") in (None, DocType.OTHER.value)
                or any(not r.startswith(_CONFIDENCE_REASONS) for r in doc["review_reasons"] or [])):
            yield label, None, False
            continue
        rows = by_doc[doc["doc_id"]]
        extraction = Extraction(doc_type=DocType(doc["doc_type"]),
                                values=[_recalibrated(f, table) for f in rows])
        withhold_unverified(extraction, thresholds)
        asserted_rows = [(f, v) for f, v in zip(rows, extraction.values) if not v.withheld]
        if any(v.confidence < thresholds.min_field_confidence for _, v in asserted_rows):
            yield label, None, False
            continue
        asserted: dict[str, list[str]] = defaultdict(list)
        for f, _ in asserted_rows:
            asserted[f["field_name"]].append(_field_value(f))
        _, right = _score_document(_expected_values(label), asserted, labelled_fields[label["source_set"]])
        type_right = doc["doc_type"] == label["doc_type"] or not label.get("classify")
        yield label, CalibrationTable.document_key(doc["doc_type"], document_source(extraction)), right and type_right


def document_observations(labels, documents, fields, base: Path, table, thresholds) -> list[tuple[str, str, bool]]:
    """(doc_type, source, right) for each labelled document whose values all pass the field
    bar under ``table`` and that nothing else holds (``document_verdicts``)."""
    return [(*kind.split("|", 1), right)
            for _, kind, right in document_verdicts(labels, documents, fields, base, table, thresholds)
            if kind is not None]


# The report's buckets: the 0.9 edge is the one that matters (>= 0.9 must be >= 90% right).
REPORT_EDGES = (0.0, 0.5, 0.7, 0.8, 0.9, 1.0001)


def calibration_observations(labels, documents, fields, base: Path) -> list[dict[str, Any]]:
    """Every predicted scalar value of a field its label has: raw and calibrated confidence,
    and whether it is right."""
    docs_by_path = {str(Path(p).resolve()): d for d in documents for p in (d["source_paths"] or [d["source_path"]])}
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for f in fields:
        first.setdefault((f["doc_id"], f["field_name"]), f)
    out = []
    for label in labels:
        doc = docs_by_path.get(str((base / label["path"]).resolve()))
        if not doc:
            continue
        for name, exp in _expected_values(label).items():
            f = first.get((doc["doc_id"], name))
            if name in LIST_FIELDS or f is None:
                continue
            value = _field_value(f)
            raw = f.get("confidence_raw")
            out.append({"field": name, "source": f["source"], "method": f.get("method"),
                        "confidence": f["confidence"],
                        "confidence_raw": raw if raw is not None else f["confidence"],
                        "right": values_match(name, value, exp[0])})
    return out


def calibration_report(observations: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Share right per confidence bucket, before and after calibration."""
    report = {}
    for column in ("confidence_raw", "confidence"):
        rows = []
        for lo, hi in zip(REPORT_EDGES, REPORT_EDGES[1:]):
            inside = [o for o in observations if lo <= o[column] < hi]
            rows.append({"low": lo, "high": min(hi, 1.0), "n": len(inside),
                         "right": round(sum(o["right"] for o in inside) / len(inside), 4) if inside else None})
        report["calibrated" if column == "confidence" else "raw"] = rows
    return report


def _set_summary(s: dict[str, int]) -> dict[str, Any]:
    docs = s.get("documents", 0)
    accepted = s.get("accepted", 0)
    automated = sum(s.get(status, 0) for status in AUTOMATED)
    return {
        "documents": docs,
        "accepted": accepted,
        "duplicates": s.get("duplicate", 0),
        "needs_review": s.get("needs_review", 0),
        "failed": s.get("failed", 0) + s.get("missing", 0),
        "classification_accuracy": round(s["classified_right"] / s["classified"], 4) if s.get("classified") else None,
        "automation_rate": round(automated / docs, 4) if docs else None,
        "accepted_rate": round(accepted / docs, 4) if docs else None,
        "accepted_precision": round(s.get("accepted_right", 0) / automated, 4) if automated else None,
    }


def run_evaluation(labels_path: Path, out: Path, settings: Settings, limit: int | None = None,
                   fit_calibration: Path | None = None, source_sets: list[str] | None = None,
                   reprocess: bool = False) -> Report:
    from docingest.flows.ingest import run_ingest

    labels = read_labels(labels_path)
    if source_sets:
        labels = [l for l in labels if l["source_set"] in source_sets]
    if limit:
        labels = labels[:limit]
    base = labels_path.parent
    paths = [base / l["path"] for l in labels]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} labelled files missing, e.g. {missing[0]}")
    t0 = time.perf_counter()
    summary = run_ingest(paths, out, settings, reprocess=reprocess)
    seconds = round(time.perf_counter() - t0, 2)
    documents = run_table_rows(out, "documents", summary.run_id)
    fields = run_table_rows(out, "fields", summary.run_id)
    overall, per_set, per_field, confusion = score(labels, documents, fields, base)
    observations = calibration_observations(labels, documents, fields, base)
    items = score_line_items(labels, documents, run_table_rows(out, "line_items", summary.run_id), base)
    report = Report(labels=str(labels_path), out=str(out), seconds=seconds, documents=len(labels),
                    overall=overall, per_set=per_set, per_field=per_field, confusion=confusion,
                    calibration=calibration_report(observations), line_items=items, run_id=summary.run_id)
    from docingest import out_of_fold
    from docingest.stages.calibrate import document_bound, fit_documents, load_table

    run_table = load_table(settings.calibration_file)
    if run_table is not None:
        report.document_reliability = {
            kind: {"n": c.n, "right": c.right, "share": round(c.right / c.n, 4) if c.n else None,
                   "bound": document_bound(c)}
            for kind, c in fit_documents(document_observations(
                labels, documents, fields, base, run_table, settings.routing)).items()}
    report.out_of_sample = out_of_fold.scoreboard(labels, documents, fields, base, settings.routing)
    if fit_calibration is not None:
        from docingest.stages.calibrate import write_table

        table = out_of_fold.fit(labels, documents, fields, base, settings.routing,
                                fitted_on=f"{labels_path.name} ({len(labels)} documents, run {summary.run_id}); "
                                          f"document counts out of fold ({out_of_fold.K_FOLDS}-fold)")
        # The counts routing bounds are measured out of fold: each document judged by field
        # buckets fitted without it.
        table.documents = out_of_fold.out_of_fold_documents(labels, documents, fields, base, settings.routing)
        write_table(table, fit_calibration)
    (out / "eval_report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return report
