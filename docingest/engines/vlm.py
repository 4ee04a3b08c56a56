"""A vision-language model behind any OpenAI-compatible Chat Completions endpoint.

One request per page: the preprocessed page image (a base64 data URL), the field list of the
document type (or of every type, when the model also classifies) and, as a hint, the words
already read from the page. The reply goes through the guard rails of ``docingest.vlm``:
fences and prose are stripped, the JSON is validated against the schema (one more ask with
the validation error), a truncated reply is asked again with more tokens and never accepted
half-done, refusals are recognised and never retried.

The ``openai`` client is built once per run by ``build_client`` and passed in, with
``max_retries=0``: the Prefect task owns retries, and two retry layers would multiply.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel

from docingest.config import Settings, StructuredOutputs, VlmOptions
from docingest.errors import (
    VlmInvalidOutput,
    VlmRateLimited,
    VlmRefusal,
    VlmRequestRejected,
    VlmTruncated,
    VlmUnavailable,
)
from docingest.vlm.cache import ResponseCache, cache_key
from docingest.vlm.cost import cost_usd, image_tokens, price_for, text_tokens
from docingest.vlm.limits import Budget, RequestLimiter
from docingest.vlm.parse import ParseProblem, RefusalDetected, parse_reply
from docingest.schemas.fields import DocType
from docingest.schemas.records import TextSource, VlmUsage
from docingest.schemas.vlm import SCHEMA_VERSION, AnswerSpec, answer_spec

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You read one page of a business document and return its data as one JSON object. "
    "Copy every value exactly as it is printed on the page: same digits, separators, date "
    "format and currency symbol. Use null (or an empty list) for anything not on this page. "
    "Never compute, convert or guess a value. Reply with the JSON object only."
)
PAGE_TEXT_CHARS = 6000  # the text hint is cut here: the image stays the authority
PROMPT_VERSION = hashlib.sha256(SYSTEM_PROMPT.encode() + b"v1").hexdigest()[:8]
# When the page says nothing readable a reply is short; an answer with fields rarely is.
DEFAULT_RETRY_AFTER = 5.0


def build_client(options: VlmOptions):
    """The one ``openai`` client of a run. It reads OPENAI_BASE_URL / OPENAI_API_KEY itself."""
    import openai

    return openai.OpenAI(max_retries=0, timeout=options.timeout_seconds)


@dataclass
class PageAnswer:
    page: int
    answer: BaseModel
    spec: AnswerSpec
    from_cache: bool


class VlmEngine:
    name = "vlm"
    source = TextSource.VLM

    def __init__(self, client: Any, model: str, options: VlmOptions, limiter: RequestLimiter,
                 budget: Budget, cache: ResponseCache):
        self.client, self.model, self.options = client, model, options
        self.limiter, self.budget, self.cache = limiter, budget, cache
        self.price = price_for(model, options)
        # None until the endpoint has shown whether it takes response_format json_schema.
        self._structured: bool | None = {
            StructuredOutputs.ALWAYS: True, StructuredOutputs.NEVER: False,
        }.get(options.structured_outputs)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, client: Any) -> "VlmEngine":
        options = settings.vlm
        return cls(
            client, settings.vlm_model or "", options,
            RequestLimiter(options.max_in_flight, options.requests_per_minute),
            Budget(settings.budget_usd),
            ResponseCache(options.cache_dir if options.cache else None),
        )

    @property
    def structured_outputs_supported(self) -> bool | None:
        return self._structured

    # -- one page -------------------------------------------------------------------------
    def extract_page(self, *, page: int, jpeg: bytes, size: tuple[int, int],
                     doc_type: DocType | None, page_text: str, usage: VlmUsage) -> PageAnswer:
        """Fields of one page; ``doc_type=None`` asks the model to classify the page too."""
        spec = answer_spec(doc_type)
        hint = page_text[:PAGE_TEXT_CHARS] if self.options.include_page_text else ""
        key = cache_key(
            image=hashlib.sha256(jpeg).hexdigest(), model=self.model, prompt=PROMPT_VERSION,
            schema=SCHEMA_VERSION, spec=spec.name, detail=self.options.detail.value,
            max_tokens=self.options.max_tokens, ceiling=self.options.max_tokens_ceiling,
            hint=hashlib.sha256(hint.encode()).hexdigest(),
        )
        cached = self.cache.get(key)
        if cached is not None:
            usage.cache_hits += 1
            if cached.get("outcome") == "error" and cached.get("kind") in _CACHED_ERRORS:
                raise _CACHED_ERRORS[cached["kind"]](cached["message"], page=page)
            return PageAnswer(page, spec.model.model_validate(cached["data"]), spec, True)
        try:
            return self._ask(page, jpeg, size, spec, doc_type, hint, key, usage)
        except (VlmRefusal, VlmTruncated, VlmInvalidOutput) as exc:
            # Permanent outcomes are remembered too: the same page and request get the same
            # answer, and a rerun must not pay for it again. Transient errors never are.
            self.cache.put(key, {"outcome": "error", "kind": exc.kind, "message": exc.message})
            raise

    def _ask(self, page: int, jpeg: bytes, size: tuple[int, int], spec: AnswerSpec,
             doc_type: DocType | None, hint: str, key: str, usage: VlmUsage) -> PageAnswer:

        estimated = image_tokens(*size, self.options.detail, self.price) + text_tokens(
            SYSTEM_PROMPT + hint + str(spec.json_schema))
        usage.estimated_prompt_tokens += estimated
        self.budget.check(cost_usd(estimated, 0, self.price))

        messages = self._messages(spec, doc_type, jpeg, hint)
        max_tokens, asked_again = self.options.max_tokens, False
        while True:
            content, refusal, finish = self._send(messages, spec, max_tokens, page, usage)
            if finish == "length":
                if max_tokens >= self.options.max_tokens_ceiling:
                    raise VlmTruncated(
                        f"the answer was cut off at the {max_tokens}-token ceiling "
                        "(finish_reason=length); half an answer is not accepted", page=page)
                max_tokens = min(self.options.max_tokens_ceiling, max_tokens * 2)
                continue
            try:
                parsed = parse_reply(content, refusal, spec)
            except RefusalDetected as exc:
                raise VlmRefusal(str(exc), page=page) from None
            except ParseProblem as exc:
                if asked_again:
                    raise VlmInvalidOutput(
                        f"no valid answer after asking again: {exc.feedback}", page=page) from None
                asked_again = True
                messages = messages + [
                    {"role": "assistant", "content": content or ""},
                    {"role": "user", "content": exc.feedback},
                ]
                continue
            self.cache.put(key, {"outcome": "ok", "data": parsed.answer.model_dump(mode="json"),
                                 "model": self.model})
            return PageAnswer(page, parsed.answer, spec, False)

    # -- the request ----------------------------------------------------------------------
    def _messages(self, spec: AnswerSpec, doc_type: DocType | None, jpeg: bytes,
                  hint: str) -> list[dict[str, Any]]:
        lines = []
        if doc_type is None:
            lines.append("First decide what kind of document this page belongs to "
                         f"({', '.join(t.value for t in DocType)}) and give doc_type_confidence, "
                         "your probability that it is right. Then fill the fields that apply to it.")
        else:
            lines.append(f"This page belongs to a document of type: {doc_type.value}.")
        lines.append("Fields:")
        lines.extend(f"- {f.name}: {f.description}" for f in spec.fields)
        if spec.line_items:
            lines.append("- line_items: every item line with description, quantity, unit_price, amount")
        if spec.key_values:
            lines.append("- key_values: every printed label with the value filled in next to it")
        if self._structured is False:
            # Without response_format the schema has to travel in the prompt.
            import json
            lines.append("Reply with one JSON object that follows this JSON schema:")
            lines.append(json.dumps(spec.json_schema))
        if hint:
            lines.append("Text already read from this page (may contain reading errors; the image "
                         "is the authority):\n<<<\n" + hint + "\n>>>")
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": [
                {"type": "text", "text": "\n".join(lines)},
                {"type": "image_url", "image_url": {"url": data_url, "detail": self.options.detail.value}},
            ]},
        ]

    def _send(self, messages, spec: AnswerSpec, max_tokens: int, page: int,
              usage: VlmUsage) -> tuple[str | None, str | None, str | None]:
        import openai

        while True:
            structured = self._structured is not False
            kwargs: dict[str, Any] = {
                "model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": 0,
            }
            if structured:
                kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": spec.name, "schema": spec.json_schema, "strict": True}}
            try:
                with self.limiter.slot():
                    usage.requests += 1
                    response = self.client.chat.completions.create(**kwargs)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if structured and self._structured is None:
                    # Many compatible servers reject response_format: from now on this run
                    # asks for JSON in the prompt only (detected once, not per request).
                    with self._lock:
                        if self._structured is None:
                            self._structured = False
                            log.warning("endpoint rejected response_format (%s); using prompt-only JSON",
                                        _short(exc))
                    messages = self._rebuild_without_schema(messages, spec)
                    continue
                raise VlmRequestRejected(f"the endpoint rejected the request: {_short(exc)}", page=page) from None
            except openai.RateLimitError as exc:
                retry_after = _retry_after(exc.response) or DEFAULT_RETRY_AFTER
                self.limiter.pause(retry_after)
                raise VlmRateLimited(f"rate limited (429); retry after {retry_after:.1f}s",
                                     retry_after=retry_after, page=page) from None
            except openai.APITimeoutError:
                raise VlmUnavailable(f"no answer within {self.options.timeout_seconds:.0f}s", page=page) from None
            except openai.APIConnectionError as exc:
                raise VlmUnavailable(f"cannot reach the endpoint: {_short(exc)}", page=page) from None
            except openai.APIStatusError as exc:
                if exc.status_code >= 500:
                    raise VlmUnavailable(f"server error {exc.status_code}: {_short(exc)}", page=page) from None
                raise VlmRequestRejected(f"the endpoint rejected the request ({exc.status_code}): "
                                         f"{_short(exc)}", page=page) from None
            if structured and self._structured is None:
                with self._lock:
                    self._structured = True
            self._account(response, usage)
            if not response.choices:
                return None, None, None
            choice = response.choices[0]
            message = choice.message
            return message.content, getattr(message, "refusal", None), choice.finish_reason

    def _rebuild_without_schema(self, messages, spec: AnswerSpec):
        import json

        first_user = messages[1]
        text_part = dict(first_user["content"][0])
        if "JSON schema" not in text_part["text"]:
            text_part["text"] += ("\nReply with one JSON object that follows this JSON schema:\n"
                                  + json.dumps(spec.json_schema))
        rebuilt = dict(first_user, content=[text_part, *first_user["content"][1:]])
        return [messages[0], rebuilt, *messages[2:]]

    def _account(self, response, usage: VlmUsage) -> None:
        u = getattr(response, "usage", None)
        prompt = int(getattr(u, "prompt_tokens", 0) or 0)
        completion = int(getattr(u, "completion_tokens", 0) or 0)
        usage.prompt_tokens += prompt
        usage.completion_tokens += completion
        cost = cost_usd(prompt, completion, self.price)
        usage.cost_usd += cost
        self.budget.add(cost)


_CACHED_ERRORS = {cls.kind: cls for cls in (VlmRefusal, VlmTruncated, VlmInvalidOutput)}


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:300]


def _retry_after(response) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None
