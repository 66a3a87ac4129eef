"""Doses: read "50 mg", "forty milligrams" or "2 puffs" out of text, parse a whole medication
line ("metoprolol 50 mg BID"), and judge whether a dose is plausible for its unit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.common.grounding import normalise_text
from tasks.medrec_extraction.frequency import normalise_frequency

MAX_PLAUSIBLE_DOSE = 100_000
"""Above any real dose in any unit the schema allows (heparin reaches tens of thousands)."""

MAX_DOSE_BY_UNIT: dict[str, float] = {
    "mg": 5_000, "mcg": 5_000, "g": 100, "mL": 1_000, "units": 100_000, "mEq": 200,
    "puffs": 12, "drops": 20, "sprays": 8, "tablets": 10, "capsules": 10, "patch": 4,
}  # fmt: skip
"""The largest single dose we accept per unit: above any usual adult dose (metformin 1000 mg,
vitamin D 50000 units, a litre of fluid), so only slips such as "500 g" are caught."""

UNIT_WORDS: dict[str, str] = {
    "mg": "mg", "milligram": "mg", "milligrams": "mg", "mgs": "mg",
    "mcg": "mcg", "microgram": "mcg", "micrograms": "mcg", "ug": "mcg", "µg": "mcg",
    "g": "g", "gm": "g", "gram": "g", "grams": "g",
    "ml": "mL", "milliliter": "mL", "milliliters": "mL", "millilitre": "mL", "cc": "mL",
    "unit": "units", "units": "units", "u": "units", "iu": "units",
    "meq": "mEq", "puff": "puffs", "puffs": "puffs", "inhalation": "puffs",
    "drop": "drops", "drops": "drops", "gtt": "drops", "gtts": "drops",
    "spray": "sprays", "sprays": "sprays",
    "tablet": "tablets", "tablets": "tablets", "tab": "tablets", "tabs": "tablets",
    "pill": "tablets", "pills": "tablets",
    "capsule": "capsules", "capsules": "capsules", "cap": "capsules", "caps": "capsules",
    "patch": "patch", "patches": "patch",
}  # fmt: skip

_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}  # fmt: skip
NUMBER_WORDS: dict[str, float] = {w: i for i, w in enumerate(_SMALL)} | _TENS | {"half": 0.5}

_NUMBER_WORD = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
# "two hundred fifty", "forty", "1,000", "0.5", ".5", "one and a half"
_SPOKEN = rf"(?:(?:{_NUMBER_WORD})(?:[ -](?:{_NUMBER_WORD}|hundred|thousand|and|a))*)"
_NUMERIC = r"(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+)"
_AMOUNT = rf"(?:{_NUMERIC}|{_SPOKEN})"
_UNIT = "|".join(sorted((re.escape(u) for u in UNIT_WORDS), key=len, reverse=True))
DOSE_IN_TEXT = re.compile(
    rf"(?<![\w.])(?P<low>{_AMOUNT})(?:\s*(?:-|to)\s*(?P<high>{_AMOUNT}))?\s*"
    rf"(?P<unit>{_UNIT})(?![\w/])"
)
_DOSE = re.compile(rf"^({_NUMERIC})(?:\s*(?:-|to)\s*({_NUMERIC}))?$")


@dataclass(frozen=True)
class Dose:
    low: float
    high: float
    unit: str
    """A unit of the schema's vocabulary (``mg``, ``puffs``)."""
    text: str
    """The words it was read from."""


@dataclass(frozen=True)
class ParsedSig:
    """A medication line read apart: "metoprolol 50 mg by mouth BID"."""

    name: str
    dose: Dose
    frequency: str | None
    """In the controlled vocabulary, or None when the line names none."""


def spoken_number(text: str) -> float | None:
    """``"two hundred fifty"`` → 250, ``"one and a half"`` → 1.5; digits pass through."""
    text = text.replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, current, seen = 0.0, 0.0, False
    for word in re.split(r"[ -]+", text):
        if word in ("and", "a"):
            continue
        if word in NUMBER_WORDS:
            current += NUMBER_WORDS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total, current = (total + max(current, 1)) * 1000, 0.0
        else:
            return None
        seen = True
    return total + current if seen else None


def doses_in(text: str) -> list[Dose]:
    """Every amount with a unit stated in ``text``; "mg/dL" and "mg/kg" are not doses."""
    found = []
    for match in DOSE_IN_TEXT.finditer(normalise_text(text)):
        low = spoken_number(match.group("low"))
        high = spoken_number(match.group("high")) if match.group("high") else low
        if low is None or high is None:
            continue
        found.append(Dose(low, high, UNIT_WORDS[match.group("unit")], match.group(0)))
    return found


def parse_dose(dose: str) -> tuple[float, float] | None:
    """A dose field ("50", "1-2", "1,000") as (low, high), or None when it is not one."""
    match = _DOSE.match(normalise_text(dose))
    if match is None:
        return None
    low = float(match.group(1).replace(",", ""))
    high = float(match.group(2).replace(",", "")) if match.group(2) else low
    return low, high


def dose_problem(dose: str) -> str | None:
    """Why ``dose`` is not a positive number or range, or None when it is one."""
    parsed = parse_dose(dose)
    if parsed is None:
        return "is not a number or a range such as '1-2' (the unit goes in 'unit')"
    low, high = parsed
    if low <= 0:
        return "is not positive"
    if high < low:
        return "is a range that runs backwards"
    if high > MAX_PLAUSIBLE_DOSE:
        return f"is implausibly large (over {MAX_PLAUSIBLE_DOSE})"
    return None


def implausible_for_unit(dose: str, unit: str) -> str | None:
    """Why ``dose`` in ``unit`` is not a plausible single dose, or None when it is."""
    parsed = parse_dose(dose)
    limit = MAX_DOSE_BY_UNIT.get(unit)
    if parsed is None or limit is None:
        return None  # dose_format reports a dose that is not a number
    if parsed[1] > limit:
        return f"{dose} {unit} is above the largest plausible single dose ({limit:g} {unit})"
    return None


def parse_sig(text: str) -> ParsedSig | None:
    """Reads a medication line: the name is what comes before the first dose, the frequency
    the longest run of words after it that the controlled vocabulary knows."""
    folded = normalise_text(text)
    match = DOSE_IN_TEXT.search(folded)
    if match is None:
        return None
    dose = doses_in(match.group(0))
    name = folded[: match.start()].strip(" ,:;-")
    if not dose or not name:
        return None
    words = folded[match.end() :].strip(" ,.;").split()
    frequency = None
    for size in range(len(words), 0, -1):
        frequency = next(
            (f for i in range(len(words) - size + 1)
             if (f := normalise_frequency(" ".join(words[i : i + size]))) is not None),
            None,
        )  # fmt: skip
        if frequency is not None:
            break
    return ParsedSig(name, dose[0], frequency)
