"""The VLM path: guard rails as plain functions, the engine against a scripted local
OpenAI-compatible server (the real ``openai`` client over HTTP), and the flow end to end."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from docingest.config import ImageDetail, ModelPrice, Settings
from docingest.engines import TextLayerEngine, build_ocr_engine
from docingest.engines.vlm import VlmEngine, build_client
from docingest.errors import BudgetExhausted, VlmRateLimited, VlmUnavailable
from docingest.pipeline import Engines, process_document
from docingest.stages.discover import discover
from docingest.stages.vlm_fields import locate, merge_pages
from docingest.vlm.cost import image_tokens
from docingest.vlm.limits import Budget, RequestLimiter
from docingest.vlm.parse import ParseProblem, RefusalDetected, parse_reply
from docingest.schemas.fields import DocType, FieldKind
from docingest.schemas.records import ExtractedValue, Status, TextSource, Word
from docingest.schemas.vlm import answer_spec
from tests.factories import text_pdf
from tests.fake_openai import FakeOpenAI

INVOICE = answer_spec(DocType.INVOICE)


def invoice_lines(scenario: str, number: int = 1001) -> list[str]:
    return [
        "Acme Tools GmbH", "Hauptstrasse 1, 10115 Berlin", "INVOICE", f"Invoice No: INV-{number}",
        "Invoice Date: 05.03.2024", "Bill to: Beta Retail Ltd", "Widget A 2 x 10.00 20.00",
        "Gadget B 4 x 20.00 80.00", "Subtotal: 100.00", "VAT 19%: 19.00", "Total: EUR 119.00",
        f"Reference: SCN-{scenario}",
    ]


# -- parsing, refusals ------------------------------------------------------------------------
def test_parse_strips_fences_and_prose():
    body = '{"vendor_name": "Acme", "total": "119.00"}'
    for reply in (body, f"```json\n{body}\n```", f"Here you go:\n{body}\nAnything else?"):
        assert parse_reply(reply, None, INVOICE).answer.total == "119.00"


def test_parse_reports_invalid_json_and_schema_errors():
    with pytest.raises(ParseProblem, match="invalid JSON"):
        parse_reply('{"vendor_name": "Acme", "total": ', None, INVOICE)
    with pytest.raises(ParseProblem, match="total"):
        parse_reply('{"total": {"amount": 5}}', None, INVOICE)


def test_refusals_are_recognised_three_ways():
    with pytest.raises(RefusalDetected):
        parse_reply(None, "I can't help with that.", INVOICE)  # the API's refusal field
    with pytest.raises(RefusalDetected):
        parse_reply("I'm sorry, but I can't assist with this document.", None, INVOICE)
    with pytest.raises(RefusalDetected):  # structural: short, none of the expected keys
        parse_reply("Nope.", None, INVOICE)
    # A document that itself says sorry is still an answer.
    ok = parse_reply('{"vendor_name": "Sorry Not Sorry Ltd", "total": "5.00"}', None, INVOICE)
    assert ok.answer.vendor_name == "Sorry Not Sorry Ltd"


# -- cost, limits ---------------------------------------------------------------------------------
def test_image_tokens_follow_the_tile_formula():
    price = ModelPrice()  # 85 base + 170 per 512-px tile
    assert image_tokens(1024, 1024, ImageDetail.HIGH, price) == 765
    assert image_tokens(2048, 4096, ImageDetail.HIGH, price) == 1105
    assert image_tokens(4000, 3000, ImageDetail.LOW, price) == 85


def test_limiter_bounds_in_flight_and_spaces_requests():
    limiter = RequestLimiter(max_in_flight=2, requests_per_minute=600)  # one per 0.1 s

    def work():
        with limiter.slot():
            time.sleep(0.05)

    t0 = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert limiter.peak_in_flight <= 2
    assert time.monotonic() - t0 >= 0.5  # 6 starts, 0.1 s apart

    limiter.pause(0.3)  # a Retry-After
    t1 = time.monotonic()
    with limiter.slot():
        assert time.monotonic() - t1 >= 0.29


def test_budget_refuses_once_reached():
    budget = Budget(0.01)
    budget.check(0.004)
    budget.add(0.008)
    with pytest.raises(BudgetExhausted):
        budget.check(0.004)


# -- grounding and merging ------------------------------------------------------------------------
def _words(*texts: str) -> list[Word]:
    return [Word(t, (0.1 * i, 0.1, 0.1 * i + 0.08, 0.12), 0.9, 0) for i, t in enumerate(texts)]


def test_values_are_grounded_in_the_page_words_or_flagged():
    words = _words("Total", "EUR", "1.234,56", "Acme", "Tools", "GmbH")
    found = locate("1,234.56", words, FieldKind.AMOUNT, "1234.56")  # printed differently
    assert found.grounded and found.bbox == words[2].bbox
    name = locate("ACME TOOLS GmbH", words, FieldKind.TEXT, None)
    assert name.grounded and name.bbox == (words[3].bbox[0], 0.1, words[5].bbox[2], 0.12)
    assert not locate("999.99", words, FieldKind.AMOUNT, "999.99").grounded


def test_merge_keeps_first_scalar_and_last_total_with_pages():
    def v(name, raw, page):
        return ExtractedValue(field_name=name, value_raw=raw, value=raw, confidence=0.9, page=page,
                              source=TextSource.VLM)

    merged = merge_pages(DocType.INVOICE, [
        ([v("vendor_name", "Acme", 1), v("total", "10.00", 1)], []),
        ([v("vendor_name", "Other", 2), v("total", "119.00", 2)], []),
    ])
    assert merged.get("vendor_name").value == "Acme" and merged.get("vendor_name").page == 1
    assert merged.get("total").value == "119.00" and merged.get("total").page == 2


# -- the engine against the scripted server --------------------------------------------------------
@pytest.fixture
def vlm_env(tmp_path, monkeypatch):
    def make(fake: FakeOpenAI, **vlm_overrides):
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        options = {"cache_dir": str(tmp_path / "vlm-cache"), "timeout_seconds": 1.0, **vlm_overrides}
        settings = Settings(extractor="vlm", vlm_model="fake-vlm", vlm=options, show_progress=False)
        engines = Engines(TextLayerEngine(), build_ocr_engine(settings.ocr),
                          VlmEngine.from_settings(settings, build_client(settings.vlm)))
        return settings, engines
    return make


def _process(tmp_path: Path, scenario: str, settings, engines, number: int = 1001):
    pdf = text_pdf(tmp_path / f"{scenario}-{number}.pdf", invoice_lines(scenario, number))
    return process_document(discover(pdf)[0][0], settings, engines)


@pytest.mark.parametrize("scenario, requests", [
    ("valid", 1), ("fenced", 1), ("prose", 1),
    ("invalid_json", 2), ("schema_invalid", 2),  # asked once more with the validation error
    ("length", 2),  # cut off at 2048 tokens, complete at 4096
])
def test_usable_answers_are_accepted(tmp_path, vlm_env, scenario, requests):
    with FakeOpenAI() as fake:
        settings, engines = vlm_env(fake)
        result = _process(tmp_path, scenario, settings, engines)
    assert result.status == Status.ACCEPTED, result.review_reasons
    assert fake.count() == requests == result.vlm_usage.requests
    values = {v.field_name: v for v in result.extraction.values}
    assert values["total"].value == "119.00" and values["total"].source == TextSource.VLM
    assert values["invoice_date"].value == "2024-03-05"
    assert all(v.grounded and v.bbox for v in values.values())
    assert values["total"].agrees_with_local is True
    assert [li.amount for li in result.extraction.line_items] == ["20.00", "80.00"]
    assert result.classification.doc_type == DocType.INVOICE
    assert result.pages[0].strategy.value == "vlm"
    if scenario == "length":
        assert [r["max_tokens"] for r in fake.requests] == [2048, 4096]


@pytest.mark.parametrize("scenario, kind, requests", [
    ("refusal_field", "vlm_refusal", 1),
    ("refusal_text", "vlm_refusal", 1),  # never retried
    ("length_always", "vlm_truncated", 3),  # 2048 → 4096 → 8192, then given up
])
def test_refusals_and_truncation_are_recorded_and_reviewed(tmp_path, vlm_env, scenario, kind, requests):
    with FakeOpenAI() as fake:
        settings, engines = vlm_env(fake)
        result = _process(tmp_path, scenario, settings, engines)
    assert result.status == Status.NEEDS_REVIEW
    assert [e.kind for e in result.errors] == [kind] and result.errors[0].page == 1
    assert fake.count() == requests
    assert not any(v.source == TextSource.VLM for v in result.extraction.values)  # no half answer


def test_an_inferred_value_is_flagged_as_ungrounded(tmp_path, vlm_env):
    with FakeOpenAI() as fake:
        settings, engines = vlm_env(fake)
        result = _process(tmp_path, "hallucinate", settings, engines)
    total = result.extraction.get("total")
    assert total.value == "999.99" and not total.grounded and total.agrees_with_local is False
    assert "ungrounded:total" in result.review_reasons and result.status == Status.NEEDS_REVIEW


@pytest.mark.parametrize("scenario, error", [
    ("rate_limited", VlmRateLimited), ("server_error", VlmUnavailable), ("slow", VlmUnavailable),
])
def test_transient_failures_raise_for_the_task_to_retry(tmp_path, vlm_env, scenario, error):
    with FakeOpenAI() as fake:
        settings, engines = vlm_env(fake)
        with pytest.raises(error) as info:
            _process(tmp_path, scenario, settings, engines)
        assert info.value.transient
        again = _process(tmp_path, scenario, settings, engines)  # what the retry does
    assert again.status == Status.ACCEPTED and fake.count() == 2


def test_response_format_rejection_is_detected_once(tmp_path, vlm_env):
    with FakeOpenAI(reject_response_format=True) as fake:
        settings, engines = vlm_env(fake)
        results = [_process(tmp_path, "valid", settings, engines, number=n) for n in (1, 2, 3)]
    assert all(r.status == Status.ACCEPTED for r in results)
    assert [r["response_format"] for r in fake.requests] == [True, False, False, False]
    assert engines.vlm.structured_outputs_supported is False


def test_budget_exhaustion_sends_to_review_without_a_request(tmp_path, vlm_env):
    prices = {"fake-vlm": {"input_per_mtok": 10.0, "output_per_mtok": 0.0}}
    with FakeOpenAI() as fake:
        settings, engines = vlm_env(fake, prices=prices)
        # A page is estimated at ~2000 prompt tokens ($0.02) and billed 1200 tokens ($0.012): the
        # first fits in $0.025, the second would not (0.012 spent + 0.02 estimated).
        engines.vlm.budget.limit_usd = 0.025
        first = _process(tmp_path, "valid", settings, engines, number=1)
        second = _process(tmp_path, "valid", settings, engines, number=2)
    assert first.status == Status.ACCEPTED and first.vlm_usage.cost_usd == pytest.approx(0.012)
    assert fake.count() == 1
    assert second.status == Status.NEEDS_REVIEW and second.review_reasons[0] == "budget_exhausted"
    assert second.vlm_usage.requests == 0
    assert second.extraction.get("total").value == "119.00"  # local values kept, nothing lost


# -- the flow, end to end, through the CLI ----------------------------------------------------------
SCENARIO_STATUS = {
    "valid": "accepted", "fenced": "accepted", "prose": "accepted", "invalid_json": "accepted",
    "schema_invalid": "accepted", "rate_limited": "accepted", "server_error": "accepted",
    "slow": "accepted", "length": "accepted", "refusal_field": "needs_review",
    "refusal_text": "needs_review", "length_always": "needs_review", "hallucinate": "needs_review",
}


def test_vlm_run_end_to_end_then_rerun_from_cache(tmp_path, monkeypatch):
    from docingest.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    for n, scenario in enumerate(SCENARIO_STATUS):
        text_pdf(docs / f"{scenario}.pdf", invoice_lines(scenario, 2000 + n))
    (docs / "notes.txt").write_text("not a document")
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("DOCINGEST_VLM__CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("DOCINGEST_VLM__TIMEOUT_SECONDS", "1")
        monkeypatch.setenv("DOCINGEST_RETRY_DELAY_SECONDS", "0.2")
        args = ["run", str(docs), "--extractor", "vlm", "--vlm-model", "fake-vlm", "--no-progress"]
        assert main(args + ["--out", str(tmp_path / "out1")]) == 0
        first_count = fake.count()
        assert main(args + ["--out", str(tmp_path / "out2")]) == 0
        assert fake.count() == first_count  # the rerun sent nothing

    limited = [r["at"] for r in fake.requests if r["scenario"] == "rate_limited"]
    assert len(limited) == 2 and limited[1] - limited[0] >= 1.0  # Retry-After: 1 honoured

    def table(out: str, name: str):
        return pq.read_table(next((tmp_path / out).glob(f"published/*/*/{name}.parquet"))).to_pylist()

    for out in ("out1", "out2"):
        documents = {Path(r["source_path"]).stem: r for r in table(out, "documents")}
        assert set(documents) == set(SCENARIO_STATUS) | {"notes"}  # every input accounted for
        assert {k: documents[k]["status"] for k in SCENARIO_STATUS} == SCENARIO_STATUS
        assert documents["notes"]["status"] == "failed"
    second = {Path(r["source_path"]).stem: r for r in table("out2", "documents")}
    assert all(r["vlm_requests"] == 0 for r in second.values())
    assert sum(r["vlm_cache_hits"] for r in second.values()) >= len(SCENARIO_STATUS)

    def fields(out):
        return sorted((r["doc_id"], r["field_name"], r["key"] or "", r["value_raw"], r["value"] or "",
                       r["grounded"], r["source"]) for r in table(out, "fields"))

    assert fields("out1") == fields("out2") and any(f[-1] == "vlm" for f in fields("out1"))
    kinds = {r["error_kind"] for r in table("out1", "failures")}
    assert {"vlm_refusal", "vlm_truncated", "unsupported_file_type"} <= kinds
    assert "vlm_rate_limited" not in kinds  # retried, then fine


# -- the auto strategy --------------------------------------------------------------------------------
def test_auto_sends_only_weak_pages_to_the_vlm_and_says_why():
    from docingest.config import ExtractorName, RoutingThresholds, VlmOptions
    from docingest.stages.strategy import plan_pages
    from docingest.schemas.records import Classification, PageInfo

    def pages():
        return [PageInfo(page=1, text_source=TextSource.TEXT_LAYER, word_count=300),
                PageInfo(page=2, text_source=TextSource.OCR, mean_confidence=0.95),
                PageInfo(page=3, text_source=TextSource.OCR, mean_confidence=0.60),
                PageInfo(page=4)]  # unreadable: nothing to send
    invoice = Classification(doc_type=DocType.INVOICE, confidence=0.9)
    opts, th = VlmOptions(), RoutingThresholds()

    ps = pages()
    plan = plan_pages(ExtractorName.AUTO, ps, invoice, opts, th)
    assert plan.vlm_pages == [3] and not plan.classify_with_vlm
    assert [p.strategy.value if p.strategy else None for p in ps] == ["text_layer", "ocr", "vlm", None]
    assert "OCR confidence 0.60 < 0.85" in ps[2].strategy_reason

    form = Classification(doc_type=DocType.FORM, confidence=0.9)
    assert plan_pages(ExtractorName.AUTO, pages(), form, opts, th).vlm_pages == [1, 2, 3]
    unsure = Classification(doc_type=DocType.INVOICE, confidence=0.4)
    plan = plan_pages(ExtractorName.AUTO, pages(), unsure, opts, th)
    assert plan.vlm_pages == [1, 2, 3] and plan.classify_with_vlm
    plan = plan_pages(ExtractorName.VLM, pages(), invoice, opts, th)
    assert plan.vlm_pages == [1, 2, 3] and plan.classify_with_vlm
    assert plan_pages(ExtractorName.LOCAL, pages(), invoice, opts, th).vlm_pages == []


def test_auto_without_an_endpoint_is_local(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert Settings(vlm_model="m").effective_extractor().value == "local"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert Settings(vlm_model="m").effective_extractor().value == "auto"
    assert Settings().effective_extractor().value == "local"  # no model


def test_cli_refuses_vlm_without_model_or_endpoint(monkeypatch, tmp_path, capsys):
    from docingest.cli import main

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("DOCINGEST_VLM_MODEL", raising=False)
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "o"), "--extractor", "vlm"]) == 2
    assert "needs a model" in capsys.readouterr().err
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "o"), "--extractor", "vlm",
                 "--vlm-model", "m"]) == 2
    assert "needs an endpoint" in capsys.readouterr().err
