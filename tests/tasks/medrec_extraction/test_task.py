import json
from pathlib import Path

import pytest

from ponder.verify import SCHEMA_VERIFIER, verify_candidate
from tasks.medrec_extraction import TASK
from tasks.medrec_extraction.checks import (
    check_dose_format,
    check_evidence_grounding,
    check_frequency_vocabulary,
    check_name_grounding,
    check_no_duplicates,
    check_status_consistency,
)
from tasks.medrec_extraction.schema import Medication, MedicationList
from tasks.medrec_extraction.task import normalise
from tasks.registry import get_task

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "clinic_note.md"
DOCUMENT = (
    "Medications: Metoprolol 50 mg by mouth BID, continue.\n"
    "Naproxen 500 mg twice daily; stop naproxen due to rising creatinine.\n"
    "Warfarin 5 mg daily."
)


METOPROLOL = {
    "name": "Metoprolol",
    "dose": "50",
    "unit": "mg",
    "route": "oral",
    "frequency": "BID",
    "status": "active",
    "evidence": "Metoprolol 50 mg by mouth BID",
}


def med(**changes):
    return Medication(**METOPROLOL | changes)


def meds(*medications):
    return MedicationList(medications=list(medications))


def verdicts_for(output, document=DOCUMENT):
    text = output if isinstance(output, str) else output.model_dump_json()
    _, verdicts = verify_candidate(
        text=text, output_model=TASK.output_model, document=document, verifiers=TASK.verifiers
    )
    return {v.verifier: v for v in verdicts}


def test_grounded_metoprolol_50_mg_bid_passes_every_verifier():
    # A note naming metoprolol only: DOCUMENT also names naproxen and warfarin, which a
    # complete list must carry (see the completeness tests).
    verdicts = verdicts_for(meds(med()), document="Metoprolol 50 mg by mouth BID, continue.")
    assert all(v.passed and v.score == 1.0 for v in verdicts.values()), verdicts


def test_empty_medication_list_on_a_note_without_drugs_passes_every_verifier():
    verdicts = verdicts_for(meds(), document="Knee pain, better with rest. Return in a month.")
    assert all(v.passed and v.score == 1.0 for v in verdicts.values())


def test_empty_medication_list_on_a_note_with_drugs_fails_completeness():
    verdicts = verdicts_for(meds())
    assert not verdicts["completeness"].passed
    missing = " ".join(verdicts["completeness"].findings)
    assert all(name in missing for name in ("Metoprolol", "Naproxen", "Warfarin"))


def test_name_not_in_the_document_fails_name_grounding():
    result = check_name_grounding(meds(med(), med(name="benjy")), DOCUMENT)
    assert not result.passed
    assert result.score == 0.5
    assert result.findings == ["name 'benjy' does not occur in the document"]


def test_name_grounding_ignores_case():
    assert check_name_grounding(meds(med(name="METOPROLOL")), DOCUMENT).passed


def test_name_grounding_needs_whole_words():
    assert not check_name_grounding(meds(med(name="prolol")), DOCUMENT).passed


def test_fabricated_evidence_fails_evidence_grounding():
    result = check_evidence_grounding(meds(med(evidence="Metoprolol 100 mg BID")), DOCUMENT)
    assert not result.passed
    assert result.findings == [
        "Metoprolol: evidence 'Metoprolol 100 mg BID' does not occur in the document"
    ]


def test_evidence_grounding_ignores_case_and_whitespace():
    evidence = "metoprolol   50 MG by mouth\nbid"
    assert check_evidence_grounding(meds(med(evidence=evidence)), DOCUMENT).passed


@pytest.mark.parametrize("dose", ["50", "0.5", ".5", "1-2", "1 to 2", "500", "1,000"])
def test_numbers_and_ranges_pass_dose_format(dose):
    assert check_dose_format(meds(med(dose=dose)), DOCUMENT).passed


def test_dose_abc_fails_dose_format():
    result = check_dose_format(meds(med(dose="abc")), DOCUMENT)
    assert not result.passed
    assert result.findings[0].startswith("Metoprolol: dose 'abc' is not a number")


@pytest.mark.parametrize(
    ("dose", "problem"),
    [
        ("50 mg", "is not a number"),
        ("0", "is not positive"),
        ("2-1", "runs backwards"),
        ("250000", "implausibly large"),
    ],
)
def test_bad_doses_fail_dose_format_with_the_reason(dose, problem):
    result = check_dose_format(meds(med(dose=dose)), DOCUMENT)
    assert not result.passed
    assert problem in result.findings[0]


def test_unknown_frequency_fails_frequency_vocabulary():
    result = check_frequency_vocabulary(meds(med(frequency="sometimes")), DOCUMENT)
    assert not result.passed
    assert result.findings[0].startswith("Metoprolol: frequency 'sometimes' is not one of")


def test_discontinued_without_stopping_language_fails_status_consistency():
    naproxen = med(
        name="Naproxen",
        dose="500",
        frequency="twice daily",
        status="discontinued",
        evidence="Naproxen 500 mg twice daily",
    )
    result = check_status_consistency(meds(naproxen), DOCUMENT)
    assert not result.passed
    assert result.findings == [
        "Naproxen: status 'discontinued' but its evidence has no stopping or holding language"
    ]


def test_discontinued_with_stopping_language_passes_status_consistency():
    naproxen = med(
        name="Naproxen",
        dose="500",
        frequency="twice daily",
        status="discontinued",
        evidence="stop naproxen due to rising creatinine",
    )
    assert check_status_consistency(meds(naproxen), DOCUMENT).passed


def test_active_medication_needs_no_stopping_language():
    assert check_status_consistency(meds(med(status="active")), DOCUMENT).passed


