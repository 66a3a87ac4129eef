"""The math_answer gold builder and its mutations, on a tiny GSM8K-format file."""

import json
import random
import re

import pytest

from ponder.evaluation.loaders import DatasetError
from ponder.evaluation.mutation import GoldCase, Skipped, evaluate_verifiers
from tasks.math_answer import TASK
from tasks.math_answer.checks import NUMBERS_IN_TEXT
from tasks.math_answer.gold import SUITE, gold_cases, mutants
from tasks.math_answer.schema import MathAnswer, canonical_number

DUCKS = {
    "question": "Janet's ducks lay 16 eggs per day. She eats three and bakes with four. "
    "She sells the rest for $2 each. How much does she make every day?",
    "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18",
}
LONG = {
    "question": "A robe takes 2 bolts of blue fiber and half that much white fiber.",
    "answer": "It takes 2/2=<<2/2=1>>1 bolt of white fiber. " + "And so on. " * 60 + "\n#### 3",
}
SPRINTS = {
    "question": "James runs 3 sprints 3 times a week, 60 meters each. How far in a week?",
    "answer": "He sprints 3*3=<<3*3=9>>9 times\nSo he runs 9*60=<<9*60=540>>540 meters\n#### 540",
}
HOUSE = {
    "question": "Josh buys a house for $80,000 and puts in $50,000 in repairs. ...",
    "answer": "The cost came to 80,000+50,000=$<<80000+50000=130000>>130,000\n"
    "The value rose by 80,000*1.5=<<80000*1.5=120000>>120,000\n"
    "So he made 200,000-130,000=$<<200000-130000=70000>>70,000\n#### 70,000",
}


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (DUCKS, LONG, SPRINTS, HOUSE)) + "\n")
    return path


def cases(path):
    return {case.id: case for case in gold_cases(path)}


def test_gold_is_the_worked_solution_without_annotations(dataset):
    gold = cases(dataset)["gsm8k-1"]
    assert isinstance(gold, GoldCase)
    assert gold.document == DUCKS["question"]
    assert gold.answer == MathAnswer(
        reasoning="Janet sells 16 - 3 - 4 = 9 duck eggs a day. "
        "She makes 9 * 2 = $18 every day at the farmer's market.",
        answer="18",
    )


def test_the_final_number_loses_its_thousands_commas(dataset):
    assert cases(dataset)["gsm8k-4"].answer.answer == "70000"


def test_a_working_longer_than_the_schema_allows_is_skipped_not_cut(dataset):
    assert cases(dataset)["gsm8k-2"] == Skipped(
        "gsm8k-2", "worked solution longer than the schema's 600 characters"
    )


def test_a_line_without_a_final_number_is_a_dataset_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(DUCKS) + "\n" + json.dumps({"question": "q", "answer": "4"}) + "\n")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: .*'####'"):
        list(gold_cases(path))


def test_a_line_that_is_not_json_is_a_dataset_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:1: not valid JSON"):
        list(gold_cases(path))


def test_mutants_are_deterministic_for_a_seed(dataset):
    for case in cases(dataset).values():
        if isinstance(case, GoldCase):
            first = mutants(case, random.Random("7:x"))
            again = mutants(case, random.Random("7:x"))
            assert [(m.kind, m.what, m.answer) for m in first] == [
                (m.kind, m.what, m.answer) for m in again
            ]


def test_a_wrong_step_changes_one_stated_result_and_nothing_else(dataset):
    gold = cases(dataset)["gsm8k-3"]
    (step,) = [m for m in mutants(gold, random.Random(0)) if m.kind == "wrong_step"]
    assert step.answer.answer == gold.answer.answer
    before = re.findall(r"\d+|\D+", gold.answer.reasoning)
    after = re.findall(r"\d+|\D+", step.answer.reasoning)
    assert len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
    assert re.fullmatch(r"step '(3\*3=9|9\*60=540)' → \d+", step.what)


def test_a_wrong_final_answer_is_where_the_working_ends(dataset):
    gold = cases(dataset)["gsm8k-4"]
    (final,) = [m for m in mutants(gold, random.Random(0)) if m.kind == "wrong_final"]
    assert final.answer.answer != gold.answer.answer
    last = NUMBERS_IN_TEXT.findall(final.answer.reasoning)[-1]
    assert canonical_number(last) == final.answer.answer
    assert "," in last  # written like the number it replaced


def test_the_verifiers_pass_gold_and_catch_every_mutant(dataset):
    report = evaluate_verifiers(task=TASK, suite=SUITE, dataset=dataset)
    assert report["gold"]["passed"] == 1.0 and report["gold"]["count"] == 3
    assert report["skipped"] == {"worked solution longer than the schema's 600 characters": 1}
    assert {kind: m["caught"] for kind, m in report["mutations"].items()} == {
        "wrong_step": 1.0,
        "wrong_final": 1.0,
    }
    assert {m["count"] for m in report["mutations"].values()} == {3}
