"""Running docingest the Prefect way: a served deployment on a real `prefect server start`,
what the UI shows of a run, and the Dask runner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from factories import text_pdf, truncated_pdf
from outputs import latest_manifest, snapshot

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A real Prefect server on loopback, with its own home, as a user runs it."""
    port = _free_port()
    env = dict(os.environ, PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-server")),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while True:
        try:
            _api(url, "/health")
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "prefect server did not start"
            time.sleep(0.5)
    yield url, env
    _stop(proc)


def _prefect(url: str, env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefect", *args], env=dict(env, PREFECT_API_URL=url),
                          capture_output=True, text=True, timeout=timeout)


def test_a_served_deployment_runs_and_the_ui_shows_what_happened(prefect_server, tmp_path):
    url, server_env = prefect_server
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    good = text_pdf(inbox / "invoice.pdf", ["ACME Supplies GmbH", "Invoice Number: INV-7",
                                            "Invoice Date: 2026-10-01", "Total 119.00 EUR"])
    truncated_pdf(inbox / "corrupt.pdf", good)
    # As a user starts it: the test session's quiet Prefect logging is not theirs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    env.update(PREFECT_API_URL=url, PREFECT_HOME=server_env["PREFECT_HOME"], PYTHONPATH=str(ROOT))
    serve = subprocess.Popen([sys.executable, "-m", "docingest.cli", "serve", str(inbox), "--out", str(out),
                              "--name", "ci", "--cron", "0 2 * * *", "--workers", "2"],
                             env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _api(url, "/deployments/filter", {}):
            assert serve.poll() is None, serve.stdout.read().decode()
            assert time.monotonic() < deadline, "the deployment never appeared"
            time.sleep(1)
        deployment = _api(url, "/deployments/filter", {})[0]
        assert deployment["name"] == "ci" and deployment["parameters"]["out"] == str(out)
        assert [s["schedule"]["cron"] for s in _api(url, f"/deployments/{deployment['id']}/schedules")] == ["0 2 * * *"]

        run = _prefect(url, server_env, "deployment", "run", "ingest/ci", "--watch", timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        _stop(serve)

    # The tables are published in OUT.
    manifest = latest_manifest(out)
    assert manifest["published"] is True and manifest["documents"]["processed"] == 2
    assert (out / manifest["files_written"]["documents"]["path"]).exists()
    # The Prefect CLI answers against this server with the pinned dependencies.
    for command in (["flow-run", "ls"], ["artifact", "ls"], ["deployment", "ls"]):
        listed = _prefect(url, server_env, *command)
        assert listed.returncode == 0, (command, listed.stdout, listed.stderr)
    assert "ingest/ci" in _prefect(url, server_env, "deployment", "ls").stdout.replace(" ", "")

    runs = _api(url, "/flow_runs/filter", {"flows": {"name": {"any_": ["ingest"]}}})
    assert len(runs) == 1 and runs[0]["state_type"] == "COMPLETED"
    flow_run = runs[0]
    assert flow_run["name"].startswith("ingest inbox 20")  # the source and the date
    # INFO logs reached the server, a line per document among them.
    logs = _api(url, "/logs/filter", {"logs": {"level": {"ge_": 20}}, "limit": 200})
    messages = [entry["message"] for entry in logs]
    assert any("corrupt.pdf: failed" in m for m in messages), messages[:20]
    assert any("invoice.pdf: needs_review" in m or "invoice.pdf: accepted" in m for m in messages), messages[:20]
    # The run's markdown summary is an artifact of the flow run.
    artifacts = _api(url, "/artifacts/filter", {"artifacts": {"key": {"any_": ["ingest-summary"]}}})
    assert artifacts and artifacts[0]["type"] == "markdown" and artifacts[0]["flow_run_id"] == flow_run["id"]
    assert "**Published**" in artifacts[0]["data"] and "corrupt_document" in artifacts[0]["data"]
    progress = _api(url, "/artifacts/filter", {"artifacts": {"key": {"any_": ["ingest-progress"]}}})
    assert progress and progress[0]["type"] == "progress" and progress[0]["data"] == 100.0
    # The corrupt document's task is not a plain success; the good one's says how it ended.
    tasks = {t["name"]: t for t in _api(url, "/task_runs/filter", {})}
    assert tasks["corrupt.pdf"]["state_type"] == "FAILED" and tasks["corrupt.pdf"]["state_name"] == "Document failed"
    assert tasks["invoice.pdf"]["state_type"] == "COMPLETED"
    assert tasks["invoice.pdf"]["state_name"] in ("Accepted", "Needs review")


def test_the_process_and_dask_runners_publish_what_the_thread_runner_does(tmp_path, samples_dir):
    from docingest.config import RunnerName, Settings
    from docingest.flows.ingest import run_ingest

    inbox = tmp_path / "inbox"
    shutil.copytree(samples_dir / "documents", inbox)
    tables = {}
    for runner in (RunnerName.THREAD, RunnerName.PROCESS, RunnerName.DASK):
        out = tmp_path / runner.value
        summary = run_ingest(inbox, out, Settings(workers=2, show_progress=False, runner=runner))
        assert summary.published and summary.processed == 15
        manifest = latest_manifest(out)
        assert manifest["runner"] == runner.value
        tables[runner] = snapshot(out, manifest["run_id"])
        # Honest durations: the process's age, and every stage's seconds.
        durations = manifest["durations"]
        assert durations["process_seconds"] >= durations["wall_seconds"] > 0
        stages = durations["stage_seconds"]
        assert set(stages) == {"render", "text", "ocr", "classify", "extract", "validate", "gate", "write"}
        assert stages["ocr"] > 0 and stages["text"] > 0 and stages["gate"] > 0  # 5 scans, 9 PDFs
    assert tables[RunnerName.PROCESS] == tables[RunnerName.THREAD]
    assert tables[RunnerName.DASK] == tables[RunnerName.THREAD]


def test_the_run_summary_says_what_happened_and_where():
    from docingest.run_report import markdown_summary

    manifest = {
        "run_id": "20261204T020000Z-abc", "published": False, "counts": {"accepted": 1, "needs_review": 2, "failed": 1},
        "inputs": {"files": 5, "pages": 7}, "documents": {"processed": 3, "reused": 1},
        "durations": {"wall_seconds": 12.5}, "doc_types": {"invoice": 3},
        "review_reasons": {"low_field_confidence:total": 2, "rule_failed:duplicates.invoice": 1},
        "failure_causes": {"input": 1}, "failure_kinds": {"corrupt_document": 1},
        "batch_gate": {"enabled": True, "quarantine_reasons": ["documents: share failed"], "warnings": ["w1"],
                       "data_docs": "data_docs/20261204T020000Z-abc/index.html"},
        "recovered": ["removed the staging folder of unfinished run r0"],
    }
    text = markdown_summary(manifest, Path("/srv/out"))
    assert text.startswith("# docingest run 20261204T020000Z-abc")
    assert "**QUARANTINED**" in text and "3 processed, 1 reused" in text
    assert "| needs_review | 2 |" in text and "| `low_field_confidence:total` | 2 |" in text
    assert "| `corrupt_document` | 1 |" in text and "- fail: documents: share failed" in text
    assert "/srv/out/quarantine/20261204T020000Z-abc" in text and "/srv/out/data_docs/" in text
    assert "removed the staging folder" in text
