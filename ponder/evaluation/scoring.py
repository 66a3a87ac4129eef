"""Scoring one job's answer against gold, per task type: F1 on medications, F1 on clause
categories, exact match on maths; and what counts as a *right* answer for precision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tasks.contract_review.taxonomy import CATEGORIES
from tasks.math_answer.schema import canonical_number
from tasks.medrec_extraction.dose import doses_in, parse_dose
from tasks.medrec_extraction.drug_lexicon import same_drug

RIGHT_F1 = 0.5
"""An extraction answer is right when its item F1 against gold is at least this."""


@dataclass(frozen=True)
class ItemScore:
    score: float
    """0 to 1: F1 for extraction tasks, 1 or 0 for exact match."""
    right: bool
    """Whether the answer counts as correct (F1 >= RIGHT_F1, or an exact match)."""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scorer:
    metric: str
    """How ``score`` is computed, for the report."""
    right_rule: str
    """When an answer counts as right, for the report."""
    gold_problem: Callable[[Any], str | None]
    score: Callable[[dict[str, Any], dict[str, Any]], ItemScore]
    """``score(output, gold)``: output is the job's selected answer as JSON."""


def f1(tp: int, fp: int, fn: int) -> float:
    """F1 of one item; an empty answer to an empty gold is perfect."""
    if tp + fp + fn == 0:
        return 1.0
    return 2 * tp / (2 * tp + fp + fn)


def _extraction(tp: int, fp: int, fn: int) -> ItemScore:
    score = f1(tp, fp, fn)
    return ItemScore(score, score >= RIGHT_F1, {"tp": tp, "fp": fp, "fn": fn})


def _string_list(gold: Any, key: str) -> str | None:
    if not isinstance(gold, dict) or not isinstance(gold.get(key), list):
        return f'must be an object {{"{key}": [...]}}'
    if not all(isinstance(x, str) and x.strip() for x in gold[key]):
        return f"'{key}' must hold non-empty strings"
    return None


def _medications_gold(gold: Any) -> str | None:
    return _string_list(gold, "medications")


def score_medications(output: dict[str, Any], gold: dict[str, Any]) -> ItemScore:
    """Predicted medications matched one to one with gold ones: the same drug (a brand
    matches its generic), and, where the gold states a dose ("lasix 40 milligrams a day"),
    the same dose and unit. A right name with a wrong dose is a false positive and a miss."""
    predicted = list(output.get("medications", []))
    unmatched = list(gold["medications"])
    tp = 0
    for medication in predicted:
        hit = next((g for g in unmatched if _same_medication(medication, g)), None)
        if hit is not None:
            unmatched.remove(hit)
            tp += 1
    return _extraction(tp, len(predicted) - tp, len(unmatched))


def _same_medication(medication: dict[str, Any], gold: str) -> bool:
    if not same_drug(str(medication.get("name", "")), gold):
        return False
    stated = doses_in(gold)
    if not stated:
        return True
    dose = parse_dose(str(medication.get("dose", "")))
    return any((d.low, d.high) == dose and d.unit == medication.get("unit") for d in stated)


def _categories_gold(gold: Any) -> str | None:
    problem = _string_list(gold, "categories")
    if problem:
        return problem
    unknown = sorted(set(gold["categories"]) - set(CATEGORIES))
    return f"names categories outside the taxonomy: {unknown}" if unknown else None


def score_categories(output: dict[str, Any], gold: dict[str, Any]) -> ItemScore:
    """The set of categories found against the set present; quotes are not compared."""
    predicted = {f.get("category") for f in output.get("findings", [])}
    expected = set(gold["categories"])
    tp = len(predicted & expected)
    return _extraction(tp, len(predicted) - tp, len(expected) - tp)


def _answer_gold(gold: Any) -> str | None:
    if not isinstance(gold, dict) or not isinstance(gold.get("answer"), str | int | float):
        return 'must be an object {"answer": "<number>"}'
    if canonical_number(str(gold["answer"])) is None:
        return f"answer {gold['answer']!r} is not a number"
    return None


def score_answer(output: dict[str, Any], gold: dict[str, Any]) -> ItemScore:
    given = canonical_number(str(output.get("answer", "")))
    expected = canonical_number(str(gold["answer"]))
    right = given is not None and given == expected
    return ItemScore(1.0 if right else 0.0, right, {"answer": given, "gold": expected})


_ITEM_F1 = f"right when item F1 >= {RIGHT_F1}"
SCORERS: dict[str, Scorer] = {
    "medrec_extraction": Scorer(
        "F1 on medications (same drug, and dose where gold has one)",
        _ITEM_F1,
        _medications_gold,
        score_medications,
    ),
    "contract_review": Scorer(
        "F1 on clause categories", _ITEM_F1, _categories_gold, score_categories
    ),
    "contract_review_full": Scorer(
        "F1 on clause categories", _ITEM_F1, _categories_gold, score_categories
    ),
    "math_answer": Scorer("exact match", "right when exact", _answer_gold, score_answer),
}
"""The task types ``ponder eval`` can score. A new task type adds its scorer here."""


def scorer_for(task: str) -> Scorer:
    try:
        return SCORERS[task]
    except KeyError:
        known = ", ".join(sorted(SCORERS))
        raise KeyError(f"no scorer for task {task!r}; ponder eval scores: {known}") from None


def gold_problem(task: str, gold: Any) -> str | None:
    """Why ``gold`` is not gold for ``task``, or None when it is."""
    return scorer_for(task).gold_problem(gold)


def score_item(task: str, output: dict[str, Any] | None, gold: dict[str, Any]) -> ItemScore:
    """A job without an answer (failed, refused, timed out) scores 0 and is never right."""
    if output is None:
        return ItemScore(0.0, False, {"no_answer": True})
    return scorer_for(task).score(output, gold)
