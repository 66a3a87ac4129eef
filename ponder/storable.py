"""Input and output PostgreSQL can store. Request input that cannot be stored (a NUL, a lone
surrogate, a non-finite number, nesting past ``limits.max_json_depth``) is refused where it is
validated, not left to fail as a 500; what a model wrote is stored with stand-ins instead."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, model_validator

from ponder.validation import NUL, check_fields

__all__ = ["NUL", "StorableInput", "storable", "storable_text"]

NUL_STAND_IN = "\u2400"
"""SYMBOL FOR NULL: shows where a NUL was, in text PostgreSQL can store."""
SURROGATE_STAND_IN = "\ufffd"


class StorableInput(BaseModel):
    """A request model whose fields all go to the database: the JSON submit, the multipart
    form, a batch line, batch options and a nightly run's items all derive from it, so one
    check (``ponder.validation``) runs before any of them touches the database."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_unstorable(cls, data: Any) -> Any:
        if isinstance(data, dict):
            from ponder.config import get_settings

            check_fields(data, max_depth=get_settings().limits.max_json_depth)
        return data


def storable_text(text: str) -> str:
    """``text`` with each NUL shown as U+2400 and each lone surrogate as U+FFFD: a faithful
    stand-in that PostgreSQL's text and jsonb accept (it refuses both characters)."""
    if NUL in text:
        text = text.replace(NUL, NUL_STAND_IN)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(SURROGATE_STAND_IN if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def storable(value: Any) -> Any:
    """``value`` (JSON-like) with every string, keys included, made ``storable_text``, and
    every non-finite number (which jsonb refuses) made null."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
