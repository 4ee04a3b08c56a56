"""The review app on a hostile network (issue 21): Host names, body limits before parsing,
field length limits, the reviewer's name from the server, page images capped in pixels, and
a queue that does not re-read the decision log on every request."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from docingest.review import store as store_module
from docingest.review.app import DISPLAY_MAX_PIXELS, MAX_BODY_BYTES, MAX_VALUE_CHARS, create_app
from docingest.review.store import DecisionLog
from docingest.schemas.review import ReviewAction, ReviewDecision
from hostile import _text, content_pdf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def published(tmp_path_factory, samples_dir):
    """One run over a normal invoice and a 14400 pt square page, both routed to review."""
    from docingest.config import Settings
    from docingest.flows.ingest import run_ingest

    inbox = tmp_path_factory.mktemp("inbox")
    (inbox / "invoice-en-001.pdf").write_bytes((samples_dir / "documents" / "digital" / "invoice-en-001.pdf").read_bytes())
    (inbox / "huge-page.pdf").write_bytes(content_pdf(_text(["Invoice Number: BIG-1", "Total 1.00"], size=200),
                                                      mediabox=b"0 0 14400 14400"))
    out = tmp_path_factory.mktemp("out")
    assert run_ingest(inbox, out, Settings(workers=2, show_progress=False)).published
    docs = pq.read_table(next(out.glob("published/*/*/documents.parquet"))).to_pylist()
    by_name = {Path(d["source_path"]).name: d for d in docs}
    assert {d["status"] for d in by_name.values()} == {"needs_review"}
    return out, by_name


def _client(out: Path, host: str = "127.0.0.1:8765", **kwargs) -> TestClient:
    return TestClient(create_app(out, reviewer="carol", **kwargs), base_url=f"http://{host}")


def _form(client: TestClient, doc_id: str) -> dict[str, str]:
    page = client.get(f"/doc/{doc_id}")
    assert page.status_code == 200
    form = dict(re.findall(r'<input type="hidden" name="([nk]\.\d+)" value="([^"]*)"', page.text))
    for m in re.finditer(r'<input name="(v\.\d+)" id="field-(\w+)"[^>]*value="([^"]*)"', page.text, re.S):
        form[m.group(1)] = m.group(3)
    form.update(csrf=re.search(r'name="csrf" value="([^"]+)"', page.text).group(1), action="reject",
                doc_type="invoice")
    return form


def _decisions(out: Path) -> list[dict]:
    log = out / "reviews" / "decisions.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_only_allowed_host_names_are_served(published):
    out, _ = published
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost"):
        assert _client(out, host).get("/").status_code == 200, host
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil.example:8765"):
        answer = _client(out, host).get("/")
        assert answer.status_code == 400 and "host not allowed" in answer.text, host
        assert _client(out, host).get("/healthz").status_code == 400
    assert _client(out, "review.corp.example:443", allowed_hosts=["review.corp.example"]).get("/").status_code == 200


def test_a_huge_body_is_refused_before_it_is_read_or_parsed(published):
    out, docs = published
    doc_id = docs["invoice-en-001.pdf"]["doc_id"]
    client = _client(out)
    form = _form(client, doc_id)
    before = len(_decisions(out))
    big = {**form, "note": "x" * (MAX_BODY_BYTES + 10)}
    assert client.post(f"/doc/{doc_id}/decide", data=big, follow_redirects=False).status_code == 413

    def chunks():  # no Content-Length: refused while it streams
        yield b"csrf=" + form["csrf"].encode() + b"&note="
        for _ in range(64):
            yield b"y" * 65536

    answer = client.post(f"/doc/{doc_id}/decide", content=chunks(), follow_redirects=False,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413
    # Without the CSRF cookie nothing is read at all.
    bare = TestClient(create_app(out, reviewer="carol"), base_url="http://127.0.0.1:8765")
    answer = bare.post(f"/doc/{doc_id}/decide", content=b"a=" + b"z" * 500_000, follow_redirects=False,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 403
    assert len(_decisions(out)) == before


def test_field_values_have_a_length_limit(published):
    out, docs = published
    doc_id = docs["invoice-en-001.pdf"]["doc_id"]
    client = _client(out)
    form = _form(client, doc_id)
    value_key = next(k for k in form if k.startswith("v."))
    before = len(_decisions(out))
    answer = client.post(f"/doc/{doc_id}/decide", data={**form, value_key: "9" * (MAX_VALUE_CHARS + 1)},
                         follow_redirects=False)
    assert answer.status_code == 422
    assert len(_decisions(out)) == before


def test_the_reviewer_is_the_servers_not_the_forms(published):
    out, docs = published
    doc_id = docs["invoice-en-001.pdf"]["doc_id"]
    client = _client(out)
    form = _form(client, doc_id)
    answer = client.post(f"/doc/{doc_id}/decide", data={**form, "reviewer": "mallory"}, follow_redirects=False)
    assert answer.status_code == 303
    assert _decisions(out)[-1]["reviewer"] == "carol"
    assert 'name="reviewer"' not in client.get(f"/doc/{doc_id}").text


def test_page_images_are_capped_in_pixels(published):
    out, docs = published
    doc_id = docs["huge-page.pdf"]["doc_id"]
    answer = _client(out).get(f"/doc/{doc_id}/page/1.png")
    assert answer.status_code == 200
    image = Image.open(BytesIO(answer.content))
    assert image.width * image.height <= DISPLAY_MAX_PIXELS and max(image.size) <= 1800
    assert image.width > 1000  # shrunk to fit, not refused


def test_the_decision_log_is_read_incrementally(tmp_path, monkeypatch):
    log = DecisionLog(tmp_path)
    for i in range(50):
        log.append(ReviewDecision(doc_id=f"{i:064x}", run_id="r", action=ReviewAction.APPROVED,
                                  doc_type="invoice", reviewer="carol", note="n" * 1000))
    parsed = []
    real = store_module.json.loads
    monkeypatch.setattr(store_module.json, "loads", lambda text: parsed.append(1) or real(text))
    assert len(log.latest_by_doc()) == 50 and len(parsed) == 50
    for _ in range(20):  # the queue asks on every request
        assert len(log.latest_by_doc()) == 50
    assert len(parsed) == 50
    # Another process (a second server) appends: only its line is read.
    DecisionLog(tmp_path).append(ReviewDecision(doc_id="f" * 64, run_id="r", action=ReviewAction.REJECTED,
                                                doc_type="other", reviewer="dave"))
    assert len(log.latest_by_doc()) == 51 and len(parsed) == 51
    # A torn line from a crash is skipped, and the next append still counts.
    with open(log.path, "ab") as fh:
        fh.write(b'{"decision_id": "torn')
    assert len(log.latest_by_doc()) == 51
    log.append(ReviewDecision(doc_id="e" * 64, run_id="r", action=ReviewAction.REJECTED, doc_type="other",
                              reviewer="carol"))
    assert len(log.latest_by_doc()) == 52


def test_review_cli_takes_allowed_hosts(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "docingest.cli", "review", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert "--allowed-host" in proc.stdout