def test_same_medication_twice_fails_no_duplicates():
    result = check_no_duplicates(meds(med(), med(name="metoprolol", frequency="twice daily")), "")
    assert not result.passed
    assert result.score == 0.5
    assert result.findings == ["metoprolol 50 mg oral BID is listed 2 times"]


def test_same_drug_at_two_doses_is_not_a_duplicate():
    assert check_no_duplicates(meds(med(), med(dose="100", status="new")), "").passed


def test_required_and_optional_verifiers():
    required = [v.name for v in TASK.verifiers if v.required]
    assert required == [
        "completeness",
        "name_grounding",
        "evidence_grounding",
        "drug_lexicon",
        "dose_format",
        "dose_plausibility",
        "frequency_vocabulary",
        "evidence_names_drug",
        "dose_in_evidence",
        "frequency_in_evidence",
        "route_vocabulary",
    ]
    optional = {v.name: v.weight for v in TASK.verifiers if not v.required}
    assert optional == {
        "status_consistency": 0.5,
        "no_duplicates": 0.5,
    }


def test_normalise_keys_on_lowercased_name_and_normalised_frequency():
    first = meds(med(), med(name="Warfarin", dose="5", frequency="daily", evidence="Warfarin"))
    second = meds(
        med(name="warfarin", dose="5", frequency="once a day", evidence="Warfarin 5 mg daily"),
        med(name="METOPROLOL", frequency="twice daily", dose="25"),
    )
    assert normalise(first) == normalise(second) == {("metoprolol", "BID"), ("warfarin", "daily")}


def test_invalid_json_fails_schema_and_leaves_every_verifier_not_checked():
    verdicts = verdicts_for("medications: metoprolol")
    assert not verdicts[SCHEMA_VERIFIER].passed
    others = [v for name, v in verdicts.items() if name != SCHEMA_VERIFIER]
    assert len(others) == len(TASK.verifiers)
    assert all(not v.passed and "not checked" in v.findings[0] for v in others)


def test_output_schema_is_bounded():
    schema = TASK.json_schema()
    assert schema["properties"]["medications"]["maxItems"] == 10
    item = schema["$defs"]["Medication"]["properties"]
    for field, limit in {"name": 60, "dose": 20, "frequency": 30, "evidence": 300}.items():
        # dose and frequency may be null (the note states none): the string branch is bounded.
        branches = item[field].get("anyOf", [item[field]])
        assert [b["maxLength"] for b in branches if b["type"] == "string"] == [limit]
    unit = next(b for b in item["unit"]["anyOf"] if b["type"] == "string")
    assert "enum" in unit and "enum" in item["route"] and "enum" in item["status"]


def test_unknown_unit_fails_the_schema():
    bad = med().model_dump() | {"unit": "teaspoons"}
    assert not verdicts_for(json.dumps({"medications": [bad]}))[SCHEMA_VERIFIER].passed


def test_prompt_contains_the_document_and_every_unit_and_route():
    _, user = TASK.messages("UNIQUE-NOTE-TEXT")
    assert "UNIQUE-NOTE-TEXT" in user["content"]
    item = TASK.json_schema()["$defs"]["Medication"]["properties"]
    units = next(b for b in item["unit"]["anyOf"] if b["type"] == "string")["enum"]
    for term in units + item["route"]["enum"] + item["status"]["enum"]:
        assert term in user["content"]


def test_messages_render_for_the_sample_note():
    document = SAMPLE.read_text()
    system, user = TASK.messages(document)
    assert system["role"] == "system"
    assert document.strip() in user["content"]


def test_hand_written_list_for_the_sample_note_passes_every_verifier():
    sample = meds(
        med(
            name="Metoprolol tartrate",
            frequency="twice daily",
            evidence="Metoprolol tartrate 50 mg by mouth twice daily. Continue.",
        ),
        med(
            name="Lisinopril",
            dose="20",
            frequency="once daily",
            status="changed",
            evidence="Lisinopril 20 mg by mouth once daily. Dose increased today from 10 mg.",
        ),
        med(
            name="Atorvastatin",
            dose="40",
            frequency="at bedtime",
            evidence="Atorvastatin 40 mg by mouth at bedtime.",
        ),
        med(
            name="Albuterol",
            dose="2",
            unit="puffs",
            route="inhaled",
            frequency="q6h PRN",
            evidence="Albuterol inhaler 2 puffs inhaled every 6 hours as needed for wheeze.",
        ),
        med(
            name="Naproxen",
            dose="500",
            frequency="BID",
            status="discontinued",
            evidence="Stop naproxen today because of the rising creatinine.",
        ),
        med(
            name="acetaminophen",
            dose="500",
            frequency="every 8 hours as needed",
            status="new",
            evidence="Start acetaminophen 500 mg by mouth every 8 hours",
        ),
        med(
            name="Penicillin",
            dose=None,
            unit=None,
            route="other",
            frequency=None,
            status="allergy",
            evidence="Penicillin (rash).",
        ),
    )
    verdicts = verdicts_for(sample, document=SAMPLE.read_text())
    assert all(v.passed and v.score == 1.0 for v in verdicts.values()), verdicts


def test_registry_finds_the_task_by_name():
    assert get_task("medrec_extraction") is TASK


def test_name_grounding_fails_a_name_without_letters() -> None:
    output = MedicationList.model_validate(
        {
            "medications": [
                {
                    "name": ", ",
                    "dose": "50",
                    "unit": "mg",
                    "route": "oral",
                    "frequency": "daily",
                    "status": "active",
                    "evidence": "daily",
                }
            ]
        }
    )
    result = check_name_grounding(output, "Lisinopril 50 mg daily, by mouth.")
    assert not result.passed
    assert "', '" in result.findings[0] or "does not occur" in result.findings[0]
