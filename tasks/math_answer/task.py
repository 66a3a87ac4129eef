"""The ``math_answer`` task type: its prompt, its verifiers in order, and the key candidates
vote with."""

from __future__ import annotations

from ponder.tasktypes import TaskType
from ponder.verify import VerifierSpec
from tasks.math_answer.checks import (
    check_answer_format,
    check_answer_in_reasoning,
    check_arithmetic,
)
from tasks.math_answer.difficulty import difficulty_signals
from tasks.math_answer.schema import MathAnswer, canonical_number


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
    difficulty_signals=difficulty_signals,
)
