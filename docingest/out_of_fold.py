"""Out-of-sample estimates: routing judged with a calibration fitted without the documents it scores.

A calibration table (field buckets and document counts) fitted on the labelled documents and
judged on the same documents is in-sample: it remembers them. Here every document is routed
again, offline, from its run's raw confidences, with a table fitted on other documents only:

* ``in_sample``: fitted on every document (what the shipped table is);
* ``k_fold``: documents split into K folds (by a hash of the label id, so the split is stable);
  each fold routed with a table fitted on the other K-1;
* ``leave_one_set_out``: each source set routed with a table fitted on the other sets, the
  closest thing to a new customer's layouts.

Routing offline does what ``route_document`` does with the stored rows: a document held by any
reason other than confidence stays held; otherwise its values are recalibrated, optional ones
below the bar withheld, every asserted value must pass the field bar, and the lower confidence
bound of its kind's measured all-fields-right share (``calibrate.document_bound``) must reach
``min_document_confidence``. Automation and accepted-precision follow per set.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docingest.config import RoutingThresholds
from docingest.schemas.calibration import CalibrationTable, DocumentCount

K_FOLDS = 5


@dataclass(frozen=True)
class Verdict:
    """How one labelled document fares under a table: automated, and if so whether it is right."""

    source_set: str
    automated: bool
    right: bool


def fold_of(label_id: str, k: int = K_FOLDS) -> int:
    return int(hashlib.sha256(label_id.encode()).hexdigest(), 16) % k


def fit(labels: list[dict[str, Any]], documents, fields, base: Path, thresholds: RoutingThresholds,
        fitted_on: str = "") -> CalibrationTable:
    """A calibration table from ``labels`` only: field buckets from their values, document
    counts from their documents routed with those buckets."""
    from docingest.evaluate import calibration_observations, document_observations
    from docingest.stages.calibrate import fit_documents, fit_table

    observations = calibration_observations(labels, documents, fields, base)
    table = fit_table(((o["field"], o["source"], o["confidence_raw"], o["right"], o["method"])
                       for o in observations), fitted_on=fitted_on)
    table.documents = fit_documents(document_observations(labels, documents, fields, base, table, thresholds))
    return table


def route(labels: list[dict[str, Any]], documents, fields, base: Path, table: CalibrationTable,
          thresholds: RoutingThresholds) -> list[Verdict]:
    """Each labelled document routed offline with ``table``."""
    from docingest.evaluate import document_verdicts
    from docingest.stages.calibrate import document_bound

    verdicts = []
    for label, kind, right in document_verdicts(labels, documents, fields, base, table, thresholds):
        automated = kind is not None and document_bound(
            table.documents.get(kind, DocumentCount(n=0, right=0))) >= thresholds.min_document_confidence
        verdicts.append(Verdict(label["source_set"], automated, bool(automated and right)))
    return verdicts


def out_of_fold_documents(labels, documents, fields, base: Path, thresholds: RoutingThresholds,
                          k: int = K_FOLDS) -> dict[str, DocumentCount]:
    """Document counts where each document was judged by field buckets fitted without it:
    what ``--fit-calibration`` stores, so the bound routing uses is an out-of-sample one."""
    from docingest.evaluate import document_observations
    from docingest.stages.calibrate import fit_documents

    observations = []
    for fold in range(k):
        train = [l for l in labels if fold_of(l["id"], k) != fold]
        test = [l for l in labels if fold_of(l["id"], k) == fold]
        table = fit(train, documents, fields, base, thresholds)
        observations += document_observations(test, documents, fields, base, table, thresholds)
    return fit_documents(observations)


def scoreboard(labels: list[dict[str, Any]], documents, fields, base: Path, thresholds: RoutingThresholds,
               k: int = K_FOLDS) -> dict[str, dict[str, dict[str, Any]]]:
    """{scheme: {source set (and "overall"): documents, automated, right, automation,
    accepted_precision}} for in-sample, K-fold and leave-one-set-out."""
    schemes: dict[str, list[Verdict]] = {"in_sample": route(labels, documents, fields, base,
                                                            fit(labels, documents, fields, base, thresholds),
                                                            thresholds)}
    verdicts: list[Verdict] = []
    for fold in range(k):
        train = [l for l in labels if fold_of(l["id"], k) != fold]
        test = [l for l in labels if fold_of(l["id"], k) == fold]
        verdicts += route(test, documents, fields, base, fit(train, documents, fields, base, thresholds), thresholds)
    schemes["k_fold"] = verdicts
    verdicts = []
    for held_out in sorted({l["source_set"] for l in labels}):
        train = [l for l in labels if l["source_set"] != held_out]
        test = [l for l in labels if l["source_set"] == held_out]
        verdicts += route(test, documents, fields, base, fit(train, documents, fields, base, thresholds), thresholds)
    schemes["leave_one_set_out"] = verdicts
    return {scheme: _per_set(vs) for scheme, vs in schemes.items()}


def _per_set(verdicts: list[Verdict]) -> dict[str, dict[str, Any]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for v in verdicts:
        for name in (v.source_set, "overall"):
            c = counts[name]
            c[0] += 1
            c[1] += int(v.automated)
            c[2] += int(v.right)
    return {name: {"documents": n, "automated": a, "right": r,
                   "automation": round(a / n, 4) if n else None,
                   "accepted_precision": round(r / a, 4) if a else None}
            for name, (n, a, r) in sorted(counts.items())}
