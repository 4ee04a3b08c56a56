"""A scripted OpenAI-compatible Chat Completions server on 127.0.0.1 for tests and benchmarks.

The real ``openai`` client talks to it over HTTP. Which behaviour a request gets is decided by a
marker printed on the test document (``SCN-<scenario>``), which reaches the server through the
page-text hint in the prompt. Valid answers are read off that same text with a few regexes, so
the server answers what the page says (or, for ``hallucinate``, a total that is not on it).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCENARIOS = (
    "valid", "fenced", "prose", "invalid_json", "schema_invalid", "refusal_field", "refusal_text",
    "rate_limited", "server_error", "slow", "length", "length_always", "hallucinate",
)

_LABELS = {
    "invoice_number": r"Invoice No:\s*(\S+)",
    "invoice_date": r"Invoice Date:\s*([\d./-]+)",
    "due_date": r"Due Date:\s*([\d./-]+)",
    "customer_name": r"Bill to:\s*(.+)",
    "subtotal": r"Subtotal:\s*([\d.,]+)",
    "tax": r"VAT[^:]*:\s*([\d.,]+)",
    "total": r"Total:\s*(?:[A-Z]{3}\s*)?([\d.,]+)",
    "currency": r"Total:\s*([A-Z]{3})",
}


def answer_from_text(text: str, classify: bool) -> dict[str, Any]:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    answer: dict[str, Any] = {"vendor_name": lines[0] if lines else None,
                              "vendor_address": lines[1] if len(lines) > 1 else None}
    for name, pattern in _LABELS.items():
        m = re.search(pattern, text)
        answer[name] = m.group(1).strip() if m else None
    answer["line_items"] = [
        {"description": m.group(1).strip(), "quantity": m.group(2), "unit_price": m.group(3),
         "amount": m.group(4)}
        for m in re.finditer(r"^(.+?)\s+(\d+) x ([\d.,]+)\s+([\d.,]+)$", text, re.M)
    ]
    if classify:
        answer.update({"doc_type": "invoice", "doc_type_confidence": 0.95})
    return answer


class FakeOpenAI:
    def __init__(self, latency: float = 0.0, reject_response_format: bool = False,
                 slow_seconds: float = 3.0, truncate_below: int = 4096):
        self.latency = latency
        self.reject_response_format = reject_response_format
        self.slow_seconds = slow_seconds
        self.truncate_below = truncate_below
        self.requests: list[dict[str, Any]] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                status, headers, payload = fake.handle(self.path, body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in {"content-type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        self.base_url = self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- behaviour ------------------------------------------------------------------------
    def count(self, scenario: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if scenario is None or r["scenario"] == scenario)

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        text = _prompt_text(body)
        m = re.search(r"SCN-([a-z_]+)", text)
        scenario = m.group(1) if m else "valid"
        with self._lock:
            attempt = self._attempts.get(scenario, 0) + 1
            self._attempts[scenario] = attempt
            self.requests.append({"scenario": scenario, "attempt": attempt, "at": time.monotonic(),
                                  "response_format": "response_format" in body,
                                  "max_tokens": body.get("max_tokens"), "messages": len(body.get("messages", []))})
        if self.latency:
            time.sleep(self.latency)
        if not path.endswith("/chat/completions"):
            return 404, {}, {"error": {"message": f"no route {path}"}}
        if self.reject_response_format and "response_format" in body:
            return 400, {}, {"error": {"message": "response_format json_schema is not supported by this server",
                                       "type": "invalid_request_error"}}
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
        classify = "doc_type" in schema.get("properties", {}) or '"doc_type"' in text
        answer = answer_from_text(_page_hint(text), classify)
        asked_again = len(body.get("messages", [])) > 2
        content: str | None = json.dumps(answer)
        refusal, finish = None, "stop"

        if scenario == "fenced":
            content = f"```json\n{json.dumps(answer, indent=2)}\n```"
        elif scenario == "prose":
            content = f"Sure! Here is the extracted data:\n{json.dumps(answer)}\nLet me know if you need more."
        elif scenario == "invalid_json" and not asked_again:
            content = "{vendor_name: 'Acme', total: 119.00,"
        elif scenario == "schema_invalid" and not asked_again:
            content = json.dumps({**answer, "total": {"amount": 119}, "line_items": "none"})
        elif scenario == "refusal_field":
            content, refusal = None, "I'm sorry, I can't help with that request."
        elif scenario == "refusal_text":
            content = "I'm sorry, but I can't assist with extracting data from this document."
        elif scenario == "rate_limited" and attempt == 1:
            return 429, {"retry-after": "1"}, {"error": {"message": "Rate limit reached", "type": "rate_limit"}}
        elif scenario == "server_error" and attempt == 1:
            return 500, {}, {"error": {"message": "internal error", "type": "server_error"}}
        elif scenario == "slow" and attempt == 1:
            time.sleep(self.slow_seconds)
        elif scenario == "length" and (body.get("max_tokens") or 0) < self.truncate_below:
            content, finish = content[: len(content) // 2], "length"
        elif scenario == "length_always":
            content, finish = content[: len(content) // 2], "length"
        elif scenario == "hallucinate":
            content = json.dumps({**answer, "total": "999.99"})
        return 200, {}, {
            "id": f"chatcmpl-{attempt}", "object": "chat.completion", "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 150, "total_tokens": 1350},
        }


def _prompt_text(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if p.get("type") == "text")
    return "\n".join(parts)


def _page_hint(text: str) -> str:
    m = re.search(r"<<<\n(.*?)\n>>>", text, re.S)
    return m.group(1) if m else ""
