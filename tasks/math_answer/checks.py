"""The checks of a maths answer: its form, that the working ends at it, and that each step of
the working's arithmetic holds when recomputed."""

from __future__ import annotations

import re

from ponder.verify import CheckResult
from tasks.math_answer.arithmetic import Step, find_steps, format_value, matches, stated_results
from tasks.math_answer.schema import NUMBER_PATTERN, MathAnswer, canonical_number

_NUMBER = re.compile(NUMBER_PATTERN)
NUMBERS_IN_TEXT = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
"""The numbers of a working as ``answer_in_reasoning`` reads them; its last one is where the
working ends."""


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
