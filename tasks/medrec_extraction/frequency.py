"""Medication frequencies: map how notes write them ("b.i.d.", "at bedtime") to one vocabulary."""

from __future__ import annotations

import re

from tasks.common.grounding import normalise_text

FREQUENCIES = (
    "daily", "BID", "TID", "QID", "qHS", "qAM", "qPM", "q4h", "q6h", "q8h", "q12h", "PRN",
    "weekly", "monthly", "once",
)  # fmt: skip
"""The controlled vocabulary; a scheduled term may also carry " PRN" ("q6h PRN")."""

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "six": 6, "eight": 8, "twelve": 12}
_TIMES_A_DAY = {"once": 1, "twice": 2, "thrice": 3}
_BY_COUNT = {1: "daily", 2: "BID", 3: "TID", 4: "QID"}
_PRN = re.compile(r"\b(?:prn|as needed|as required|when needed|if needed|on demand)\b(?: for .*)?")
_MEALS = re.compile(r" ?\b(?:with|after|before) (?:food|meals?|breakfast|lunch|dinner|supper)$")
_EVERY_N_HOURS = re.compile(r"^(?:every|each|q) ?(\d+) ?(?:hours?|hrs?|h)$")
_COUNT_PER_PERIOD = re.compile(
    r"^(?P<count>once|twice|thrice|[1-4] ?(?:times?|x)) ?(?:a |per |each |every )?"
    r"(?P<period>day|daily|week|weekly|month|monthly)$"
)
# "daily at bedtime" says no more than "at bedtime", so a daily prefix is allowed.
_DAILY = r"^(?:(?:once )?daily |every day |once a day )?"
_BEDTIME = r"(?:qhs|hs|qn|(?:at )?bedtime|before bed|nightly|(?:at|every|each) night)$"
_SCHEDULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?:daily|qd|qday|every day|each day)$"), "daily"),
    (re.compile(r"^bid$"), "BID"),
    (re.compile(r"^tid$"), "TID"),
    (re.compile(r"^qid$"), "QID"),
    (re.compile(_DAILY + _BEDTIME), "qHS"),
    (re.compile(_DAILY + r"(?:qam|am|(?:every|each|in the) morning)$"), "qAM"),
    (re.compile(_DAILY + r"(?:qpm|pm|(?:every|each|in the) evening)$"), "qPM"),
    (re.compile(r"^(?:weekly|qweek|qwk|(?:every|each) week)$"), "weekly"),
    (re.compile(r"^(?:monthly|qmonth|(?:every|each) month)$"), "monthly"),
    (re.compile(r"^(?:once|1 time|1 dose|single dose|x ?1|stat|now)$"), "once"),
)


def normalise_frequency(text: str) -> str | None:
    """Maps a written frequency to the controlled vocabulary, or None when it is not in it."""
    cleaned = normalise_text(text).replace(".", "").replace("/", " per ")
    cleaned = " ".join(re.sub(r"[,;:()\-]", " ", cleaned).split())
    for word, digit in _NUMBER_WORDS.items():
        cleaned = re.sub(rf"\b{word}\b", str(digit), cleaned)
    as_needed = _PRN.search(cleaned) is not None
    cleaned = " ".join(_MEALS.sub("", _PRN.sub("", cleaned)).split())
    if not cleaned:
        return "PRN" if as_needed else None
    schedule = _schedule(cleaned)
    if schedule is None:
        return None
    return f"{schedule} PRN" if as_needed else schedule


def _schedule(cleaned: str) -> str | None:
    if match := _EVERY_N_HOURS.match(cleaned):
        hours = int(match.group(1))
        term = "daily" if hours == 24 else f"q{hours}h"
        return term if term in FREQUENCIES else None
    if match := _COUNT_PER_PERIOD.match(cleaned):
        count = _TIMES_A_DAY.get(match.group("count")) or int(match.group("count")[0])
        period = match.group("period")
        if period.startswith("da"):
            return _BY_COUNT[count]
        if count != 1:
            return None
        return "weekly" if period.startswith("week") else "monthly"
    return next((term for pattern, term in _SCHEDULES if pattern.match(cleaned)), None)


ONCE_DAILY = frozenset({"daily", "qAM", "qPM", "qHS"})
"""Schedules that all mean once a day; they differ only in the time of day."""


def frequencies_in(text: str, max_words: int = 6) -> list[str]:
    """Every frequency stated in free text, in the controlled vocabulary: the longest runs of
    words the vocabulary knows, not overlapping ("once a day in the morning" is qAM, not
    daily and qAM)."""
    words = normalise_text(text).replace(",", " ").replace(";", " ").split()
    found: list[str] = []
    i = 0
    while i < len(words):
        for size in range(min(max_words, len(words) - i), 0, -1):
            term = _spoken_frequency(" ".join(words[i : i + size]))
            if term is not None and not (size == 1 and words[i] in _AMBIGUOUS_WORDS):
                found.append(term)
                i += size
                break
        else:
            i += 1
    return found


def _spoken_frequency(words: str) -> str | None:
    """As ``normalise_frequency``, and "40 milligrams a day" read as daily: speech says "a
    day" where a sig says "daily". Only for reading evidence; an answer's frequency must
    still be a term of the vocabulary."""
    if words in ("a day", "per day", "a day as needed", "per day as needed"):
        return "daily PRN" if "needed" in words else "daily"
    return normalise_frequency(words)


_AMBIGUOUS_WORDS = frozenset({"once", "now", "stat", "pm", "am"})
"""Single words that name a frequency in a sig but are ordinary words in a sentence ("once
you feel better", "now")."""


def same_schedule(first: str, second: str) -> bool:
    """Whether two vocabulary terms name the same schedule: equal once " PRN" is set aside,
    both once a day at some time of day, or one a bare "PRN" and the other as needed on a
    schedule ("PRN" says less than "q6h PRN", not something else)."""
    if "PRN" in (first, second) and first.endswith("PRN") and second.endswith("PRN"):
        return True
    a, b = first.removesuffix(" PRN"), second.removesuffix(" PRN")
    return a == b or (a in ONCE_DAILY and b in ONCE_DAILY)
