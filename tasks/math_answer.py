"""Maths word problems (GSM8K style): short working and a final number. The worked example of
docs/task-types.md: one module, one prompt template, one line in ``tasks/registry.py``."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

from ponder.tasktypes import TaskType
from ponder.verify import CheckResult, VerifierSpec

NUMBER_PATTERN = r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"
"""A plain decimal number. The pattern bounds the length itself: structured decoding
(xgrammar) refuses a pattern combined with maxLength."""
_NUMBER = re.compile(NUMBER_PATTERN)
_NUMBERS_IN_TEXT = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


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


def check_answer_format(output: MathAnswer, document: str) -> CheckResult:
    # The schema's pattern holds this under constrained decoding; a remote engine may not.
    if _NUMBER.match(output.answer):
        return CheckResult(True, 1.0)
    return CheckResult(False, 0.0, [f"answer '{output.answer[:40]}' is not a plain number"])


def check_answer_in_reasoning(output: MathAnswer, document: str) -> CheckResult:
    """The working arrives at the answer: its last number is the answer given."""
    numbers = [canonical_number(n) for n in _NUMBERS_IN_TEXT.findall(output.reasoning)]
    answer = canonical_number(output.answer)
    if numbers and numbers[-1] == answer:
        return CheckResult(True, 1.0)
    if answer in numbers:
        return CheckResult(False, 0.5, ["the working mentions the answer but ends elsewhere"])
    return CheckResult(False, 0.0, [f"the working never arrives at {output.answer}"])


def normalise(output: MathAnswer) -> str | None:
    """Voting key for self-consistency: the answer as a number, whatever the working."""
    return canonical_number(output.answer)


TASK = TaskType(
    name="math_answer",
    description="Solve a maths word problem: short working and a final number.",
    output_model=MathAnswer,
    template="prompts/math_answer/solve.j2",
    system_prompt="You are careful with arithmetic. You answer only with JSON.",
    verifiers=(
        VerifierSpec(
            "answer_format",
            check_answer_format,
            "The answer is a plain number: digits, an optional sign and decimal part.",
        ),
        # Required: the format alone cannot tell a number from a guess; working that ends
        # at the answer at least shows the answer came from somewhere.
        VerifierSpec(
            "answer_in_reasoning",
            check_answer_in_reasoning,
            "The working ends at the answer given.",
        ),
    ),
    max_document_chars=5_000,
    max_output_tokens=512,
    normalise=normalise,
)
