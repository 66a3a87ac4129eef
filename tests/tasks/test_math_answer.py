"""math_answer, the worked example of a pluggable task type."""

import json

import pytest

from ponder.verify import SCHEMA_VERIFIER, verify_candidate
from tasks.math_answer import (
    TASK,
    MathAnswer,
    canonical_number,
    check_answer_format,
    check_answer_in_reasoning,
    normalise,
)


def verdicts_for(text: str) -> dict:
    _, verdicts = verify_candidate(
        text=text, output_model=TASK.output_model, document="q", verifiers=TASK.verifiers
    )
    return {v.verifier: v for v in verdicts}


def test_a_worked_answer_passes_every_verifier():
    text = json.dumps({"reasoning": "16 - 3 - 4 = 9 eggs; 9 * 2 = 18", "answer": "18"})
    assert all(v.passed for v in verdicts_for(text).values())


@pytest.mark.parametrize("answer", ["18 dollars", "1,000", "", "1e5", "12.5.1"])
def test_an_answer_that_is_not_a_plain_number_fails_the_schema(answer):
    text = json.dumps({"reasoning": "r", "answer": answer})
    assert not verdicts_for(text)[SCHEMA_VERIFIER].passed


def test_answer_format_check_catches_what_an_unconstrained_engine_sends():
    rogue = MathAnswer.model_construct(reasoning="r", answer="about 18")
    result = check_answer_format(rogue, "")
    assert not result.passed
    assert result.findings == ["answer 'about 18' is not a plain number"]


@pytest.mark.parametrize("answer", ["18", "-4", "2.5", "0"])
def test_plain_numbers_pass_answer_format(answer):
    assert check_answer_format(MathAnswer(reasoning="", answer=answer), "").passed


def test_working_that_ends_elsewhere_fails_answer_in_reasoning():
    result = check_answer_in_reasoning(MathAnswer(reasoning="9 * 2 = 18", answer="9"), "")
    assert not result.passed and result.score == 0.5


def test_working_that_never_reaches_the_answer_fails_answer_in_reasoning():
    result = check_answer_in_reasoning(MathAnswer(reasoning="no idea", answer="7"), "")
    assert result.findings == ["the working never arrives at 7"]


def test_numbers_compare_in_one_form():
    assert canonical_number("18.0") == canonical_number("18") == "18"
    assert canonical_number("$1,000") == "1000"
    assert canonical_number("-0.50") == "-0.5"
    assert canonical_number("eighteen") is None


def test_self_consistency_votes_on_the_number():
    assert normalise(MathAnswer(reasoning="a", answer="18.0")) == normalise(
        MathAnswer(reasoning="b", answer="18")
    )


def test_schema_bounds_the_reasoning_and_the_answer_by_its_pattern():
    properties = TASK.json_schema()["properties"]
    assert properties["reasoning"]["maxLength"] == 600
    assert properties["answer"]["pattern"] == r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"
    assert "maxLength" not in properties["answer"]  # xgrammar refuses pattern + maxLength


def test_prompt_holds_the_problem():
    _, user = TASK.messages("UNIQUE-PROBLEM")
    assert "UNIQUE-PROBLEM" in user["content"]
