"""The ``medrec_extraction`` task type: its prompt, its verifiers in order, and the keys
candidates vote with."""

from __future__ import annotations

from ponder.tasktypes import TaskType
from ponder.verify import VerifierSpec
from tasks.common.grounding import normalise_text
from tasks.medrec_extraction.checks import (
    check_completeness,
    check_dose_format,
    check_dose_in_evidence,
    check_dose_plausibility,
    check_drug_lexicon,
    check_evidence_grounding,
    check_evidence_names_drug,
    check_frequency_in_evidence,
    check_frequency_vocabulary,
    check_name_grounding,
    check_no_duplicates,
    check_route_vocabulary,
    check_status_consistency,
)
from tasks.medrec_extraction.difficulty import difficulty_signals
from tasks.medrec_extraction.dose import MAX_DOSE_BY_UNIT, MAX_PLAUSIBLE_DOSE
from tasks.medrec_extraction.frequency import normalise_frequency
from tasks.medrec_extraction.schema import Medication, MedicationList


def item_key(m: Medication) -> tuple[str, str]:
    """One medication's voting key: its name and frequency, ignoring case and wording."""
    frequency = m.frequency or ""
    return (normalise_text(m.name), normalise_frequency(frequency) or normalise_text(frequency))


def normalise(output: MedicationList) -> frozenset[tuple[str, str]]:
    """Voting key: which drugs at which frequencies, ignoring order and wording."""
    return frozenset(item_key(m) for m in output.medications)


TASK = TaskType(
    name="medrec_extraction",
    description="Extract the medication list from a clinical note, each with its evidence.",
    output_model=MedicationList,
    template="prompts/medrec_extraction/extract.j2",
    system_prompt=(
        "You are a careful clinical pharmacist reconciling medications. You copy evidence "
        "exactly from the note, never guess a dose, and answer only with JSON."
    ),
    verifiers=(
        VerifierSpec(
            "completeness",
            check_completeness,
            "Every drug the note names (lexicon names, brands for their generic; not a lab "
            "analyte such as 'potassium 4.6 mmol/L') has an item, with a status saying why "
            "where it is not taken; an empty list passes only a note that names none.",
        ),
        VerifierSpec(
            "name_grounding",
            check_name_grounding,
            "Every medication name occurs in the note as whole words, ignoring case.",
        ),
        VerifierSpec(
            "evidence_grounding",
            check_evidence_grounding,
            "Every evidence quote occurs in the note, ignoring case, whitespace and quote style.",
        ),
        VerifierSpec(
            "drug_lexicon",
            check_drug_lexicon,
            "Every name is a drug in the lexicon of common generic and brand names "
            "(tasks/medrec_extraction/data/drug_names.txt); a near spelling passes and is "
            "recorded.",
        ),
        VerifierSpec(
            "dose_format",
            check_dose_format,
            f"Every dose is a positive number or range, at most {MAX_PLAUSIBLE_DOSE}, with "
            "a unit; or no dose and no unit.",
        ),
        VerifierSpec(
            "dose_plausibility",
            check_dose_plausibility,
            "No dose is above the largest plausible single dose for its unit ("
            + ", ".join(f"{limit:g} {unit}" for unit, limit in MAX_DOSE_BY_UNIT.items())
            + ").",
        ),
        VerifierSpec(
            "frequency_vocabulary",
            check_frequency_vocabulary,
            "Every frequency maps to the controlled vocabulary (daily, BID, q8h, PRN, ...).",
        ),
        # Required, after the first evaluation: without them a grounded "evidence" of "1"
        # or "20" let a right name with an invented dose and unit pass as checked.
        VerifierSpec(
            "evidence_names_drug",
            check_evidence_names_drug,
            "Each evidence quote names its medication.",
        ),
        VerifierSpec(
            "dose_in_evidence",
            check_dose_in_evidence,
            "The dose and unit are stated in the evidence (words such as 'forty milligrams' "
            "count); a stopped, held, allergy or not-taken medication's evidence may state "
            "none; no dose given where the evidence states one for the drug fails.",
        ),
        VerifierSpec(
            "frequency_in_evidence",
            check_frequency_in_evidence,
            "Where the evidence states how often the drug is taken, the frequency agrees "
            "(once daily at any time of day counts as daily).",
        ),
        VerifierSpec(
            "route_vocabulary",
            check_route_vocabulary,
            "Every route is in the vocabulary and agrees with a route its evidence names.",
            weight=0.5,
        ),
        VerifierSpec(
            "status_consistency",
            check_status_consistency,
            "A discontinued or held medication has stopping or holding words in its evidence; "
            "an allergy, allergy words; a drug not taken, not-taking words.",
            weight=0.5,
            required=False,
        ),
        VerifierSpec(
            "no_duplicates",
            check_no_duplicates,
            "No medication is listed twice with the same dose, unit, route and frequency.",
            weight=0.5,
            required=False,
        ),
    ),
    # 10 medications with up to 300 characters of evidence each do not fit in 512 tokens.
    max_output_tokens=1536,
    normalise=normalise,
    items_field="medications",
    item_key=item_key,
    difficulty_signals=difficulty_signals,
)
