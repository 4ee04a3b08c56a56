"""The review loop end to end: a run routes an invoice with a wrong total to review; a reviewer
corrects it in a real browser (Playwright + Debian's chromium); the server is killed; nothing
saved is lost; apply-reviews publishes the corrected value with the original beside it.

Set REVIEW_SCREENSHOTS=DIR to write the README's screenshots there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from factories import text_pdf

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
WRONG, RIGHT = "191.00", "119.00"
INVOICE = [
    "Nordlicht Bürobedarf GmbH",
    "Hafenstraße 12, 20457 Hamburg",
    "Invoice Number: NB-2026-0415",
    "Invoice Date: 2026-10-01",
    "Bill to: Muster & Partner <script>alert('x')</script>",
    "Description          Qty   Amount",
    "Printer paper A4      10   100.00",
    "Subtotal 100.00",
    "VAT 19% 19.00",
    # The misprint the reviewer fixes: 191.00 where subtotal + VAT is 119.00.
    f"Total {WRONG} EUR",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(out: Path, port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "docingest.cli", "review", "--out", str(out), "--port", str(port),
         "--reviewer", "alice", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except urllib.error.HTTPError:
            return proc  # up, but wants a token
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"review server did not start: {proc.stdout.read().decode()}")


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # no clean shutdown: a crash
    proc.wait(timeout=10)


def _request(url: str, data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture(scope="module")
def routed(tmp_path_factory, samples_dir):
    from docingest.config import Settings
    from docingest.flows.ingest import run_ingest

    inbox = tmp_path_factory.mktemp("inbox")
    text_pdf(inbox / "nordlicht-0415.pdf", INVOICE)
    for name in ("invoice-en-001.pdf", "receipt-001.pdf"):
        (inbox / name).write_bytes((samples_dir / "documents" / "digital" / name).read_bytes())
    out = tmp_path_factory.mktemp("out")
    summary = run_ingest(inbox, out, Settings(workers=2, show_progress=False))
    assert summary.published
    docs = pq.read_table(next(out.glob("published/*/*/documents.parquet"))).to_pylist()
    invoice = next(d for d in docs if d["source_path"].endswith("nordlicht-0415.pdf"))
    assert invoice["status"] == "needs_review"
    assert "rule_failed:amounts.total_eq_subtotal_plus_tax" in invoice["review_reasons"]
    fields = pq.read_table(next(out.glob("published/*/*/fields.parquet"))).to_pylist()
    total = next(f for f in fields if f["doc_id"] == invoice["doc_id"] and f["field_name"] == "total")
    assert total["value"] == WRONG
    return out, invoice


def test_reviewer_corrects_a_wrong_total_in_the_browser_and_it_survives_a_crash(routed):
    from playwright.sync_api import expect, sync_playwright

    out, invoice = routed
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    shots = Path(os.environ["REVIEW_SCREENSHOTS"]) if os.environ.get("REVIEW_SCREENSHOTS") else None
    server = _start(out, port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            page.goto(base + "/")
            row = page.locator("#queue tr", has_text="nordlicht-0415.pdf")
            expect(row).to_contain_text("rule_failed:amounts.total_eq_subtotal_plus_tax")
            if shots:
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / "review-list.png"), full_page=True)

            row.locator("a").click()
            expect(page.locator("#doc-name")).to_have_text("nordlicht-0415.pdf")
            image = page.locator(".page img").first
            expect(image).to_be_visible()
            page.wait_for_function("document.querySelector('.page img').naturalWidth > 0")
            total = page.locator("#field-total")
            expect(total).to_have_value(WRONG)
            # Focusing the value highlights its box on the page image.
            total.focus()
            active = page.locator(".box.active")
            expect(active).to_have_count(1)
            assert active.bounding_box()["width"] > 5
            # The untrusted text is shown as text, never run.
            assert "<script>alert" not in page.content().split("<main>")[1]
            expect(page.locator("#field-customer_name")).to_have_value(
                "Muster & Partner <script>alert('x')</script>")
            if shots:
                page.screenshot(path=str(shots / "review-document.png"), full_page=False)

            total.fill(RIGHT)
            page.keyboard.press("Control+Enter")  # approve from the keyboard while typing
            page.wait_for_url("**saved=corrected**")
            assert dialogs == []
            browser.close()
    finally:
        _kill(server)  # killed right after the save: the decision must already be on disk

    log = out / "reviews" / "decisions.jsonl"
    decisions = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(decisions) == 1
    d = decisions[0]
    assert d["doc_id"] == invoice["doc_id"] and d["action"] == "corrected" and d["reviewer"] == "alice"
    assert {"field_name": "total", "key": None, "value_raw": RIGHT, "value": RIGHT} in d["values"]

    # A restarted server knows the decision: the document no longer waits.
    server = _start(out, port)
    try:
        status, body, _ = _request(base + "/")
        assert status == 200 and "nordlicht-0415.pdf" not in body
    finally:
        _kill(server)

    from docingest.cli import main

    labels = out / "reviewed-labels.jsonl"
    assert main(["apply-reviews", "--out", str(out), "--export-labels", str(labels)]) == 0
    docs = {d["doc_id"]: d for d in pq.read_table(out / "curated" / "documents.parquet").to_pylist()}
    curated = docs[invoice["doc_id"]]
    assert curated["status"] == "accepted", curated["reasons"]
    assert curated["status_original"] == "needs_review" and curated["review_action"] == "corrected"
    assert curated["reviewer"] == "alice" and curated["decision_id"] == d["decision_id"]
    fields = [f for f in pq.read_table(out / "curated" / "fields.parquet").to_pylist()
              if f["doc_id"] == invoice["doc_id"]]
    total = next(f for f in fields if f["field_name"] == "total")
    assert (total["value"], total["value_original"], total["change"], total["source"]) == (
        RIGHT, WRONG, "corrected", "review")
    assert total["bbox"] is not None and total["extraction_run_id"] == invoice["run_id"]
    rules = [r for r in pq.read_table(out / "curated" / "rule_results.parquet").to_pylist()
             if r["doc_id"] == invoice["doc_id"] and r["rule_id"] == "amounts.total_eq_subtotal_plus_tax"]
    assert rules and rules[0]["passed"] and rules[0]["evaluated_on"] == "review"
    # The published extraction is untouched.
    published = pq.read_table(next(out.glob("published/*/*/fields.parquet"))).to_pylist()
    assert next(f for f in published if f["doc_id"] == invoice["doc_id"] and f["field_name"] == "total")["value"] == WRONG
    # Not reviewed: the other documents keep the pipeline's status.
    assert all(x["status"] == x["status_original"] for k, x in docs.items() if k != invoice["doc_id"])
    exported = [json.loads(line) for line in labels.read_text().splitlines()]
    assert len(exported) == 1 and exported[0]["fields"]["total"] == RIGHT
    assert exported[0]["doc_type"] == "invoice" and exported[0]["path"] == invoice["source_path"]


def test_writes_need_the_csrf_token_and_a_same_origin(routed):
    out, invoice = routed
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start(out, port)
    try:
        url = f"{base}/doc/{invoice['doc_id']}/decide"
        body = b"action=approve&csrf=guess&doc_type=invoice"
        status, _, _ = _request(url, body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 403
        status, _, _ = _request(url, body, {"Content-Type": "application/x-www-form-urlencoded",
                                            "Origin": "http://evil.example", "Cookie": "docingest_csrf=guess"})
        assert status == 403
        # Path traversal and unknown ids never reach the disk.
        for path in ("/doc/..%2F..%2Fetc%2Fpasswd/page/1.png", "/doc/" + "0" * 64 + "/page/1.png",
                     f"/doc/{invoice['doc_id']}/page/99.png", "/static/..%2Fapp.py", "/static/app.py"):
            status, _, _ = _request(base + path)
            assert status == 404, path
        status, _, headers = _request(f"{base}/doc/{invoice['doc_id']}")
        assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
        assert not (out / "reviews" / "decisions.jsonl").exists() or not any(
            json.loads(line)["doc_id"] == invoice["doc_id"] and json.loads(line)["action"] == "approved"
            for line in (out / "reviews" / "decisions.jsonl").read_text().splitlines())
    finally:
        _kill(server)


def test_a_token_guards_every_route(routed):
    out, _ = routed
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start(out, port, "--token", "s3cret")
    try:
        assert _request(base + "/")[0] == 401
        assert _request(base + "/?token=wrong")[0] == 401
        status, _, headers = _request(base + "/?token=s3cret")
        assert status == 303 and "docingest_token=s3cret" in headers["set-cookie"]
        assert headers["location"] == "/"
        assert _request(base + "/", headers={"Cookie": "docingest_token=s3cret"})[0] == 200
    finally:
        _kill(server)


def test_refuses_to_listen_beyond_loopback_without_a_token(tmp_path):
    from docingest.cli import main

    assert main(["review", "--out", str(tmp_path), "--host", "0.0.0.0"]) == 2


def test_approving_values_that_break_a_rule_asks_first(routed):
    """Runs after the browser test (file order): it decides another document."""
    import re

    from fastapi.testclient import TestClient

    from docingest.review.app import create_app

    out, _ = routed
    docs = pq.read_table(next(out.glob("published/*/*/documents.parquet"))).to_pylist()
    doc = next(d for d in docs if d["source_path"].endswith("invoice-en-001.pdf"))
    client = TestClient(create_app(out, reviewer="carol"), base_url="http://127.0.0.1")
    page = client.get(f"/doc/{doc['doc_id']}")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    form = dict(re.findall(r'<input type="hidden" name="([nk]\.\d+)" value="([^"]*)"', page.text))
    for m in re.finditer(r'<input name="(v\.\d+)" id="field-(\w+)"[^>]*value="([^"]*)"', page.text, re.S):
        form[m.group(1)] = "1.00" if m.group(2) == "total" else m.group(3)
    form.update(csrf=csrf, action="approve", doc_type="invoice")
    before = len((out / "reviews" / "decisions.jsonl").read_text().splitlines())
    answer = client.post(f"/doc/{doc['doc_id']}/decide", data=form, follow_redirects=False)
    assert answer.status_code == 422 and "save anyway" in answer.text and "amounts." in answer.text
    assert len((out / "reviews" / "decisions.jsonl").read_text().splitlines()) == before
    answer = client.post(f"/doc/{doc['doc_id']}/decide", data={**form, "force": "1"}, follow_redirects=False)
    assert answer.status_code == 303
    saved = json.loads((out / "reviews" / "decisions.jsonl").read_text().splitlines()[-1])
    assert saved["doc_id"] == doc["doc_id"] and saved["action"] == "corrected" and saved["reviewer"] == "carol"
