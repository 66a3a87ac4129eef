"""Medication reconciliation: extract a structured medication list from a clinical note."""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.tasktypes import TaskType
from ponder.verify import CheckResult, VerifierSpec
from tasks.grounding import normalise_text, occurs_as_words, occurs_in, shorten
from tasks.medication_frequency import FREQUENCIES, normalise_frequency

MAX_PLAUSIBLE_DOSE = 100_000
"""Above any real dose in any unit the schema allows (heparin reaches tens of thousands)."""

Unit = Literal[
    "mg", "mcg", "g", "mL", "units", "mEq", "puffs", "drops", "sprays", "tablets", "capsules",
    "patch", "other",
]  # fmt: skip
Route = Literal[
    "oral", "IV", "IM", "subcutaneous", "topical", "inhaled", "sublingual", "rectal",
    "transdermal", "ophthalmic", "otic", "nasal", "other",
]  # fmt: skip


class Medication(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60)
    dose: str = Field(min_length=1, max_length=20)
    """A number or range ("50", "1-2"); the unit goes in ``unit``."""
    unit: Unit
    route: Route
    frequency: str = Field(min_length=1, max_length=30)
    status: Literal["active", "new", "changed", "discontinued", "held"]
    evidence: str = Field(min_length=1, max_length=300)
    """The note's own words about this medication."""


class MedicationList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    medications: list[Medication] = Field(max_length=10)


_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_DOSE = re.compile(rf"^{_NUMBER}(?:\s*(?:-|to)\s*{_NUMBER})?$")
_STOPPING = re.compile(
    r"\b(?:stop\w*|discontinu\w*|d/c|dc'?d|hold\w*|held|no longer|quit\w*|ceas\w*|off)\b"
)


def dose_problem(dose: str) -> str | None:
    """Why ``dose`` is not a positive number or range, or None when it is one."""
    text = normalise_text(dose)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # "1,000" is a thousand
    match = _DOSE.match(text)
    if match is None:
        return "is not a number or a range such as '1-2' (the unit goes in 'unit')"
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) else low
    if low <= 0:
        return "is not positive"
    if high < low:
        return "is a range that runs backwards"
    if high > MAX_PLAUSIBLE_DOSE:
        return f"is implausibly large (over {MAX_PLAUSIBLE_DOSE})"
    return None


def _fraction_passing(output: MedicationList, findings: list[str]) -> CheckResult:
    if not output.medications:
        return CheckResult(True, 1.0)
    return CheckResult(not findings, 1 - len(findings) / len(output.medications), findings)


def check_name_grounding(output: MedicationList, document: str) -> CheckResult:
    normalised_document = normalise_text(document)
    # A name must have letters: punctuation alone "occurs" in any note.
    findings = [
        f"name '{shorten(m.name)}' does not occur in the document"
        for m in output.medications
        if sum(ch.isalpha() for ch in m.name) < 2
        or not occurs_as_words(m.name, normalised_document)
    ]
    return _fraction_passing(output, findings)


def check_evidence_grounding(output: MedicationList, document: str) -> CheckResult:
    normalised_document = normalise_text(document)
    findings = [
        f"{shorten(m.name, 40)}: evidence '{shorten(m.evidence)}' does not occur in the document"
        for m in output.medications
        if not occurs_in(m.evidence, normalised_document)
    ]
    return _fraction_passing(output, findings)


def check_dose_format(output: MedicationList, document: str) -> CheckResult:
    findings = [
        f"{shorten(m.name, 40)}: dose '{m.dose}' {problem}"
        for m in output.medications
        if (problem := dose_problem(m.dose)) is not None
    ]
    return _fraction_passing(output, findings)


def check_frequency_vocabulary(output: MedicationList, document: str) -> CheckResult:
    findings = [
        f"{shorten(m.name, 40)}: frequency '{m.frequency}' is not one of {', '.join(FREQUENCIES)}"
        for m in output.medications
        if normalise_frequency(m.frequency) is None
    ]
    return _fraction_passing(output, findings)


def check_status_consistency(output: MedicationList, document: str) -> CheckResult:
    # Only one direction: an active drug's evidence may say "hold if HR < 55" and still be active.
    stopped = [m for m in output.medications if m.status in ("discontinued", "held")]
    findings = [
        f"{shorten(m.name, 40)}: status '{m.status}' but its evidence has no stopping or "
        "holding language"
        for m in stopped
        if not _STOPPING.search(normalise_text(m.evidence))
    ]
    if not stopped:
        return CheckResult(True, 1.0)
    return CheckResult(not findings, 1 - len(findings) / len(stopped), findings)


def _identity(m: Medication) -> tuple[str, ...]:
    # Name alone is too coarse: a note may stop one dose of a drug and start another.
    frequency = normalise_frequency(m.frequency) or normalise_text(m.frequency)
    return (normalise_text(m.name), normalise_text(m.dose), m.unit, m.route, frequency)


def check_no_duplicates(output: MedicationList, document: str) -> CheckResult:
    if not output.medications:
        return CheckResult(True, 1.0)
    counts = Counter(_identity(m) for m in output.medications)
    findings = [
        f"{name} {dose} {unit} {route} {frequency} is listed {n} times"
        for (name, dose, unit, route, frequency), n in counts.items()
        if n > 1
    ]
    return CheckResult(not findings, len(counts) / len(output.medications), findings)


def item_key(m: Medication) -> tuple[str, str]:
    """One medication's voting key: its name and frequency, ignoring case and wording."""
    return (normalise_text(m.name), normalise_frequency(m.frequency) or normalise_text(m.frequency))


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
            "dose_format",
            check_dose_format,
            f"Every dose is a positive number or range, at most {MAX_PLAUSIBLE_DOSE}.",
        ),
        VerifierSpec(
            "frequency_vocabulary",
            check_frequency_vocabulary,
            "Every frequency maps to the controlled vocabulary (daily, BID, q8h, PRN, ...).",
        ),
        VerifierSpec(
            "status_consistency",
            check_status_consistency,
            "A discontinued or held medication has stopping or holding words in its evidence.",
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
)
