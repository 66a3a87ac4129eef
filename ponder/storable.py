"""Input PostgreSQL can store. It refuses the NUL character in text and jsonb values, so
request input holding one is refused where it is validated, not left to fail as a 500."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

NUL = "\x00"


def holds_nul(value: Any) -> bool:
    """Whether any string in ``value`` (nested keys and values included) holds a NUL."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(holds_nul(v) for v in value)
    return False


class StorableInput(BaseModel):
    """A request model whose text fields all go to the database."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # Name the field, never the value (it may be PHI); a bad key names no field.
            for name, value in data.items():
                if holds_nul(name):
                    raise ValueError("a field name holds a NUL character (\\u0000)")
                if holds_nul(value):
                    raise ValueError(f"{name} holds a NUL character (\\u0000), which is refused")
        return data
