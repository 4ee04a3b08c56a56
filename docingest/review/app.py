"""The review web app: ``docingest review --out OUT``.

Documents are untrusted input: every value is rendered through Jinja2's autoescape, pages are
served only for documents in the published tables (the file path comes from the table, never
from the URL), and a strict Content-Security-Policy allows no inline script. Writes carry a
CSRF token (double-submit cookie, SameSite=Strict) and must come from the app's own origin.
The server binds to 127.0.0.1 unless told otherwise; ``--token`` adds a shared secret.

On a hostile network: requests must name an allowed Host (loopback names by default, more
with ``--allowed-host``), so a DNS-rebinding page cannot talk to a token-less server; a body
over ``MAX_BODY_BYTES`` is refused before anything is parsed, and a write without the CSRF
cookie before its body is read; field values and notes have length limits; decisions are
recorded under the server's reviewer (``--reviewer``), never a name from the form; page
images are rendered at most ``DISPLAY_MAX_PIXELS``; the decision log is read incrementally.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from docingest.config import InputLimits, PreprocessOptions, RendererName, RoutingThresholds
from docingest.errors import DocingestError
from docingest.review.apply import blocking, recheck
from docingest.review.queue import PublishedTables, pending
from docingest.review.store import DecisionLog
from docingest.stages.render import open_document
from docingest.stages.vlm_fields import normalize_value
from docingest.schemas.fields import DocType, FieldKind, field_spec, field_specs
from docingest.schemas.records import SourceDocument
from docingest.schemas.review import ReviewAction, ReviewDecision, ReviewedValue

DOC_ID = re.compile(r"^[0-9a-f]{64}$")
CSRF_COOKIE, TOKEN_COOKIE = "docingest_csrf", "docingest_token"
# Pages are shown, not read: 110 dpi is sharp enough on screen and quick to render.
DISPLAY = PreprocessOptions(dpi=110, target_max_dimension=1800)
# A huge page (20000 pt square) is rendered smaller rather than at 110 dpi (7746 px square).
DISPLAY_MAX_PIXELS = 1800 * 1800
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_BODY_BYTES = 1 << 20
MAX_VALUE_CHARS = 2000  # a field value; the longest contract party list is far shorter
MAX_NOTE_CHARS = 2000
MAX_FORM_FIELDS = 2000
KIND_HINT = {FieldKind.DATE: "YYYY-MM-DD", FieldKind.AMOUNT: "1234.56", FieldKind.CURRENCY: "EUR",
             FieldKind.DURATION: "2 years", FieldKind.TEXT_LIST: "one per box"}

_templates = Environment(loader=PackageLoader("docingest.review", "templates"),
                         autoescape=select_autoescape(["html"], default=True))


class _PageCache:
    """Rendered page PNGs, a few dozen at most."""

    def __init__(self, size: int = 48):
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._size, self._lock = size, threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def create_app(out: Path, token: str | None = None, reviewer: str = "reviewer",
               thresholds: RoutingThresholds | None = None,
               allowed_hosts: Iterable[str] = ()) -> FastAPI:
    app = FastAPI(title="docingest review", docs_url=None, redoc_url=None, openapi_url=None)
    tables, log, pages = PublishedTables(out), DecisionLog(out), _PageCache()
    digests: dict[str, bool] = {}
    thresholds = thresholds or RoutingThresholds()
    hosts = {h.lower() for h in (*LOOPBACK_HOSTS, *allowed_hosts)}

    @app.middleware("http")
    async def guard(request: Request, call_next):
        # Before anything else: a page on another site that rebinds its name to 127.0.0.1
        # sends its own name as Host.
        if _host_name(request.headers.get("host", "")) not in hosts:
            return Response("host not allowed: start `docingest review` with --allowed-host NAME",
                            status_code=400, media_type="text/plain")
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                return Response(f"request body over {MAX_BODY_BYTES} bytes", status_code=413,
                                media_type="text/plain")
        if token:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given, token):
                # Trade the token in the URL for a cookie, and drop it from the address bar.
                query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                target = request.url.path + (f"?{query}" if query else "")
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return response
            if not hmac.compare_digest(request.cookies.get(TOKEN_COOKIE, ""), token):
                return Response("token required: open the URL printed by `docingest review`",
                                status_code=401, media_type="text/plain")
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
                return Response("cross-origin request refused", status_code=403, media_type="text/plain")
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def _csrf(request: Request) -> str:
        return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)

    def _page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        csrf = _csrf(request)
        html = _templates.get_template(template).render(csrf=csrf, **context)
        response = HTMLResponse(html, status_code=status)
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        waiting = pending(tables, log)
        decided = log.latest_by_doc()
        return _page(request, "list.html", documents=waiting, decided=len(decided),
                     total=len(tables.documents()))

    @app.get("/doc/{doc_id}", response_class=HTMLResponse)
    def document(request: Request, doc_id: str):
        view = _view(doc_id)
        return _page(request, "document.html", **_document_context(view, reviewer, log, tables))

    @app.get("/doc/{doc_id}/page/{number}.png")
    def page_image(doc_id: str, number: int):
        view = _view(doc_id)
        doc = view.document
        if not 1 <= number <= max(1, doc["page_count"] or 0):
            raise HTTPException(404, "no such page")
        cached = pages.get((doc_id, number))
        if cached is None:
            path = Path(doc["source_path"])
            if doc_id not in digests:
                digests[doc_id] = path.is_file() and _sha256(path) == doc_id
            if not digests[doc_id]:
                raise HTTPException(409, "the file changed or moved since it was extracted")
            source = SourceDocument(doc_id=doc_id, path=str(path), paths=(str(path),),
                                    size_bytes=path.stat().st_size, media_type=doc["media_type"])
            # PDFs are rendered small enough; an image file is decoded (within the run's
            # limits) and shrunk.
            limits = DISPLAY_LIMITS if doc["media_type"] == "application/pdf" else InputLimits()
            try:
                opened = open_document(source, RendererName.PYPDFIUM2, DISPLAY, limits)
                try:
                    image = opened.render(number - 1)
                finally:
                    opened.close()
            except DocingestError as exc:
                raise HTTPException(422, f"cannot render this page: {exc}") from exc
            image.thumbnail((DISPLAY.target_max_dimension, DISPLAY.target_max_dimension))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG", optimize=False)
            cached = buffer.getvalue()
            pages.put((doc_id, number), cached)
        return Response(cached, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/doc/{doc_id}/decide")
    async def decide(request: Request, doc_id: str):
        view = _view(doc_id)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie:  # no cookie, no form of ours: the body is not even read
            raise HTTPException(403, "CSRF token missing or wrong: reload the page")
        body = await _read_body(request)
        form = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True,
                         max_num_fields=MAX_FORM_FIELDS)
        data: dict[str, str] = {}
        for k, v in form:
            data.setdefault(k, v)
        if not hmac.compare_digest(cookie.encode(), data.get("csrf", "").encode()):
            raise HTTPException(403, "CSRF token missing or wrong: reload the page")
        if any(len(v) > MAX_VALUE_CHARS for k, v in form if k != "note") or len(data.get("note", "")) > MAX_NOTE_CHARS:
            raise HTTPException(422, f"a value is longer than {MAX_VALUE_CHARS} characters")
        action = data.get("action")
        if action not in ("approve", "reject"):
            raise HTTPException(400, "action must be approve or reject")
        try:
            doc_type = DocType(data.get("doc_type") or view.document["doc_type"] or "other")
        except ValueError as exc:
            raise HTTPException(400, "unknown document type") from exc
        values, errors = _reviewed_values(form, doc_type)
        if errors and action == "approve":
            context = _document_context(view, reviewer, log, tables)
            context.update(errors=errors, submitted=dict(_submitted(form)))
            return _page(request, "document.html", status=422, **context)
        original = sorted((f["field_name"], f["key"] or "", f["value"] or f["value_raw"]) for f in view.fields)
        edited = sorted((v.field_name, v.key or "", v.value or v.value_raw) for v in values)
        if action == "reject":
            kind = ReviewAction.REJECTED
        elif edited != original or doc_type.value != view.document["doc_type"]:
            kind = ReviewAction.CORRECTED
        else:
            kind = ReviewAction.APPROVED
        decision = ReviewDecision(
            doc_id=doc_id, run_id=view.document["run_id"], action=kind, doc_type=doc_type.value,
            # The server's reviewer: a form field would let anyone decide under any name.
            values=values, reviewer=reviewer, note=data.get("note", ""),
        )
        if kind != ReviewAction.REJECTED and not data.get("force"):
            # Say now what apply-reviews would say later: approved values that break a rule
            # would leave the document in review.
            broken = blocking(recheck(decision, view.line_items, thresholds, date.today(), view.document))
            if broken:
                context = _document_context(view, decision.reviewer, log, tables)
                context.update(errors=[f"{r.rule_id}: {r.message}" for r in broken], offer_force=True,
                               submitted=dict(_submitted(form)))
                return _page(request, "document.html", status=422, **context)
        log.append(decision)  # on disk (fsynced) before the reviewer is told it is saved
        nxt = next((d["doc_id"] for d in pending(tables, log)), None)
        target = f"/doc/{nxt}?saved={kind.value}" if nxt else f"/?saved={kind.value}"
        return RedirectResponse(target, status_code=303)

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "pending": len(pending(tables, log))}

    @app.get("/static/{name}")
    def static(name: str):
        files = {"review.js": "application/javascript", "review.css": "text/css"}
        if name not in files:  # a fixed list: no path from the URL ever reaches the disk
            raise HTTPException(404)
        body = (Path(__file__).parent / "static" / name).read_bytes()
        return Response(body, media_type=files[name])

    def _view(doc_id: str):
        if not DOC_ID.match(doc_id):
            raise HTTPException(404, "no such document")
        view = tables.view(doc_id)
        if view is None:
            raise HTTPException(404, "no such document")
        return view

    return app


DISPLAY_LIMITS = InputLimits(max_image_pixels=DISPLAY_MAX_PIXELS)


def _host_name(host: str) -> str:
    """The Host header without its port: "127.0.0.1:8765" -> "127.0.0.1", "[::1]:80" -> "[::1]"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _read_body(request: Request) -> bytes:
    """The body, refused past MAX_BODY_BYTES while it streams (a chunked request has no
    Content-Length to refuse it by)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"request body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _submitted(form: list[tuple[str, str]]):
    return [(k, v) for k, v in form if k.startswith(("v.", "k."))]


def _reviewed_values(form: list[tuple[str, str]], doc_type: DocType) -> tuple[list[ReviewedValue], list[str]]:
    """Form rows ``n.<i>`` (field name), ``k.<i>`` (key, forms only), ``v.<i>`` (value)."""
    rows: dict[str, dict[str, str]] = {}
    for k, v in form:
        prefix, _, index = k.partition(".")
        if prefix in ("n", "k", "v") and index:
            rows.setdefault(index, {})[prefix] = v
    values, errors = [], []
    for index in sorted(rows, key=lambda i: int(i) if i.isdigit() else 0):
        row = rows[index]
        name, raw, key = row.get("n", ""), row.get("v", "").strip(), (row.get("k") or "").strip() or None
        if not raw:
            continue  # an emptied box removes the value
        if name == "key_values":
            if not key:
                errors.append(f"a form value needs its key: {raw[:40]!r}")
                continue
            values.append(ReviewedValue(field_name=name, key=key, value_raw=raw, value=raw))
            continue
        spec = field_spec(doc_type, name)
        if spec is None:
            continue  # a field of another type after a type change: not part of this document
        kind = FieldKind.TEXT if spec.kind == FieldKind.TEXT_LIST else spec.kind
        # Reviewers type ISO dates; a day-first reading is the fallback for "31.12.2026".
        normalized = normalize_value(raw, kind, dayfirst=True)
        if normalized is None and kind in (FieldKind.DATE, FieldKind.AMOUNT, FieldKind.CURRENCY, FieldKind.DURATION):
            errors.append(f"{name}: {raw!r} is not a valid {kind.value} ({KIND_HINT.get(kind, '')})")
            continue
        values.append(ReviewedValue(field_name=name, key=None, value_raw=raw, value=normalized))
    return values, errors


def _document_context(view, reviewer: str, log: DecisionLog, tables: PublishedTables) -> dict:
    doc = view.document
    doc_type = DocType(doc["doc_type"] or "other")
    rows = []  # (index, field name, key, value, confidence, page, bbox, kind, editable key)
    by_name: dict[str, list[dict]] = {}
    for f in view.fields:
        by_name.setdefault(f["field_name"], []).append(f)
    i = 0

    def add(name, f, kind, key=None, key_editable=False):
        nonlocal i
        rows.append({
            "i": i, "name": name, "key": key if f is None else f["key"],
            "value": "" if f is None else (f["value"] or f["value_raw"]),
            "raw": "" if f is None else f["value_raw"],
            "confidence": None if f is None else f["confidence"],
            "page": None if f is None else f["page"],
            "bbox": None if f is None or not f["bbox"] else [round(x * 100, 3) for x in f["bbox"]],
            "kind": kind, "hint": KIND_HINT.get(kind, ""), "key_editable": key_editable,
        })
        i += 1

    for spec in field_specs(doc_type):
        found = by_name.get(spec.name, [])
        for f in found:
            add(spec.name, f, spec.kind)
        if not found or spec.kind == FieldKind.TEXT_LIST:
            add(spec.name, None, spec.kind)
    for f in by_name.get("key_values", []):
        add("key_values", f, FieldKind.TEXT)
    if doc_type == DocType.FORM:
        add("key_values", None, FieldKind.TEXT, key_editable=True)
    waiting = [d["doc_id"] for d in pending(tables, log)]
    nxt = next((d for d in waiting if d != doc["doc_id"]), None)
    decision = log.latest_by_doc().get(doc["doc_id"])
    failed_rules = [r for r in view.rule_results if not r["passed"]]
    return {
        "doc": doc, "doc_type": doc_type.value, "doc_types": [t.value for t in DocType], "rows": rows,
        "pages": list(range(1, (doc["page_count"] or 0) + 1)), "failed_rules": failed_rules,
        "reviewer": reviewer, "next_id": nxt, "decision": decision, "errors": [], "submitted": {},
        "name": Path(doc["source_path"]).name, "waiting": len(waiting), "offer_force": False,
    }
