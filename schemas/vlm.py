"""What a vision-language model is asked for, derived from the field lists in ``schemas.fields``.

The VLM returns every value as printed on the page (a string); normalization, grounding and
confidence happen locally, the same way as for the embedded extractor. The JSON schema sent as
``response_format`` and the pydantic model that validates the answer come from one builder, so
they cannot drift apart, and ``SCHEMA_VERSION`` changes whenever a field list does (which
invalidates cached answers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from docingest.schemas.fields import DOC_FIELDS, LINE_ITEM_FIELDS, LINE_ITEM_TYPES, DocType, FieldKind, FieldSpec


class _Answer(BaseModel):
    # Models add keys nobody asked for; they are ignored rather than failing the page.
    model_config = ConfigDict(extra="ignore")


class VlmLineItem(_Answer):
    description: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    amount: str | None = None


class VlmKeyValue(_Answer):
    key: str
    value: str | None = None


@dataclass(frozen=True)
class AnswerSpec:
    """One request shape: the fields of a type (or all types, when classifying too)."""

    name: str
    doc_type: DocType | None  # None: the model also classifies the page
    model: type[BaseModel]
    json_schema: dict[str, Any]
    fields: tuple[FieldSpec, ...]
    line_items: bool
    key_values: bool


def _scalar_specs(doc_type: DocType | None) -> list[FieldSpec]:
    types = [doc_type] if doc_type is not None else list(DOC_FIELDS)
    seen: dict[str, FieldSpec] = {}
    for t in types:
        for spec in DOC_FIELDS[t]:
            seen.setdefault(spec.name, spec)
    return list(seen.values())


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _strict_object(properties: dict[str, Any]) -> dict[str, Any]:
    # Structured outputs in strict mode: every key required, no others; optional = nullable.
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


@cache
def answer_spec(doc_type: DocType | None) -> AnswerSpec:
    specs = _scalar_specs(doc_type)
    line_items = doc_type is None or doc_type in LINE_ITEM_TYPES
    key_values = doc_type in (None, DocType.FORM)
    fields: dict[str, Any] = {}
    props: dict[str, Any] = {}
    if doc_type is None:
        types = [t.value for t in DocType]
        fields["doc_type"] = (DocType, ...)
        fields["doc_type_confidence"] = (float, Field(ge=0.0, le=1.0))
        props["doc_type"] = {"type": "string", "enum": types,
                             "description": "what kind of document this page belongs to"}
        props["doc_type_confidence"] = {"type": "number",
                                        "description": "your probability, 0 to 1, that doc_type is right"}
    for spec in specs:
        if spec.kind == FieldKind.TEXT_LIST:
            fields[spec.name] = (list[str], Field(default_factory=list))
            props[spec.name] = {"type": "array", "items": {"type": "string"}, "description": spec.description}
        else:
            fields[spec.name] = (str | None, None)
            props[spec.name] = _nullable({"type": "string", "description": spec.description})
    if line_items:
        fields["line_items"] = (list[VlmLineItem], Field(default_factory=list))
        item = _strict_object({f.name: _nullable({"type": "string", "description": f.description})
                               for f in LINE_ITEM_FIELDS})
        props["line_items"] = {"type": "array", "items": item}
    if key_values:
        fields["key_values"] = (list[VlmKeyValue], Field(default_factory=list))
        pair = _strict_object({"key": {"type": "string"}, "value": _nullable({"type": "string"})})
        props["key_values"] = {"type": "array", "items": pair,
                               "description": "every printed label and its filled-in value"}
    name = f"{doc_type.value}_page" if doc_type is not None else "classify_and_extract_page"
    model = create_model(name, __base__=_Answer, **fields)
    return AnswerSpec(name=name, doc_type=doc_type, model=model, json_schema=_strict_object(props),
                      fields=tuple(specs), line_items=line_items, key_values=key_values)


def _schema_version() -> str:
    payload = json.dumps([answer_spec(t).json_schema for t in [None, *DocType]], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


SCHEMA_VERSION = _schema_version()
