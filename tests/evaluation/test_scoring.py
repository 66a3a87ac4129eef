"""Scoring against gold: F1 on medications and categories, exact match on maths, and what
counts as right."""

import pytest

from ponder.evaluation.scoring import RIGHT_F1, f1, score_item, scorer_for


def meds(*names: str, dose: str = "40", unit: str = "mg") -> dict:
    return {"medications": [{"name": n, "dose": dose, "unit": unit} for n in names]}


def test_f1_of_an_empty_answer_to_empty_gold_is_perfect():
    assert f1(0, 0, 0) == 1.0


def test_medications_match_by_drug_brand_and_generic_included():
    gold = {"medications": ["lasix 40 milligrams a day", "albuterol a", "naprosyn"]}
    scored = score_item("medrec_extraction", meds("furosemide", "Albuterol", "aspirin"), gold)
    assert scored.detail == {"tp": 2, "fp": 1, "fn": 1}
    assert scored.score == pytest.approx(2 / 3) and scored.right


def test_a_right_drug_at_a_dose_other_than_the_gold_one_does_not_match():
    gold = {"medications": ["lasix 40 milligrams a day"]}
    assert score_item("medrec_extraction", meds("lasix", dose="20"), gold).detail["tp"] == 0
    assert score_item("medrec_extraction", meds("lasix", unit="mEq"), gold).detail["tp"] == 0
    assert score_item("medrec_extraction", meds("lasix"), gold).detail["tp"] == 1


def test_a_gold_entry_without_a_dose_matches_the_drug_at_any_dose():
    gold = {"medications": ["naprosyn"]}
    assert score_item("medrec_extraction", meds("naproxen", dose="500"), gold).right


def test_a_medication_listed_twice_matches_one_gold_entry_only():
    scored = score_item("medrec_extraction", meds("lasix", "Lasix"), {"medications": ["lasix"]})
    assert scored.detail == {"tp": 1, "fp": 1, "fn": 0}


def test_an_answer_below_the_f1_threshold_is_not_right():
    scored = score_item("medrec_extraction", meds("aspirin"), {"medications": ["lasix", "coreg"]})
    assert scored.score == 0.0 and not scored.right
    assert RIGHT_F1 == 0.5


def test_an_empty_list_for_an_encounter_without_orders_is_right():
    assert score_item("medrec_extraction", meds(), {"medications": []}).right


def test_categories_are_compared_as_sets():
    output = {"findings": [{"category": "governing_law"}, {"category": "governing_law"},
                           {"category": "insurance"}]}  # fmt: skip
    gold = {"categories": ["governing_law", "cap_on_liability"]}
    scored = score_item("contract_review", output, gold)
    assert scored.detail == {"tp": 1, "fp": 1, "fn": 1} and scored.score == 0.5 and scored.right


@pytest.mark.parametrize(("given", "right"), [("18", True), ("18.0", True), ("17", False)])
def test_maths_is_an_exact_match_on_the_number(given, right):
    scored = score_item("math_answer", {"answer": given}, {"answer": "18"})
    assert scored.right is right and scored.score == (1.0 if right else 0.0)


def test_no_answer_scores_zero_and_is_never_right():
    scored = score_item("math_answer", None, {"answer": "18"})
    assert scored.score == 0.0 and not scored.right


def test_a_task_without_a_scorer_is_named():
    with pytest.raises(KeyError, match="no scorer for task 'poetry'"):
        scorer_for("poetry")
