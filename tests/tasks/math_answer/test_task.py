"""math_answer, the worked example of a pluggable task type."""

import json

import pytest

from ponder.verify import SCHEMA_VERIFIER, CheckResult, verify_candidate
from tasks.math_answer import TASK
from tasks.math_answer.arithmetic import find_steps
from tasks.math_answer.checks import (
    check_answer_format,
    check_answer_in_reasoning,
    check_arithmetic,
)
from tasks.math_answer.schema import MathAnswer, canonical_number
from tasks.math_answer.task import normalise


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


# arithmetic: each "expression = result" step recomputed -----------------------------------


def arithmetic(reasoning: str, answer: str):
    return check_arithmetic(MathAnswer(reasoning=reasoning, answer=answer), "q")


def test_arithmetic_is_a_required_check_after_answer_in_reasoning():
    names = [v.name for v in TASK.verifiers]
    assert names.index("arithmetic") == names.index("answer_in_reasoning") + 1
    assert next(v for v in TASK.verifiers if v.name == "arithmetic").required


def test_a_wrong_product_is_caught_with_the_step_named():
    result = arithmetic("She packs 12 × 4 = 46 eggs", "46")
    assert not result.passed and result.score == 0.0
    assert result.findings == ["step '12 × 4 = 46': 12 × 4 is 48, not 46"]


def test_a_wrong_product_fails_the_answer_even_when_the_working_ends_at_it():
    text = json.dumps({"reasoning": "12 × 4 = 46", "answer": "46"})
    verdicts = verdicts_for(text)
    assert verdicts["answer_in_reasoning"].passed
    assert not verdicts["arithmetic"].passed


def test_a_right_product_passes():
    assert arithmetic("12 * 4 = 48", "48") == CheckResult(True, 1.0, [])


def test_each_step_of_a_chain_is_checked_against_the_expression_before_it():
    assert arithmetic("2 + 3 = 5 + 1 = 6", "6").passed
    result = arithmetic("2 + 3 = 5 + 1 = 7", "7")
    assert result.findings == ["step '5 + 1 = 7': 5 + 1 is 6, not 7"]
    assert result.score == 0.5


def test_thousands_commas_and_dollar_signs_are_read():
    assert arithmetic("80,000*1.5=$120,000", "120000").passed
    assert arithmetic("$350 000 x 5/100 = $17500", "17500").passed


def test_a_result_rounded_to_its_stated_decimals_passes():
    assert arithmetic("10/3 = 3.33", "3.33").passed
    assert arithmetic("10/3 = 3", "3").passed
    result = arithmetic("10/3 = 3.34", "3.34")
    assert result.findings == ["step '10/3 = 3.34': 10/3 is about 3.3333, not 3.34"]


NO_ARITHMETIC = (
    "the working shows no arithmetic to check: write each step as 'expression = result' "
    "(e.g. '16 - 3 - 4 = 9') ending at the answer"
)


def test_a_working_with_no_steps_fails_as_unchecked():
    # An answer beside ", 20, " reached succeeded in an end-to-end run before this rule.
    assert arithmetic("x = 5, total = 18, so 18", "18") == CheckResult(False, 0.0, [NO_ARITHMETIC])
    assert arithmetic(", 20, ", "20") == CheckResult(False, 0.0, [NO_ARITHMETIC])


@pytest.mark.parametrize(
    "reasoning",
    ["((2 + = 5", "5/0 = 3", "2 ** 3 = 8", "= = 4", "1 + = 2", "3 (4 + = 7", "(" * 300 + "1 = 1"],
)
def test_an_unparsable_step_does_not_crash_and_is_not_counted(reasoning):
    result = arithmetic(reasoning, "3")
    assert result.findings == [NO_ARITHMETIC]
    # Counted steps would be named in a finding; beside a checkable step it passes.
    assert arithmetic(reasoning + " so 1 + 2 = 3", "3").passed


def test_text_that_is_not_arithmetic_is_never_evaluated(monkeypatch):
    import builtins

    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec must not be called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    reasoning = "__import__('os').system('true') = 0 and (lambda: 1)() = 1, then 2 + 2 = 4"
    assert [step.text for step in find_steps(reasoning)] == ["2 + 2 = 4"]
    assert arithmetic(reasoning, "4").passed


def test_an_answer_other_than_the_last_computed_value_fails():
    result = arithmetic("9 * 2 = 18", "20")
    assert not result.passed
    assert result.findings == [
        "the answer 20 is not where the working's arithmetic ends: '9 * 2 = 18' gives 18"
    ]


def test_a_restated_total_that_no_step_gives_fails():
    result = arithmetic("She makes 9 * 2 = $18 a day. So she makes $19.", "19")
    assert not result.passed and result.score == 0.5
    assert result.findings[0].startswith("the answer 19 does not come out of the working")
    assert arithmetic("She makes 9 * 2 = $18 a day. So she makes $18.", "18").passed


@pytest.mark.parametrize(
    "reasoning", ["20% * 50 = 10", "12/20 x 100% = 60", "12/20 x 100% = 60%", "1.5 * 100% = 150%"]
)
def test_a_percent_sign_is_read_as_hundredths_or_as_a_label_whichever_holds(reasoning):
    assert arithmetic(reasoning, reasoning.rstrip("%").split()[-1]).passed


def test_a_wrong_percentage_is_wrong_under_both_readings():
    result = arithmetic("12/20 x 100% = 65%", "65")
    assert result.findings == ["step '12/20 x 100% = 65%': 12/20 x 100% is 60%, not 65%"]


def test_unit_words_between_numbers_are_labels():
    assert arithmetic("20 sheep + 160 sheep + 80 sheep = 260 sheep", "260").passed
    assert arithmetic("$20/hour * 35 hours/week = $700/week", "700").passed
    result = arithmetic("25 miles per gallon x 12 gallons = 310 miles", "310")
    assert result.findings == [
        "step '25 miles per gallon x 12 gallons = 310': "
        "25 miles per gallon x 12 gallons is 300, not 310"
    ]


def test_an_expression_that_runs_into_prose_or_algebra_is_not_checked():
    assert find_steps("12 slices of pizza in the box * 1/3 = 4") == []
    assert find_steps("2x + 2 = 10 so x = 4") == []


def test_fractions_and_mixed_numbers_are_read_as_written():
    assert arithmetic("1 1/2 / 1/2 = 3 episodes", "3").passed
    assert arithmetic("5 - 1 - 1/2 = 3 1/2 hours", "3.5").passed
    assert arithmetic("Yuri scored 1/2 (68) + 10 = 44", "44").passed


def test_operators_spelled_out_are_read():
    assert arithmetic("10 plus 9 plus 1 equals 20", "20").passed
    assert not arithmetic("200 minus 174 equals 28", "28").passed
