"""What a maths answer is: the working and a final plain number, and the one form a number
is compared in. The checks, the gold builder and the task type all read it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

NUMBER_PATTERN = r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"
"""A plain decimal number. The pattern bounds the length itself: structured decoding
(xgrammar) refuses a pattern combined with maxLength."""


class MathAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reasoning: str = Field(max_length=600)
    """The working, bounded so a looping model cannot fill its whole token budget here."""
    answer: str = Field(pattern=NUMBER_PATTERN)


def canonical_number(text: str) -> str | None:
    """One form per number, so "18.0", "018" and "18" compare equal: the shortest decimal
    form, or None when ``text`` is not a number."""
    try:
        value = Decimal(text.strip().replace(",", "").lstrip("$"))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    normal = value.normalize()
    return format(normal, "f") if normal != 0 else "0"
