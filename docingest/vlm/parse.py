"""Turn a model's reply into a validated answer, or say precisely why not.

Compatible servers answer with HTTP 200 whatever happens: JSON in code fences, JSON inside
prose, broken JSON, a polite refusal. Each of those is told apart here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from docingest.schemas.vlm import AnswerSpec

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)

# Phrases that open a refusal. Only consulted when the reply holds no usable JSON, so a
# document that itself says "sorry" cannot trip it.
REFUSAL_PATTERNS = [
    r"\bI(?:'|’)?m (?:sorry|afraid|unable)\b",
    r"\bI am (?:sorry|unable|not able)\b",
    r"\bI (?:can(?:'|’)?t|cannot|won(?:'|’)?t|will not) (?:help|assist|comply|provide|process|extract|do that)",
    r"\b(?:unable|not able) to (?:help|assist|comply|provide|process|extract)",
    r"\bas an AI\b",
    r"\bagainst (?:my|the) (?:guidelines|policy|policies)\b",
]
_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS), re.I)
# A real answer carries the schema's keys; a short reply with none of them is no answer.
SHORT_REPLY_CHARS = 400


class ParseProblem(Exception):
    """The reply is not a valid answer; ``feedback`` is what to tell the model on the retry."""

    def __init__(self, feedback: str):
        super().__init__(feedback)
        self.feedback = feedback


class RefusalDetected(Exception):
    pass


@dataclass
class Parsed:
    answer: BaseModel
    data: dict[str, Any]


def json_candidates(text: str) -> list[str]:
    """Likely JSON objects in a reply: fenced blocks first, then the widest ``{...}`` span."""
    out = [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        out.append(text[start:end + 1])
    stripped = text.strip()
    if stripped and stripped not in out:
        out.append(stripped)
    return out


def parse_reply(content: str | None, refusal: str | None, spec: AnswerSpec) -> Parsed:
    """Raise ``RefusalDetected`` for a refusal and ``ParseProblem`` for anything else wrong."""
    if refusal:
        raise RefusalDetected(f"the model refused: {refusal.strip()[:300]}")
    text = (content or "").strip()
    if not text:
        raise ParseProblem("The reply was empty. Reply with the JSON object only.")
    json_error: str | None = None
    for candidate in json_candidates(text):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError as exc:
            json_error = json_error or f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            continue
        if not isinstance(data, dict):
            json_error = json_error or f"expected a JSON object, got {type(data).__name__}"
            continue
        try:
            return Parsed(answer=spec.model.model_validate(data), data=data)
        except ValidationError as exc:
            raise ParseProblem(
                "The JSON does not match the schema: "
                + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:8])
                + ". Reply with the corrected JSON object only."
            ) from exc
    if looks_like_refusal(text, spec):
        raise RefusalDetected(f"the model refused: {text[:300]}")
    raise ParseProblem(f"The reply was not a JSON object: {json_error or 'no JSON found'}. "
                       "Reply with the JSON object only, no prose, no code fences.")


def looks_like_refusal(text: str, spec: AnswerSpec) -> bool:
    if _REFUSAL.search(text[:SHORT_REPLY_CHARS * 2]):
        return True
    keys = list(spec.json_schema["properties"])
    return len(text) < SHORT_REPLY_CHARS and not any(key in text for key in keys)
