"""Maths word problems (GSM8K style): short working and a final number. The worked example of
docs/task-types.md: one module, one prompt template, one line in ``tasks/registry.py``."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

from ponder.tasktypes import TaskType
from ponder.verify import CheckResult, VerifierSpec
from tasks.arithmetic import Step, find_steps, format_value, matches, stated_results

NUMBER_PATTERN = r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"
"""A plain decimal number. The pattern bounds the length itself: structured decoding
(xgrammar) refuses a pattern combined with maxLength."""
_NUMBER = re.compile(NUMBER_PATTERN)
NUMBERS_IN_TEXT = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
"""The numbers of a working as ``answer_in_reasoning`` reads them; its last one is where the
working ends."""


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
    numbers = [canonical_number(n) for n in NUMBERS_IN_TEXT.findall(output.reasoning)]
    answer = canonical_number(output.answer)
    if numbers and numbers[-1] == answer:
        return CheckResult(True, 1.0)
    if answer in numbers:
        return CheckResult(False, 0.5, ["the working mentions the answer but ends elsewhere"])
    return CheckResult(False, 0.0, [f"the working never arrives at {output.answer}"])


MAX_STEP_FINDINGS = 5
"""Wrong steps named per answer; enough to steer a refinement without flooding its prompt."""


def check_arithmetic(output: MathAnswer, document: str) -> CheckResult:
    """Each "expression = result" step of the working holds when recomputed, and the answer
    comes out of that arithmetic, so a wrong sum is caught even when the working arrives at
    it. Steps that cannot be evaluated (a division by zero) are not counted; a working with
    no step that can be checked fails, since an answer it does not compute is unchecked."""
    steps = [step for step in find_steps(output.reasoning) if step.checked]
    if not steps:
        # Nothing recomputed is nothing checked: an answer next to ", 20, " was passing.
        return CheckResult(False, 0.0, [
            "the working shows no arithmetic to check: write each step as 'expression = "
            "result' (e.g. '16 - 3 - 4 = 9') ending at the answer"
        ])  # fmt: skip
    wrong = [step for step in steps if not step.correct]
    findings = [
        f"step '{step.text}': {step.expression} is {step.describe_value()}, "
        f"not {step.stated}{'%' if step.stated_percent else ''}"
        for step in wrong[:MAX_STEP_FINDINGS]
    ]
    score = 1.0 - len(wrong) / len(steps)
    problem = _final_answer_problem(output, steps)
    if problem:
        findings.append(problem)
        # As answer_in_reasoning scores an answer the working does not end at.
        score = min(score, 0.5)
    return CheckResult(not findings, score, findings)


def _final_answer_problem(output: MathAnswer, steps: list[Step]) -> str | None:
    """Why the answer is not where the working's arithmetic leads, or None.

    The answer must be the last step's value or the working's last number (as the brief's
    rule), and it must come out of the working: a step's value, a result stated after "=",
    or a number the working reached before its last mention. A restated total nudged by
    one ("... = 243. He spent $245") comes out of nothing, and is what this catches."""
    answer = canonical_number(output.answer)
    if answer is None:
        return None  # answer_format reports it
    last = steps[-1]
    assert last.computed is not None
    numbers = [canonical_number(n) for n in NUMBERS_IN_TEXT.findall(output.reasoning)]
    if not matches(last.computed, answer) and (not numbers or numbers[-1] != answer):
        return (
            f"the answer {output.answer} is not where the working's arithmetic ends: "
            f"'{last.text}' gives {format_value(last.computed)}"
        )
    computed = [step.computed for step in steps if step.computed is not None]
    reached = computed + stated_results(output.reasoning)
    if any(matches(value, answer) for value in reached) or answer in numbers[:-1]:
        return None
    return (
        f"the answer {output.answer} does not come out of the working: no step gives it "
        f"(the last step '{last.text}' gives {format_value(last.computed)})"
    )


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
        # Required: working can end at the answer and still hold a wrong sum; recomputing
        # each step is what catches a confident miscalculation.
        VerifierSpec(
            "arithmetic",
            check_arithmetic,
            "Every 'expression = result' step of the working is right when recomputed.",
        ),
    ),
    max_document_chars=5_000,
    max_output_tokens=512,
    normalise=normalise,
)
