"""The checks of a medication list: each takes the parsed list and the note, and says which
medications fail and why."""

from __future__ import annotations

import re
from collections import Counter

from ponder.verify import CheckResult
from tasks.common.grounding import normalise_text, occurs_as_words, occurs_in, shorten
from tasks.medrec_extraction.dose import (
    Dose,
    dose_problem,
    doses_in,
    implausible_for_unit,
    parse_dose,
)
from tasks.medrec_extraction.drug_lexicon import find_drug, same_drug
from tasks.medrec_extraction.frequency import (
    FREQUENCIES,
    frequencies_in,
    normalise_frequency,
    same_schedule,
)
from tasks.medrec_extraction.mentions import Mention, context, medication_mentions
from tasks.medrec_extraction.schema import ROUTES, Medication, MedicationList

_STOPPING = re.compile(
    r"\b(?:stop\w*|discontinu\w*|d/c|dc'?d|hold\w*|held|no longer|quit\w*|ceas\w*|off)\b"
)
_ALLERGY = re.compile(r"\b(?:allerg\w*|reaction\w*|rash\w*|hives|anaphyla\w*|intoleran\w*)\b")
_NOT_TAKING = re.compile(
    r"\b(?:not taking|n't take|not take|never took|stopped|ran out|no longer|does not take|"
    r"doesn't take|off)\b|\bnot\b.{0,20}\btaking\b"
)
_STATUS_CUES = {
    "discontinued": (_STOPPING, "stopping or holding"),
    "held": (_STOPPING, "stopping or holding"),
    "allergy": (_ALLERGY, "allergy or reaction"),
    "not_taking": (_NOT_TAKING, "not-taking"),
}
NO_DOSE_STATUSES = frozenset({"discontinued", "held", "allergy", "not_taking"})
"""Statuses whose evidence need not state a dose: a stopped drug, an allergy."""
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
    """A dose is a positive number or range with a unit, or absent together with its unit."""
    findings = []
    for m in output.medications:
        if m.dose is None:
            if m.unit is not None:
                findings.append(f"{_label(m)}: unit {m.unit} given without a dose")
        elif (problem := dose_problem(m.dose)) is not None:
            findings.append(f"{_label(m)}: dose '{m.dose}' {problem}")
        elif m.unit is None:
            findings.append(f"{_label(m)}: dose {m.dose} given without a unit")
    return _fraction_passing(output, findings)


def check_dose_plausibility(output: MedicationList, document: str) -> CheckResult:
    findings = [
        f"{_label(m)}: {problem}"
        for m in output.medications
        if m.dose is not None
        and m.unit is not None
        and (problem := implausible_for_unit(m.dose, m.unit)) is not None
    ]
    return _fraction_passing(output, findings)


def _stated(m: Medication, stated: list[Dose]) -> bool:
    if m.dose is None:
        return False
    parsed = parse_dose(m.dose)
    return parsed is not None and any(
        (d.low, d.high) == parsed and d.unit == m.unit for d in stated
    )


def check_dose_in_evidence(output: MedicationList, document: str) -> CheckResult:
    """The dose and unit are read from the evidence ("forty milligrams" is 40 mg). A stopped
    or held medication's evidence may give no dose; a dose that contradicts it still fails."""
    findings, notes = [], []
    for m in output.medications:
        if m.dose is None:
            # No dose given: right only if the evidence states none for this drug.
            own = doses_in(own_words(m.name, m.evidence))
            if own and m.status not in NO_DOSE_STATUSES:
                said = ", ".join(d.text for d in own)
                findings.append(f"{_label(m)}: no dose given, but its evidence says {said}")
            continue
        stated = doses_in(m.evidence)
        if _stated(m, stated):
            continue
        if not stated and m.status in NO_DOSE_STATUSES:
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
        if m.frequency is not None and normalise_frequency(m.frequency) is None
    ]
    return _fraction_passing(output, findings)


def own_words(name: str, evidence: str) -> str:
    """The part of ``evidence`` about the drug ``name``: from where it names the drug to
    where it names another one, so "stop advil, tylenol 500 mg twice a day" gives advil no
    dose or frequency."""
    mentions = medication_mentions(evidence)
    own = [i for i, m in enumerate(mentions) if same_drug(name, m.text)]
    if not own:
        return evidence
    first = own[0]
    later = [m for m in mentions[first + 1 :] if not same_drug(name, m.text)]
    end = later[0].start if later else len(evidence)
    return evidence[mentions[first].start : end]


