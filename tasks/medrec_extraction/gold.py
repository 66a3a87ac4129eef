"""Gold medication lists from SIMORD, and mutations of them with one error each, to measure
the medication verifiers (``ponder eval verifiers --task medrec_extraction``).

SIMORD labels an encounter's medication orders with a free-text description ("lasix 40
milligrams a day") and the transcript turns it came from. A gold item takes its drug, dose and
frequency from the description, its evidence from the first turn (provenance first) that names
the drug, and where the description leaves a value out, the value its evidence states for that
drug. SIMORD labels no route: the route is the one the description or evidence names, else the
one the unit implies, else oral."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

from ponder.evaluation.loaders import DatasetError
from ponder.evaluation.mutation import GoldCase, Mutant, MutationSuite, Skipped
from ponder.tasktypes import list_limit
from tasks.common.grounding import normalise_text, occurs_as_words
from tasks.medrec_extraction.checks import own_words, routes_named
from tasks.medrec_extraction.dose import doses_in
from tasks.medrec_extraction.drug_lexicon import find_drug, load_lexicon
from tasks.medrec_extraction.frequency import FREQUENCIES, frequencies_in, same_schedule
from tasks.medrec_extraction.mentions import medication_mentions
from tasks.medrec_extraction.schema import Medication, MedicationList, Route, Status, Unit

MAX_EVIDENCE = 300
_LEAD = 60
"""Characters of a long turn kept before the drug name, so evidence reads as a sentence."""
_UNIT_ROUTES = {"puffs": "inhaled", "sprays": "nasal", "patch": "transdermal"}
_OTHER_UNITS = {"mg": "mcg", "mcg": "mg", "g": "mg", "mL": "mg", "units": "mg", "mEq": "mg",
                "puffs": "tablets", "drops": "mL", "sprays": "puffs", "tablets": "capsules",
                "capsules": "tablets", "patch": "tablets"}  # fmt: skip
_COMMON_ROUTES = ("oral", "IV", "inhaled", "topical", "subcutaneous", "IM", "nasal", "rectal")

CLASSES = ("omit_item", "invented_item", "wrong_dose", "wrong_unit", "wrong_frequency",
           "wrong_route")  # fmt: skip


def gold_cases(path: Path) -> Iterator[GoldCase | Skipped]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(path, None, f"not a SIMORD file ({exc})") from None
    if not isinstance(records, list):
        raise DatasetError(path, None, "not a SIMORD file: expected a JSON array")
    for index, record in enumerate(records):
        try:
            turns = [(int(t["turn_id"]), f"{t['speaker']}: {t['transcript']}")
                     for t in record["transcript"]]  # fmt: skip
            orders = [o for o in record["expected_orders"] if o["order_type"] == "medication"]
            case_id = str(record.get("id", f"item-{index}"))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(path, None, f"encounter {index}: no {exc}") from None
        yield _case(case_id, turns, orders)


def _case(case_id: str, turns: list[tuple[int, str]], orders: list[Any]) -> GoldCase | Skipped:
    document = "\n".join(text for _, text in turns)
    items = []
    for order in orders:
        item = _gold_item(str(order.get("description", "")), order.get("provenance") or [],
                          turns, document)  # fmt: skip
        if isinstance(item, str):
            return Skipped(case_id, item)
        items.append(item)
    if len(items) > _max_items():
        return Skipped(case_id, f"more than {_max_items()} medication orders (the schema's limit)")
    return GoldCase(case_id, document, MedicationList(medications=items))


def _max_items() -> int:
    limit = list_limit(MedicationList, "medications")
    assert limit is not None  # the schema bounds the list
    return limit


def _gold_item(
    description: str, provenance: list[int], turns: list[tuple[int, str]], document: str
) -> Medication | str:
    match = find_drug(description)
    if match is None:
        return "an order names no drug the lexicon knows (a class such as 'antibiotic')"
    name = _name_in_document(match.generic, match.matched, document)
    if name is None:
        return "an order's drug is not named in the transcript"
    evidence = _evidence(name, description, provenance, turns)
    own = own_words(name, evidence)
    doses = doses_in(description) or doses_in(own)
    dose = doses[0] if doses else None
    stated = frequencies_in(_after_name(description, name)) or frequencies_in(own)
    folded = normalise_text(description)
    status: Status = ("discontinued" if re.match(r"(?:stop|discontinu|d/c)", folded)
              else "changed" if re.search(r"\b(?:increase|decrease|change|reduce)", folded)
              else "new")  # fmt: skip
    return Medication(
        name=name,
        dose=None if dose is None else _number(dose.low, dose.high),
        unit=None if dose is None else dose.unit,  # type: ignore[arg-type]
        route=_route(description, own, dose.unit if dose else None),
        frequency=stated[0] if stated else None,
        status=status,
        evidence=evidence,
    )


def _name_in_document(generic: str, matched: str, document: str) -> str | None:
    """The drug as the transcript names it: the description's word when the transcript has
    it, else the transcript's own name for the same drug (a brand for its generic)."""
    if occurs_as_words(matched, normalise_text(document)):
        return matched
    return next((m.text for m in medication_mentions(document) if m.generic == generic), None)


def _after_name(description: str, name: str) -> str:
    folded = normalise_text(description)
    at = folded.find(normalise_text(name))
    return folded[at:] if at >= 0 else folded


