"""The checks of a medication list: each takes the parsed list and the note, and says which
medications fail and why."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, get_args

from ponder.verify import CheckResult
from tasks.dose import Dose, dose_problem, doses_in, implausible_for_unit, parse_dose
from tasks.drug_lexicon import find_drug
from tasks.grounding import normalise_text, occurs_as_words, occurs_in, shorten
from tasks.medication_frequency import FREQUENCIES, normalise_frequency

if TYPE_CHECKING:
    from tasks.medrec_extraction import Medication, MedicationList

_STOPPING = re.compile(
    r"\b(?:stop\w*|discontinu\w*|d/c|dc'?d|hold\w*|held|no longer|quit\w*|ceas\w*|off)\b"
)
# Words in evidence that name a route, and the routes they allow.
_ROUTE_CUES: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = tuple(
    (re.compile(rf"(?<!\w)(?:{cue})(?!\w)"), frozenset(routes))
    for cue, routes in (
        (r"by mouth|orally|oral|po|p\.o\.", {"oral"}),
        (r"intravenous\w*|iv", {"IV"}),
        (r"intramuscular\w*|im", {"IM"}),
        (r"subcutaneous\w*|subcut|sq|sc", {"subcutaneous"}),
        (r"inhal\w*|nebuli[sz]\w*|puffs?", {"inhaled"}),
        (r"sublingual\w*|under the tongue", {"sublingual"}),
        (r"rectal\w*|suppositor\w*", {"rectal"}),
        (r"transdermal|patch(?:es)?", {"transdermal", "topical"}),
        (r"eye drops?|ophthalmic|each eye|both eyes", {"ophthalmic"}),
        (r"ear drops?|otic|each ear", {"otic"}),
        (r"nasal\w*|nostrils?", {"nasal"}),
        (r"topical\w*|apply|cream|ointment|gel|lotion", {"topical", "transdermal"}),
    )
)


def _label(m: Medication) -> str:
    return shorten(m.name, 40)


def _fraction_passing(
    output: MedicationList, findings: list[str], notes: list[str] | None = None
) -> CheckResult:
    if not output.medications:
        return CheckResult(True, 1.0)
    score = 1 - len(findings) / len(output.medications)
    return CheckResult(not findings, score, findings + (notes or []))


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
        f"{_label(m)}: evidence '{shorten(m.evidence)}' does not occur in the document"
        for m in output.medications
        if not occurs_in(m.evidence, normalised_document)
    ]
    return _fraction_passing(output, findings)


def check_evidence_names_drug(output: MedicationList, document: str) -> CheckResult:
    # Evidence copied from the note but about another line is grounded and still wrong.
    findings = [
        f"{_label(m)}: evidence '{shorten(m.evidence)}' does not name the medication"
        for m in output.medications
        if not occurs_as_words(m.name, normalise_text(m.evidence))
    ]
    return _fraction_passing(output, findings)


def check_dose_format(output: MedicationList, document: str) -> CheckResult:
    findings = [
        f"{_label(m)}: dose '{m.dose}' {problem}"
        for m in output.medications
        if (problem := dose_problem(m.dose)) is not None
    ]
    return _fraction_passing(output, findings)


def check_dose_plausibility(output: MedicationList, document: str) -> CheckResult:
    findings = [
        f"{_label(m)}: {problem}"
        for m in output.medications
        if (problem := implausible_for_unit(m.dose, m.unit)) is not None
    ]
    return _fraction_passing(output, findings)


def _stated(m: Medication, stated: list[Dose]) -> bool:
    parsed = parse_dose(m.dose)
    return parsed is not None and any(
        (d.low, d.high) == parsed and d.unit == m.unit for d in stated
    )


def check_dose_in_evidence(output: MedicationList, document: str) -> CheckResult:
    """The dose and unit are read from the evidence ("forty milligrams" is 40 mg). A stopped
    or held medication's evidence may give no dose; a dose that contradicts it still fails."""
    findings, notes = [], []
    for m in output.medications:
        stated = doses_in(m.evidence)
        if _stated(m, stated):
            continue
        if not stated and m.status in ("discontinued", "held"):
            notes.append(f"{_label(m)}: evidence states no dose (accepted: status {m.status})")
        elif not stated:
            findings.append(
                f"{_label(m)}: dose {m.dose} {m.unit} is not stated in its evidence "
                f"'{shorten(m.evidence)}'"
            )
        else:
            said = ", ".join(d.text for d in stated)
            findings.append(f"{_label(m)}: dose {m.dose} {m.unit} but its evidence says {said}")
    return _fraction_passing(output, findings, notes)


def check_frequency_vocabulary(output: MedicationList, document: str) -> CheckResult:
    findings = [
        f"{_label(m)}: frequency '{m.frequency}' is not one of {', '.join(FREQUENCIES)}"
        for m in output.medications
        if normalise_frequency(m.frequency) is None
    ]
    return _fraction_passing(output, findings)


def check_route_vocabulary(output: MedicationList, document: str) -> CheckResult:
    """The route is in the vocabulary, and agrees with the route its evidence names, if any."""
    findings = []
    for m in output.medications:
        vocabulary = set(get_args(type(m).model_fields["route"].annotation))
        if m.route not in vocabulary:
            findings.append(f"{_label(m)}: route '{m.route}' is not one of {sorted(vocabulary)}")
            continue
        evidence = normalise_text(m.evidence)
        allowed = [routes for cue, routes in _ROUTE_CUES if cue.search(evidence)]
        if allowed and not any(m.route in routes for routes in allowed) and m.route != "other":
            named = ", ".join(sorted(set().union(*allowed)))
            findings.append(f"{_label(m)}: route '{m.route}' but its evidence says {named}")
    return _fraction_passing(output, findings)


def check_status_consistency(output: MedicationList, document: str) -> CheckResult:
    # Only one direction: an active drug's evidence may say "hold if HR < 55" and still be active.
    stopped = [m for m in output.medications if m.status in ("discontinued", "held")]
    findings = [
        f"{_label(m)}: status '{m.status}' but its evidence has no stopping or holding language"
        for m in stopped
        if not _STOPPING.search(normalise_text(m.evidence))
    ]
    if not stopped:
        return CheckResult(True, 1.0)
    return CheckResult(not findings, 1 - len(findings) / len(stopped), findings)


def identity(m: Medication) -> tuple[str, ...]:
    # Name alone is too coarse: a note may stop one dose of a drug and start another.
    frequency = normalise_frequency(m.frequency) or normalise_text(m.frequency)
    return (normalise_text(m.name), normalise_text(m.dose), m.unit, m.route, frequency)


def check_no_duplicates(output: MedicationList, document: str) -> CheckResult:
    if not output.medications:
        return CheckResult(True, 1.0)
    counts = Counter(identity(m) for m in output.medications)
    findings = [
        f"{name} {dose} {unit} {route} {frequency} is listed {n} times"
        for (name, dose, unit, route, frequency), n in counts.items()
        if n > 1
    ]
    return CheckResult(not findings, len(counts) / len(output.medications), findings)


def check_drug_lexicon(output: MedicationList, document: str) -> CheckResult:
    """Each name is a drug the lexicon knows; a near spelling passes and is recorded."""
    findings: list[str] = []
    notes: list[str] = []
    for m in output.medications:
        match = find_drug(m.name)
        if match is None:
            findings.append(f"name '{shorten(m.name)}' is not a drug name the lexicon knows")
        elif match.near is not None:
            notes.append(f"name '{shorten(m.name)}' taken as '{match.near}' ({match.generic})")
    return _fraction_passing(output, findings, notes)