def check_frequency_in_evidence(output: MedicationList, document: str) -> CheckResult:
    """Where the evidence states how often the drug is taken, the frequency agrees with it (a
    frequency once a day at another time of day counts as agreeing); none given where it
    states one is a finding. Evidence that states no frequency says nothing either way."""
    findings = []
    for m in output.medications:
        stated = frequencies_in(own_words(m.name, m.evidence))
        if not stated:
            continue
        said = ", ".join(dict.fromkeys(stated))
        given = normalise_frequency(m.frequency) if m.frequency is not None else None
        if m.frequency is None:
            if m.status not in NO_DOSE_STATUSES:
                findings.append(f"{_label(m)}: no frequency given, but its evidence says {said}")
        elif given is not None and not any(same_schedule(given, s) for s in stated):
            findings.append(f"{_label(m)}: frequency {given} but its evidence says {said}")
    return _fraction_passing(output, findings)


def check_completeness(output: MedicationList, document: str) -> CheckResult:
    """Every drug the note names is on the list (a brand counts for its generic), whatever
    its status: a drug stopped, held, refused or not taken is listed with that status, and an
    allergy with status ``allergy``. A missed medication is the most dangerous error a
    reconciliation can make, so an empty list passes only for a note that names no drug."""
    mentions = medication_mentions(document)
    if not mentions:
        return CheckResult(True, 1.0)
    first: dict[str, Mention] = {}
    for mention in mentions:
        first.setdefault(mention.generic, mention)
    listed = [(find_drug(m.name), m.name) for m in output.medications]
    findings = []
    for generic, mention in first.items():
        if any(
            (match is not None and match.generic == generic) or same_drug(name, mention.text)
            for match, name in listed
        ):
            continue
        findings.append(
            f"missing medication: the note names '{shorten(mention.text, 40)}' at "
            f"{mention.start}-{mention.end} ('{shorten(context(document, mention), 100)}') "
            "but the list has no item for it; list it, with status discontinued, held, "
            "allergy or not_taking if it is not taken"
        )
    return CheckResult(not findings, 1 - len(findings) / len(first), findings)


def check_route_vocabulary(output: MedicationList, document: str) -> CheckResult:
    """The route is in the vocabulary, and agrees with the route its evidence names for the
    drug, if any (the words about another drug in the same quote do not count)."""
    findings = []
    for m in output.medications:
        if m.route not in ROUTES:
            findings.append(f"{_label(m)}: route '{m.route}' is not one of {sorted(ROUTES)}")
            continue
        allowed = routes_named(own_words(m.name, m.evidence))
        if allowed and not any(m.route in routes for routes in allowed) and m.route != "other":
            named = ", ".join(sorted(set().union(*allowed)))
            findings.append(f"{_label(m)}: route '{m.route}' but its evidence says {named}")
    return _fraction_passing(output, findings)


def routes_named(text: str) -> list[frozenset[str]]:
    """The routes each route word in ``text`` allows ("by mouth": oral), in table order."""
    folded = normalise_text(text)
    return [routes for cue, routes in _ROUTE_CUES if cue.search(folded)]


def check_status_consistency(output: MedicationList, document: str) -> CheckResult:
    # Only one direction: an active drug's evidence may say "hold if HR < 55" and still be active.
    stopped = [m for m in output.medications if m.status in _STATUS_CUES]
    findings = [
        f"{_label(m)}: status '{m.status}' but its evidence has no "
        f"{_STATUS_CUES[m.status][1]} language"
        for m in stopped
        if not _STATUS_CUES[m.status][0].search(normalise_text(m.evidence))
    ]
    if not stopped:
        return CheckResult(True, 1.0)
    return CheckResult(not findings, 1 - len(findings) / len(stopped), findings)


def identity(m: Medication) -> tuple[str, ...]:
    # Name alone is too coarse: a note may stop one dose of a drug and start another.
    frequency = normalise_frequency(m.frequency or "") or normalise_text(m.frequency or "")
    return (normalise_text(m.name), normalise_text(m.dose or ""), m.unit or "", m.route, frequency)


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
