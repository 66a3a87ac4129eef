"""The medication checks added for reconciliation: lexicon, dose plausibility, the dose in
the evidence, the evidence naming its drug and the route, each passing and failing."""

from tasks.medrec_extraction.checks import (
    check_dose_in_evidence,
    check_dose_plausibility,
    check_drug_lexicon,
    check_evidence_names_drug,
    check_route_vocabulary,
    check_status_consistency,
)
from tasks.medrec_extraction.schema import Medication, MedicationList

METOPROLOL = {
    "name": "metoprolol",
    "dose": "50",
    "unit": "mg",
    "route": "oral",
    "frequency": "BID",
    "status": "active",
    "evidence": "metoprolol 50 mg BID",
}


def med(**changes: object) -> Medication:
    return Medication.model_validate(METOPROLOL | changes)


def meds(*medications: Medication) -> MedicationList:
    return MedicationList(medications=list(medications))


def test_metoprolol_passes_the_drug_lexicon():
    assert check_drug_lexicon(meds(med()), "").passed


def test_58_feline_medication_fails_the_drug_lexicon():
    result = check_drug_lexicon(meds(med(), med(name="58 feline medication")), "")
    assert not result.passed and result.score == 0.5
    assert result.findings == ["name '58 feline medication' is not a drug name the lexicon knows"]


def test_a_brand_name_passes_the_drug_lexicon():
    assert check_drug_lexicon(meds(med(name="Lasix")), "").passed


def test_a_misspelt_drug_passes_the_lexicon_and_is_recorded():
    result = check_drug_lexicon(meds(med(name="metoprolo")), "")
    assert result.passed
    assert result.findings == ["name 'metoprolo' taken as 'metoprolol' (metoprolol)"]


def test_a_plausible_dose_passes_plausibility():
    assert check_dose_plausibility(meds(med(), med(dose="50000", unit="units")), "").passed


def test_a_dose_above_the_unit_limit_fails_plausibility():
    result = check_dose_plausibility(meds(med(dose="500", unit="g")), "")
    assert not result.passed
    assert result.findings == [
        "metoprolol: 500 g is above the largest plausible single dose (100 g)"
    ]


def test_twenty_puffs_fail_plausibility():
    assert not check_dose_plausibility(meds(med(dose="10-20", unit="puffs")), "").passed


def test_dose_stated_in_evidence_passes():
    assert check_dose_in_evidence(meds(med()), "").passed


def test_dose_in_words_in_evidence_passes():
    spoken = med(name="lasix", dose="40", evidence="lasix forty milligrams a day")
    assert check_dose_in_evidence(meds(spoken), "").passed


def test_dose_that_contradicts_the_evidence_fails():
    result = check_dose_in_evidence(meds(med(dose="100")), "")
    assert not result.passed
    assert result.findings == ["metoprolol: dose 100 mg but its evidence says 50 mg"]


def test_unit_that_contradicts_the_evidence_fails():
    assert not check_dose_in_evidence(meds(med(unit="mcg")), "").passed


def test_dose_missing_from_the_evidence_of_an_active_drug_fails():
    result = check_dose_in_evidence(meds(med(evidence="continue metoprolol")), "")
    assert not result.passed
    assert "is not stated in its evidence" in result.findings[0]


def test_a_stopped_drug_may_have_evidence_without_a_dose():
    stopped = med(status="discontinued", evidence="stop metoprolol")
    result = check_dose_in_evidence(meds(stopped), "")
    assert result.passed
    assert result.findings == [
        "metoprolol: evidence states no dose (accepted: status discontinued)"
    ]


def test_evidence_that_names_the_drug_passes():
    assert check_evidence_names_drug(meds(med()), "").passed


def test_evidence_about_another_drug_fails():
    result = check_evidence_names_drug(meds(med(evidence="lisinopril 10 mg daily")), "")
    assert not result.passed
    assert "does not name the medication" in result.findings[0]


def test_route_the_evidence_agrees_with_passes():
    assert check_route_vocabulary(meds(med(evidence="metoprolol 50 mg by mouth")), "").passed


def test_evidence_without_a_route_passes_any_route():
    assert check_route_vocabulary(meds(med(route="IV")), "").passed


def test_route_that_contradicts_the_evidence_fails():
    inhaler = med(name="albuterol", route="oral", evidence="albuterol 2 puffs inhaled q6h")
    result = check_route_vocabulary(meds(inhaler), "")
    assert not result.passed
    assert result.findings == ["albuterol: route 'oral' but its evidence says inhaled"]


def test_route_outside_the_vocabulary_fails():
    rogue = Medication.model_construct(**(METOPROLOL | {"route": "telepathic"}))
    result = check_route_vocabulary(MedicationList.model_construct(medications=[rogue]), "")
    assert not result.passed
    assert "route 'telepathic' is not one of" in result.findings[0]


def test_discontinued_without_stopping_language_fails_status_consistency():
    result = check_status_consistency(meds(med(status="discontinued")), "")
    assert not result.passed


def test_held_with_holding_language_passes_status_consistency():
    held = med(status="held", evidence="hold metoprolol 50 mg BID while in hospital")
    assert check_status_consistency(meds(held), "").passed
