"""Gold medication lists built from SIMORD-format encounters, and their one-error mutants."""

import json
import random

import pytest

from ponder.evaluation.loaders import DatasetError
from ponder.evaluation.mutation import GoldCase, Skipped, evaluate_verifiers
from tasks.medrec_extraction import TASK
from tasks.medrec_extraction.gold import SUITE, gold_cases, mutants


def turns(*texts: str) -> list[dict]:
    return [{"turn_id": i, "speaker": "DOCTOR" if i % 2 else "PATIENT", "transcript": t}
            for i, t in enumerate(texts, start=1)]  # fmt: skip


ENCOUNTERS = [
    {
        "id": "enc-1",
        "transcript": turns(
            "how is the breathing ?",
            "worse at night .",
            "i want to put you on some lasix , 40 milligrams a day .",
            "and keep using the albuterol inhaler two puffs every six hours as needed .",
        ),
        "expected_orders": [
            {"order_type": "medication", "description": "lasix 40 milligrams a day",
             "reason": "edema", "provenance": [3]},
            {"order_type": "medication", "description": "albuterol two puffs as needed",
             "reason": "wheeze", "provenance": [4]},
            {"order_type": "lab", "description": "bmp", "reason": "", "provenance": [3]},
        ],
    },
    {
        "id": "enc-2",
        "transcript": turns("we will start an antibiotic .", "okay ."),
        "expected_orders": [
            {"order_type": "medication", "description": "antibiotic", "reason": "",
             "provenance": [1]},
        ],
    },
]  # fmt: skip


@pytest.fixture
def simord(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps(ENCOUNTERS))
    return path


def test_gold_items_take_drug_dose_and_frequency_from_the_order_and_evidence_from_the_turn(simord):
    case, skipped = list(gold_cases(simord))
    assert isinstance(case, GoldCase) and isinstance(skipped, Skipped)
    lasix, albuterol = case.answer.medications
    assert (lasix.name, lasix.dose, lasix.unit, lasix.frequency) == ("lasix", "40", "mg", "daily")
    assert lasix.evidence == "i want to put you on some lasix , 40 milligrams a day ."
    assert (albuterol.dose, albuterol.unit, albuterol.route) == ("2", "puffs", "inhaled")
    assert albuterol.frequency == "PRN"  # the order's words come first
    assert "antibiotic" in skipped.reason


def test_gold_answers_pass_every_required_check(simord):
    payload = evaluate_verifiers(task=TASK, suite=SUITE, dataset=simord)
    assert payload["gold"] == payload["gold"] | {"passed": 1.0, "count": 1}
    assert payload["skipped"] == {next(iter(payload["skipped"])): 1}


def test_every_mutation_class_of_the_encounter_is_caught(simord):
    payload = evaluate_verifiers(task=TASK, suite=SUITE, dataset=simord)
    counts = {kind: (m["count"], m["caught"]) for kind, m in payload["mutations"].items()}
    assert counts == {
        "omit_item": (1, 1.0), "invented_item": (1, 1.0), "wrong_dose": (1, 1.0),
        "wrong_unit": (1, 1.0), "wrong_frequency": (1, 1.0), "wrong_route": (1, 1.0),
    }  # fmt: skip


def test_the_same_seed_gives_the_same_mutants(simord):
    case = next(c for c in gold_cases(simord) if isinstance(c, GoldCase))
    first = [(m.kind, m.what) for m in mutants(case, random.Random("0:enc-1"))]
    again = [(m.kind, m.what) for m in mutants(case, random.Random("0:enc-1"))]
    assert first == again and len(first) == 6


def test_a_file_that_is_not_simord_is_a_dataset_error(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(DatasetError, match="expected a JSON array"):
        list(gold_cases(path))
