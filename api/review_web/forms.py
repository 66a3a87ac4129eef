"""The answer form, built from the task's output schema (its pydantic model's JSON schema), and
the way back from the posted form to an answer dict.

Field names are dotted paths under ``answer.`` (``answer.medications.2.dose``), so the parser
rebuilds the nesting without knowing the task. Values are only converted (empty → None where
the schema allows null, digits → numbers); checking them is the task's schema's job, through
``ponder.reviews.service.check_answer``, which names the field that does not fit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

PREFIX = "answer"


@dataclass
class Field:
    """One input of the form."""

    name: str
    """The property's name in its object (``dose``)."""
    title: str
    kind: str
    """``select``, ``multiselect``, ``text``, ``textarea``, ``lines`` (a list of strings, one a
    line), ``integer``, ``number`` or ``rows`` (a list of objects)."""
    nullable: bool = False
    choices: list[str] = field(default_factory=list)
    max_length: int | None = None
    row_fields: list[Field] = field(default_factory=list)
    """For ``rows``: the fields of one row."""
    max_rows: int | None = None


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(schema, schema["$defs"][ref.removeprefix("#/$defs/")])
    return node


def _field(schema: Mapping[str, Any], name: str, node: Mapping[str, Any]) -> Field:
    node = _resolve(schema, node)
    title = str(node.get("title") or name.replace("_", " ").capitalize())
    nullable = False
    if "anyOf" in node:  # ``X | None`` in pydantic: one real branch and a null one
        branches = [_resolve(schema, b) for b in node["anyOf"]]
        nullable = any(b.get("type") == "null" for b in branches)
        real = [b for b in branches if b.get("type") != "null"]
        node = {**real[0], "title": title} if real else {"type": "string"}
    if "enum" in node:
        return Field(name, title, "select", nullable, [str(v) for v in node["enum"]])
    kind = node.get("type")
    if kind == "array":
        items = _resolve(schema, node.get("items", {}))
        if "enum" in items:
            return Field(name, title, "multiselect", nullable, [str(v) for v in items["enum"]])
        if items.get("type") == "object":
            row_fields = [
                _field(schema, key, sub) for key, sub in items.get("properties", {}).items()
            ]
            return Field(
                name, title, "rows", nullable, row_fields=row_fields, max_rows=node.get("maxItems")
            )
        return Field(name, title, "lines", nullable)  # one item a line
    if kind in ("integer", "number"):
        return Field(name, title, str(kind), nullable)
    max_length = node.get("maxLength")
    long_text = isinstance(max_length, int) and max_length > 80
    return Field(name, title, "textarea" if long_text else "text", nullable, max_length=max_length)


def form_fields(schema: Mapping[str, Any]) -> list[Field]:
    """The top-level fields of an output schema (an object, as every task's is)."""
    return [_field(schema, key, node) for key, node in schema.get("properties", {}).items()]


def _convert(f: Field, raw: str) -> Any:
    value = raw.strip()
    if value == "" and f.nullable:
        return None
    if f.kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value  # left as typed: the schema check names the field
    if f.kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _value(f: Field, form: FormData, name: str) -> Any:
    if f.kind == "multiselect":
        return [str(v) for v in form.getlist(name)]
    if f.kind == "lines":
        return [line.strip() for line in str(form.get(name, "")).splitlines() if line.strip()]
    raw = form.get(name)
    return None if raw is None and f.nullable else _convert(f, str(raw or ""))


def parse_answer(fields: list[Field], form: FormData) -> dict[str, Any]:
    """The answer the reviewer posted, nested as the schema is. Rows keep the order of their
    indices; a row whose inputs are all empty (an added row left blank) is dropped."""
    answer: dict[str, Any] = {}
    for f in fields:
        base = f"{PREFIX}.{f.name}"
        if f.kind != "rows":
            answer[f.name] = _value(f, form, base)
            continue
        indices = sorted(
            {
                int(key.split(".")[2])
                for key in form.keys()
                if key.startswith(base + ".") and key.split(".")[2].isdigit()
            }
        )
        rows = []
        for i in indices:
            raw = {sub.name: str(form.get(f"{base}.{i}.{sub.name}", "")) for sub in f.row_fields}
            if not any(v.strip() for v in raw.values()):
                continue
            rows.append(
                {sub.name: _value(sub, form, f"{base}.{i}.{sub.name}") for sub in f.row_fields}
            )
        answer[f.name] = rows
    return answer


def display(value: Any) -> str:
    """A value as an input shows it: None as empty."""
    return "" if value is None else str(value)
