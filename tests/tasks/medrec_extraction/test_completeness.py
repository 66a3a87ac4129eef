"""Completeness and the value checks of a medication list: every drug the note names is
listed (or accounted for by a status), and no dose or frequency is given where the evidence
states another or left out where it states one. Each check both ways."""

from pathlib import Path

from tasks.medrec_extraction.checks import (
    check_completeness,
    check_dose_format,
    check_dose_in_evidence,
    check_frequency_in_evidence,
    check_route_vocabulary,
    check_status_consistency,
    own_words,
)
from tasks.medrec_extraction.mentions import medication_mentions
from tasks.medrec_extraction.schema import Medication, MedicationList

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "clinic_note.md"
NOTE = (
    "Medications: metoprolol 50 mg by mouth twice daily. Lasix 40 mg daily.\n"
    "Allergies: penicillin (rash). Potassium 4.6 mmol/L; recheck potassium in a week."
)


def med(name: str, evidence: str, **changes: object) -> Medication:
    fields = {"name": name, "dose": "50", "unit": "mg", "route": "oral", "frequency": "BID",
              "status": "active", "evidence": evidence}  # fmt: skip
    return Medication.model_validate(fields | changes)


def meds(*medications: Medication) -> MedicationList:
    return MedicationList(medications=list(medications))


METOPROLOL = med("metoprolol", "metoprolol 50 mg by mouth twice daily")
FUROSEMIDE = med("furosemide", "Lasix 40 mg daily", dose="40", frequency="daily")
LASIX = med("Lasix", "Lasix 40 mg daily", dose="40", frequency="daily")
PENICILLIN = med("penicillin", "penicillin (rash)", dose=None, unit=None, frequency=None,
                 status="allergy", route="other")  # fmt: skip


def test_an_empty_list_on_a_note_with_medications_fails_naming_each_missing_drug():
    result = check_completeness(meds(), SAMPLE.read_text())
    assert not result.passed and result.score == 0.0
    text = " ".join(result.findings)
    for name in ("naproxen", "Metoprolol", "Lisinopril", "Atorvastatin", "Albuterol",
                 "acetaminophen", "Penicillin"):  # fmt: skip
        assert f"'{name}'" in text
    assert all(f.startswith("missing medication: the note names") for f in result.findings)


def test_a_finding_says_where_the_missed_drug_is():
    result = check_completeness(meds(METOPROLOL, LASIX), NOTE)
    (finding,) = result.findings
    start = NOTE.index("penicillin")
    assert f"'penicillin' at {start}-{start + len('penicillin')}" in finding
    assert "Allergies: penicillin (rash)" in finding


def test_a_complete_list_passes_completeness():
    assert check_completeness(meds(METOPROLOL, LASIX, PENICILLIN), NOTE).passed


def test_a_generic_name_covers_its_brand():
    assert check_completeness(meds(METOPROLOL, FUROSEMIDE, PENICILLIN), NOTE).passed


def test_a_note_without_medications_accepts_an_empty_list():
    assert check_completeness(meds(), "Knee pain for two weeks. Ice and rest.").passed


def test_an_extra_drug_does_not_make_up_for_a_missing_one():
    # The answer keeps a drug the note names once and drops the real medication list.
    note = "Takes warfarin 5 mg daily. Friend recommended aspirin; patient declined."
    answer = meds(med("aspirin", "recommended aspirin", dose=None, unit=None, frequency=None,
                      status="not_taking"))  # fmt: skip
    result = check_completeness(answer, note)
    assert not result.passed and "'warfarin'" in result.findings[0]


def test_a_lab_analyte_is_not_a_medication_mention():
    found = [m.generic for m in medication_mentions(NOTE)]
    assert "potassium" not in found
    assert found.count("penicillin") == 1
    assert [m.generic for m in medication_mentions("potassium chloride 20 mEq daily")] == [
        "potassium chloride"
    ]


def test_no_dose_is_accepted_where_the_evidence_states_none():
    answer = meds(med("tylenol", "take some tylenol", dose=None, unit=None, frequency=None))
    assert check_dose_in_evidence(answer, "").passed
    assert check_dose_format(answer, "").passed


def test_no_dose_fails_where_the_evidence_states_one_for_the_drug():
    answer = meds(med("lasix", "lasix 40 milligrams a day", dose=None, unit=None))
    result = check_dose_in_evidence(answer, "")
    assert (
        not result.passed
        and "no dose given, but its evidence says 40 milligrams" in (result.findings[0])
    )


def test_another_drugs_dose_in_the_same_quote_is_not_this_drugs():
    evidence = "stop advil and take tylenol 500 mg twice a day"
    answer = meds(med("advil", evidence, dose=None, unit=None, frequency=None,
                      status="discontinued"))  # fmt: skip
    assert own_words("advil", evidence) == "advil and take "
    assert check_dose_in_evidence(answer, "").passed
    assert check_frequency_in_evidence(answer, "").passed


def test_a_dose_without_a_unit_fails_the_dose_format():
    assert not check_dose_format(meds(med("lasix", "lasix 40 mg", unit=None)), "").passed


def test_a_frequency_the_evidence_states_passes():
    answer = meds(med("ibuprofen", "ibuprofen 600 milligrams four times a day with food",
                      dose="600", frequency="QID"))  # fmt: skip
    assert check_frequency_in_evidence(answer, "").passed


def test_a_frequency_that_contradicts_the_evidence_fails():
    answer = meds(med("ibuprofen", "ibuprofen 600 milligrams four times a day",
                      dose="600", frequency="BID"))  # fmt: skip
    result = check_frequency_in_evidence(answer, "")
    assert not result.passed
    assert result.findings == ["ibuprofen: frequency BID but its evidence says QID"]


def test_once_daily_at_a_time_of_day_agrees_with_daily():
    answer = meds(med("flomax", "flomax 0.4 mg once a day at night", dose="0.4",
                      frequency="daily"))  # fmt: skip
    assert check_frequency_in_evidence(answer, "").passed


def test_no_frequency_fails_where_the_evidence_states_one():
    answer = meds(med("lasix", "lasix 40 mg a day", dose="40", frequency=None))
    result = check_frequency_in_evidence(answer, "")
    assert (
        not result.passed
        and "no frequency given, but its evidence says daily" in (result.findings[0])
    )


def test_evidence_without_a_frequency_passes_any_frequency():
    answer = meds(med("lasix", "put you on some lasix 40 mg", dose="40", frequency="BID"))
    assert check_frequency_in_evidence(answer, "").passed


def test_a_route_named_for_another_drug_in_the_quote_does_not_count():
    evidence = "lasix 40 mg by mouth and the albuterol inhaler"
    assert check_route_vocabulary(meds(med("lasix", evidence, dose="40")), "").passed
    assert not check_route_vocabulary(meds(med("albuterol", evidence, dose="40")), "").passed


def test_an_allergy_needs_allergy_words_in_its_evidence():
    assert check_status_consistency(meds(PENICILLIN), "").passed
    wrong = med("penicillin", "penicillin 500 mg", status="allergy", dose=None, unit=None)
    result = check_status_consistency(meds(wrong), "")
    assert not result.passed and "allergy or reaction" in result.findings[0]


def test_a_day_is_read_as_daily_in_evidence_but_is_no_answer_frequency():
    from tasks.medrec_extraction.frequency import frequencies_in, normalise_frequency

    assert frequencies_in("lasix , 40 milligrams a day .") == ["daily"]
    assert normalise_frequency("a day") is None  # the vocabulary check is not loosened
