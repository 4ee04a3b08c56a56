"""The batch gate (GX suites in expectations/), duplicates across runs, quarantine."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from docingest.config import GateOptions
from docingest.errors import SuiteError
from docingest.result_store import summarize
from docingest.stages.duplicates import apply_verdict, check_duplicates, read_values
from docingest.stages.gate import build_views, load_suite_specs, run_gate
from docingest.writer import RunWriter, arrow_tables, rows_for
from factories import text_pdf
from docingest.schemas.fields import DocType
from docingest.schemas.records import (
    Classification, DocumentResult, ExtractedValue, Extraction, PriorDocument, Severity, Status, TextSource,
)

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = date(2026, 11, 23)


def _invoice(doc_id: str, total: str = "119.00", *, credit_note: bool = False, vendor: str = "ACME GmbH",
             number: str | None = None, status: Status = Status.ACCEPTED, path: str | None = None) -> DocumentResult:
    values = {"vendor_name": vendor, "invoice_date": "2026-10-01", "subtotal": "100.00", "tax": "19.00",
              "total": total, "currency": "EUR", "invoice_number": number or f"R-{doc_id}"}
    return DocumentResult(
        doc_id=doc_id, source_path=path or f"/in/{doc_id}.pdf", source_paths=[path or f"/in/{doc_id}.pdf"],
        classification=Classification(doc_type=DocType.INVOICE, confidence=0.95),
        extraction=Extraction(doc_type=DocType.INVOICE, credit_note=credit_note, values=[
            ExtractedValue(field_name=k, value_raw=v, value=v, confidence=0.95, page=1, grounded=True,
                           source=TextSource.TEXT_LAYER) for k, v in values.items()]),
        status=status, processed_at=datetime.now(timezone.utc),
    )


def test_the_shipped_suites_load_with_a_severity_on_every_expectation():
    specs = load_suite_specs(ROOT / "expectations")
    assert {s["meta"]["table"] for s in specs} == {
        "documents", "line_items", "fields_invoice", "fields_receipt", "fields_contract"}
    assert sum(len(s["expectations"]) for s in specs) >= 25


@pytest.mark.parametrize("entry, problem", [
    ({"type": "expect_column_values_to_be_nul", "kwargs": {"column": "doc_id"}, "meta": {"severity": "fail"}},
     "expect_column_values_to_be_nul"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "doc_id"}, "meta": {}}, "severity"),
])
def test_a_bad_suite_entry_is_an_error_not_a_silently_weaker_gate(tmp_path, entry, problem):
    good = {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "doc_id"}, "meta": {"severity": "fail"}}
    (tmp_path / "documents.json").write_text(json.dumps(
        {"name": "documents", "meta": {"table": "documents"}, "expectations": [good, entry]}))
    with pytest.raises(SuiteError) as err:
        rows = arrow_tables(rows_for([_invoice("a")], "r"))
        run_gate(rows, GateOptions(expectations_dir=tmp_path), RUN_DATE, tmp_path / "docs", tmp_path)
    assert problem in str(err.value) or "GX loaded" in str(err.value)


def test_views_put_each_invoice_on_one_row_with_derived_columns():
    rows = arrow_tables(rows_for([_invoice("a"), _invoice("b", total="120.00")], "r"))
    view = build_views(rows, RUN_DATE)["fields_invoice"]
    assert list(view["doc_id"]) == ["a", "b"]
    assert list(view["amount_residual"]) == [0.0, -1.0]
    assert list(view["invoice_age_days"]) == [53, 53]


def test_a_clean_batch_publishes_and_builds_data_docs(tmp_path):
    rows = arrow_tables(rows_for([_invoice(str(i)) for i in range(5)] + [_invoice("cn", total="-119.00", credit_note=True)], "r"))
    verdict = run_gate(rows, GateOptions(), RUN_DATE, tmp_path / "docs", tmp_path)
    assert verdict.published, verdict.reasons()
    assert verdict.data_docs == "docs/index.html" and (tmp_path / "docs" / "index.html").exists()
    assert all(o.success for o in verdict.outcomes if o.severity.value == "fail")


def test_a_relative_output_folder_works(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    verdict = run_gate(arrow_tables(rows_for([_invoice("a")], "r")), GateOptions(), RUN_DATE, Path("out/data_docs/r"), Path("out"))
    assert verdict.published and verdict.data_docs == "data_docs/r/index.html"
    assert (tmp_path / "out" / verdict.data_docs).exists()


def test_negative_totals_that_are_not_credit_notes_stop_the_batch(tmp_path):
    results = [_invoice(str(i)) for i in range(17)] + [_invoice(f"n{i}", total="-5.00") for i in range(3)]
    verdict = run_gate(arrow_tables(rows_for(results, "r")), GateOptions(), RUN_DATE, tmp_path / "docs", tmp_path)
    assert not verdict.published
    assert any("fields_invoice" in r and "negative" in r for r in verdict.reasons()), verdict.reasons()
    index = (tmp_path / "docs" / "index.html").read_text()
    assert "fields_invoice" in index


def test_a_share_needs_enough_documents_one_bad_invoice_in_six_is_held_not_the_batch(tmp_path):
    """One negative and one future-dated invoice of six: 17 % each, over the 10 % and 5 % shares.
    Their own row rules hold them for review; the other four are published."""
    results = [_invoice(str(i)) for i in range(4)]
    results.append(_invoice("neg", total="-5.00", status=Status.NEEDS_REVIEW))
    future = _invoice("future", status=Status.NEEDS_REVIEW)
    future.extraction.get("invoice_date").value = "2027-06-01"
    results.append(future)
    verdict = run_gate(arrow_tables(rows_for(results, "r")), GateOptions(), RUN_DATE, tmp_path / "docs", tmp_path)
    assert verdict.published, verdict.reasons()
    skipped = {(o.suite, o.column) for o in verdict.outcomes if o.skipped}
    assert ("fields_invoice", "invoice_age_days") in skipped and ("fields_invoice", "total") in skipped
    assert all(o.observed == {"rows": 6, "min_rows": 20} for o in verdict.outcomes
               if o.skipped and o.suite == "fields_invoice")
    # Row-level expectations still run on a small batch: an accepted negative total stops it.
    results[0] = _invoice("0", total="-5.00")
    verdict = run_gate(arrow_tables(rows_for(results, "r")), GateOptions(), RUN_DATE, tmp_path / "docs2", tmp_path)
    assert not verdict.published and any("no accepted invoice" in r for r in verdict.reasons())


def test_only_system_failures_count_against_the_batch_inputs_rejected_for_their_defects_warn(tmp_path):
    from docingest.schemas.records import Stage, StageError

    def failed(doc_id: str, kind: str) -> DocumentResult:
        return DocumentResult(doc_id=doc_id, source_path=f"/in/{doc_id}", source_paths=[f"/in/{doc_id}"],
                              status=Status.FAILED, errors=[StageError(stage=Stage.RENDER, kind=kind, message="m")])

    bad_uploads = [failed(f"b{i}", kind) for i, kind in enumerate(
        ["corrupt_document", "encrypted_pdf", "empty_file", "unsupported_file_type", "decompression_bomb", "no_pages"])]
    verdict = run_gate(arrow_tables(rows_for([_invoice(str(i)) for i in range(3)] + bad_uploads, "r")),
                       GateOptions(), RUN_DATE, tmp_path / "docs", tmp_path)
    assert verdict.published, verdict.reasons()
    assert [o.column for o in verdict.warnings] == ["failure_cause"]
    only_bad = run_gate(arrow_tables(rows_for(bad_uploads, "r")), GateOptions(), RUN_DATE, tmp_path / "d2", tmp_path)
    assert only_bad.published, only_bad.reasons()
    crashed = [failed(f"x{i}", "internal_error") for i in range(2)]
    verdict = run_gate(arrow_tables(rows_for([_invoice("a")] + crashed + bad_uploads, "r")),
                       GateOptions(), RUN_DATE, tmp_path / "d3", tmp_path)
    assert not verdict.published
    assert any("pipeline failed" in r for r in verdict.reasons()), verdict.reasons()


def _rule(result: DocumentResult):
    return [x for x in result.rule_results if x.rule_id == "duplicates.invoice"][-1]


def _check(results: list[DocumentResult], prior: list[PriorDocument]) -> list[DocumentResult]:
    """The duplicate check as the flow runs it: on summaries, its verdicts folded into the results."""
    verdicts = check_duplicates([summarize(r) for r in results], prior)
    for r in results:
        if r.doc_id in verdicts:
            apply_verdict(r, verdicts[r.doc_id])
    return results


def _prior(doc_id: str, path: str, *, status: str | None = None, like: DocumentResult | None = None,
           number: str | None = None, run_id: str = "r0") -> PriorDocument:
    values = read_values(like) if like else {}
    return PriorDocument(doc_id=doc_id, source_paths=[path], run_id=run_id, first_run_id=run_id, status=status,
                         vendor_name="ACME GmbH", invoice_number=number or f"R-{doc_id}", values=values)


def test_a_document_seen_before_at_any_path_is_that_document_never_its_own_duplicate():
    prior = [_prior("a", "/old/a.pdf", status="needs_review", like=_invoice("a")),
             _prior("b", "/old/b.pdf", status="accepted", like=_invoice("b"))]
    results = [
        _invoice("a", path="/new/a-copy.pdf"),  # same bytes as an earlier run's file, moved
        _invoice("b", path="/new/b.pdf"),  # the same, accepted there
        _invoice("c"),  # new
        _invoice("z", path="/old/a.pdf"),  # a different document at a path seen before
    ]
    _check(results, prior)
    for r in results:
        assert _rule(r).passed and r.status == Status.ACCEPTED and r.duplicate_of is None, (r.doc_id, _rule(r))


def test_a_re_issue_under_other_bytes_is_compared_with_its_original():
    prior = [_prior("a", "/old/a.pdf", status="needs_review", like=_invoice("a"))]
    results = _check([_invoice("b", vendor="Acme  gmbh", number="R-A")], prior)
    # Same vendor and number as a published document that was not accepted: a person looks.
    assert not _rule(results[0]).passed and "R-A" in _rule(results[0]).message.upper()
    assert "also on /old/a.pdf (earlier run r0)" in _rule(results[0]).message
    assert "the original was not accepted" in _rule(results[0]).message
    assert results[0].status == Status.NEEDS_REVIEW and "rule_failed:duplicates.invoice" in results[0].review_reasons


def test_one_copy_of_an_invoice_in_a_run_is_the_original_and_its_re_issues_are_duplicates():
    copies = [
        _invoice("x1", number="R-7", status=Status.NEEDS_REVIEW, path="/in/1.pdf"),  # held for another reason
        _invoice("x2", number="R-7", path="/in/2.pdf"),
        _invoice("x3", number="r 7", path="/in/3.pdf"),  # the number reads differently
        _invoice("x4", number="R-7", path="/in/4.pdf"),  # field for field the same as x2
        _invoice("x5", number="R-7", total="120.00", path="/in/5.pdf"),  # same number, other total
        _invoice("x6", number="R-7", vendor="ACME Gmb H", path="/in/6.pdf"),  # glyphs spaced apart
    ]
    reviewed = [_invoice(f"y{i}", number="R-9", status=Status.NEEDS_REVIEW, path=f"/in/y{i}.pdf") for i in (2, 1)]
    _check(copies + reviewed + [_invoice("solo")], [])
    rule = {r.doc_id: _rule(r) for r in copies + reviewed}
    # The accepted copy is the original: it stays accepted and every other copy names it.
    assert rule["x2"].passed and copies[1].status == Status.ACCEPTED and copies[1].duplicate_of is None
    # A re-issue that reads the same as the accepted original is recorded, not loaded or reviewed.
    assert copies[3].status == Status.DUPLICATE and copies[3].duplicate_of == "x2"
    assert not rule["x4"].passed and rule["x4"].severity == Severity.WARNING and "re-issue of x2" in rule["x4"].message
    assert copies[3].review_reasons == []
    assert copies[5].status == Status.DUPLICATE and copies[5].duplicate_of == "x2"
    # A copy that differs in any field, or was held anyway, goes to a person.
    for i in (0, 2, 4):
        assert copies[i].status == Status.NEEDS_REVIEW and "rule_failed:duplicates.invoice" in copies[i].review_reasons
        assert copies[i].duplicate_of is None
    assert "fields differ" in rule["x5"].message and "fields differ" in rule["x3"].message
    assert "duplicate of x2" in rule["x1"].message and "duplicate of x2" in rule["x3"].message
    # x1 reads like its accepted original; what holds it is its own checks, and it says so.
    assert "this copy fails its own checks" in rule["x1"].message
    # With no accepted copy the first by path is the original; the rest still name it, and are
    # reviewed even when they read the same.
    assert rule["y1"].passed and not rule["y2"].passed and "duplicate of y1" in rule["y2"].message
    assert reviewed[0].status == Status.NEEDS_REVIEW and "not accepted" in rule["y2"].message


def test_an_invoice_published_by_an_earlier_run_is_the_original_of_every_copy_in_this_run():
    held = [_prior("old", "/old/r7.pdf", number="R-7", like=_invoice("n0", number="R-7"))]
    results = _check([_invoice("n1", number="R-7"), _invoice("n2", number="R-7")], held)
    assert all(r.status == Status.NEEDS_REVIEW for r in results)
    assert all("also on /old/r7.pdf (earlier run r0)" in _rule(r).message for r in results)

    accepted = [_prior("old", "/old/r7.pdf", number="R-7", status="accepted", like=_invoice("n0", number="R-7"))]
    same, other = _check([_invoice("n1", number="R-7"), _invoice("n2", number="R-7", total="118.00")], accepted)
    assert same.status == Status.DUPLICATE and same.duplicate_of == "old"
    assert other.status == Status.NEEDS_REVIEW and "fields differ" in _rule(other).message


def test_the_same_bytes_under_two_paths_in_one_run_are_one_document():
    doc = _invoice("a")
    doc.source_paths = ["/in/a.pdf", "/in/copy-of-a.pdf"]
    _check([doc], [])
    assert doc.status == Status.ACCEPTED and _rule(doc).passed
    assert "same bytes under 2 paths in this run: one document" in _rule(doc).message


def _publish(out: Path, run_id: str, run_date: str, results: list[DocumentResult]) -> None:
    writer = RunWriter(out, run_id, run_date)
    writer.commit({"run_id": run_id, "files_written": writer.files_written(writer.stage(results), True)}, True)


def test_verdicts_are_stable_when_the_same_folder_is_run_again(tmp_path):
    """A born-digital invoice and its scan (other bytes, same vendor and number, both held for
    review) and a re-issue of an accepted invoice: the next run over the same folder, and a
    run that no longer sees one of the copies, name the same originals."""
    from docingest.published import prior_documents

    def folder() -> list[DocumentResult]:
        return [_invoice("pdf", number="INV-1", status=Status.NEEDS_REVIEW, path="/in/digital/inv.pdf"),
                _invoice("scan", number="INV-1", status=Status.NEEDS_REVIEW, path="/in/scanned/inv.png"),
                _invoice("orig", number="R-2", path="/in/a/r2.pdf"), _invoice("again", number="R-2", path="/in/b/r2.pdf")]

    first = _check(folder(), [])
    _publish(tmp_path, "20261201T000000Z-1", "2026-12-01", first)
    second = _check(folder(), prior_documents(tmp_path))
    assert [(r.doc_id, r.status, r.duplicate_of, _rule(r).passed) for r in second] == \
        [(r.doc_id, r.status, r.duplicate_of, _rule(r).passed) for r in first]
    assert [r.status for r in first] == [Status.NEEDS_REVIEW, Status.NEEDS_REVIEW, Status.ACCEPTED, Status.DUPLICATE]
    assert _rule(first[0]).passed and "duplicate of pdf" in _rule(first[1]).message
    _publish(tmp_path, "20261202T000000Z-2", "2026-12-02", second)
    # The digital copy's file is gone tonight: the scan is still the copy, its original published.
    third = _check(folder()[1:2], prior_documents(tmp_path))
    assert not _rule(third[0]).passed and "duplicate of pdf" in _rule(third[0]).message


def test_published_runs_are_read_back_with_status_and_values(tmp_path):
    from docingest.published import prior_documents

    first, second = _invoice("a"), _invoice("b", status=Status.NEEDS_REVIEW)
    _publish(tmp_path, "r1", "2026-11-22", [first, second])
    # The next night publishes "a" again, now from a second path too: still one document.
    again = _invoice("a")
    again.source_paths = ["/in/a.pdf", "/in/moved/a.pdf"]
    _publish(tmp_path, "r2", "2026-11-23", [again])
    prior = {p.doc_id: p for p in prior_documents(tmp_path)}
    assert len(prior_documents(tmp_path)) == 2
    assert prior["a"].status == "accepted" and prior["b"].status == "needs_review"
    assert prior["a"].values == read_values(first) and prior["a"].invoice_number == "R-a"
    assert prior["a"].run_id == "r2" and prior["a"].first_run_id == "r1"
    assert prior["a"].source_paths == ["/in/a.pdf", "/in/moved/a.pdf"]
    copy = _invoice("c", number="R-a")
    _check([copy], list(prior.values()))
    assert copy.status == Status.DUPLICATE and copy.duplicate_of == "a"


def test_flow_quarantines_a_batch_the_pipeline_failed_then_publishes_a_clean_one(tmp_path, monkeypatch):
    """End to end through the CLI: documents failed by the pipeline (here: an internal error in
    the classifier) break `share failed by the pipeline <= 0.5`; a corrupt upload beside them
    does not count. The next run processes the failed documents again (a system failure is never
    reused) and publishes."""
    import docingest.pipeline
    from docingest.cli import main

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    invoice = ["ACME Supplies GmbH", "Invoice Number: INV-100", "Invoice Date: 2026-10-01",
               "Subtotal 100.00", "VAT 19.00", "Total 119.00 EUR"]
    text_pdf(inbox / "good.pdf", invoice)
    text_pdf(inbox / "good2.pdf", invoice[:1] + ["Invoice Number: INV-101"] + invoice[2:])
    (inbox / "broken.pdf").write_bytes(b"%PDF-1.4 not really")

    def broken_classifier(*args, **kwargs):
        raise RuntimeError("classifier model missing")

    monkeypatch.setattr(docingest.pipeline, "classify_document", broken_classifier)
    assert main(["run", str(inbox), "--out", str(out), "--no-progress", "--workers", "2"]) == 3
    manifest = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert manifest["published"] is False
    assert manifest["failure_causes"] == {"input": 1, "system": 2}
    assert any("pipeline failed" in r for r in manifest["batch_gate"]["quarantine_reasons"]), manifest["batch_gate"]
    assert (out / manifest["batch_gate"]["data_docs"]).exists()
    assert (out / "quarantine" / manifest["run_id"] / "documents.parquet").exists()
    assert not (out / "published").exists()  # nothing published

    monkeypatch.undo()
    assert main(["run", str(inbox), "--out", str(out), "--no-progress", "--workers", "2"]) == 0
    runs = sorted((out / "runs").glob("*.json"), key=lambda p: json.loads(p.read_text())["started_at"])
    second = json.loads(runs[-1].read_text())
    assert second["published"] is True and second["batch_gate"]["quarantine_reasons"] == []
    assert second["documents"] == {"processed": 2, "reused": 1}
    assert (out / second["files_written"]["documents"]["path"]).exists()
    # The quarantined run is not history: the same file again is not a duplicate of it.
    import pyarrow.parquet as pq
    rules = pq.read_table(out / second["files_written"]["rule_results"]["path"]).to_pylist()
    dup = [r for r in rules if r["rule_id"] == "duplicates.invoice"]
    assert len(dup) == 2 and all(r["passed"] for r in dup), dup