def _evidence(name: str, description: str, provenance: list[int],
              turns: list[tuple[int, str]]) -> str:  # fmt: skip
    """A provenance turn that names the drug (one that also states the description's dose,
    if any does), else the first turn that names it; cut to 300 characters around the name."""
    folded_name = normalise_text(name)
    wanted = {(d.low, d.unit) for d in doses_in(description)}
    ordered = [t for t in turns if t[0] in provenance] + [
        t for t in turns if t[0] not in provenance
    ]
    naming = [text for _, text in ordered if occurs_as_words(folded_name, normalise_text(text))]
    with_dose = [
        t for t in naming if wanted & {(d.low, d.unit) for d in doses_in(own_words(name, t))}
    ]
    turn = (with_dose or naming)[0]  # the name occurs in the document, so some turn names it
    speaker_end = turn.index(": ") + 2
    text = turn[speaker_end:]
    if len(text) <= MAX_EVIDENCE:
        return text
    at = normalise_text(text).find(folded_name)
    start = max(0, min(at - _LEAD, len(text) - MAX_EVIDENCE))
    window = text[start : start + MAX_EVIDENCE]
    # Whole words only: drop a cut word at either end.
    if start > 0 and " " in window:
        window = window[window.index(" ") + 1 :]
    if start + MAX_EVIDENCE < len(text) and " " in window:
        window = window[: window.rindex(" ")]
    return window.strip()


def _number(low: float, high: float) -> str:
    def plain(x: float) -> str:
        return f"{x:g}" if x != int(x) else str(int(x))

    return plain(low) if low == high else f"{plain(low)}-{plain(high)}"


def _route(description: str, own: str, unit: str | None) -> Route:
    named = routes_named(description) or routes_named(own)
    if named:
        return sorted(named[0])[0]  # type: ignore[return-value]
    return _UNIT_ROUTES.get(unit or "", "oral")  # type: ignore[return-value]


def mutants(case: GoldCase, rng: random.Random) -> list[Mutant]:
    answer = case.answer
    assert isinstance(answer, MedicationList)
    items = list(answer.medications)
    out: list[Mutant] = []

    def replaced(i: int, **changes: Any) -> MedicationList:
        new = list(items)
        new[i] = items[i].model_copy(update=changes)
        return MedicationList(medications=new)

    if items:
        i = rng.randrange(len(items))
        rest = items[:i] + items[i + 1 :]
        out.append(Mutant("omit_item", MedicationList(medications=rest),
                          f"dropped '{items[i].name}'"))  # fmt: skip
    invented = _invented_drug(case.document, rng)
    if invented is not None and len(items) < _max_items():
        source = items[rng.randrange(len(items))].evidence if items else case.document[:200]
        extra = Medication(name=invented, dose="10", unit="mg", route="oral", frequency="daily",
                           status="new", evidence=source.strip() or "note")  # fmt: skip
        out.append(Mutant("invented_item", MedicationList(medications=[*items, extra]),
                          f"added '{invented}', which the note does not name"))  # fmt: skip
    dosed = [i for i, m in enumerate(items) if m.dose is not None and m.unit is not None]
    if dosed:
        i = rng.choice(dosed)
        low = float(str(items[i].dose).split("-")[0].replace(",", ""))
        wrong = _number(*(2 * [low * rng.choice((2, 10, 0.5))]))
        out.append(Mutant("wrong_dose", replaced(i, dose=wrong),
                          f"'{items[i].name}' dose {items[i].dose} -> {wrong}"))  # fmt: skip
        i = rng.choice(dosed)
        unit: Unit = _OTHER_UNITS.get(str(items[i].unit), "mg")  # type: ignore[assignment]
        out.append(Mutant("wrong_unit", replaced(i, unit=unit),
                          f"'{items[i].name}' unit {items[i].unit} -> {unit}"))  # fmt: skip
    timed = [i for i, m in enumerate(items)
             if m.frequency and frequencies_in(own_words(m.name, m.evidence))]  # fmt: skip
    if timed:
        i = rng.choice(timed)
        given = str(items[i].frequency)
        choices = [f for f in FREQUENCIES if not same_schedule(f, given) and f != "PRN"]
        wrong_frequency = rng.choice(choices)
        out.append(Mutant("wrong_frequency", replaced(i, frequency=wrong_frequency),
                          f"'{items[i].name}' frequency {given} -> {wrong_frequency}"))  # fmt: skip
    routed = [i for i, m in enumerate(items) if routes_named(own_words(m.name, m.evidence))]
    if routed:
        i = rng.choice(routed)
        allowed = set().union(*routes_named(own_words(items[i].name, items[i].evidence)))
        wrong_route = rng.choice([r for r in _COMMON_ROUTES if r not in allowed])
        what = f"'{items[i].name}' route {items[i].route} -> {wrong_route}"
        out.append(Mutant("wrong_route", replaced(i, route=wrong_route), what))
    return out


def _invented_drug(document: str, rng: random.Random) -> str | None:
    named = {m.generic for m in medication_mentions(document)}
    folded = normalise_text(document)
    candidates = sorted(
        g for g in set(load_lexicon().generic_of.values())
        if g not in named and " " not in g and not occurs_as_words(g, folded)
    )  # fmt: skip
    return rng.choice(candidates) if candidates else None


assert set(get_args(Unit)) >= set(_OTHER_UNITS.values())

SUITE = MutationSuite(
    task="medrec_extraction",
    dataset_format="simord",
    classes=CLASSES,
    gold_cases=gold_cases,
    mutants=mutants,
)
