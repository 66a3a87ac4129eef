"""Where a note mentions a medication: every drug name of the lexicon (generic or brand, one
word or several) found as whole words, with its offsets, except where the word names a
laboratory analyte ("potassium 4.6 mmol/L", "recheck creatinine and potassium")."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from tasks.common.locate import FoldedText
from tasks.medrec_extraction.drug_lexicon import load_lexicon

_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_LAB_UNIT = r"mmol/l|mg/dl|g/dl|mcg/dl|ug/dl|meq/l|ng/ml|pg/ml|u/l|iu/l|umol/l|µmol/l|mmhg|%"
_LAB_VALUE_AFTER = re.compile(rf"^[\s:=,]*(?:is |was |of )?[<>]?\s*\d+(?:\.\d+)?\s*(?:{_LAB_UNIT})")
_LAB_NOUN_AFTER = re.compile(
    r"^[\s,]*(?:\w+ ){0,1}(?:levels?|saturations?|sats?|counts?|panel|tests?|deficien\w*|"
    r"resistance|studies|stores)\b"
)
_LAB_VERB_BEFORE = re.compile(
    r"\b(?:check|checks|checked|checking|recheck\w*|measur\w*|draw|drawn|levels? of|"
    r"tests?|tested|testing)\s+(?:(?:the|your|his|her|their|a|serum|blood)\s+)*"
    r"(?:[\w-]+\s*(?:,\s*and|,|and|or)\s+){0,3}$"
)
"""A laboratory verb before the name, or before a list that ends with it: "recheck
creatinine and potassium", "check your potassium"."""


@dataclass(frozen=True)
class Mention:
    generic: str
    """The generic name the lexicon gives for the words found."""
    text: str
    """The words as they read in the note."""
    start: int
    end: int
    """Offsets in the original note."""


@functools.lru_cache(maxsize=256)
def medication_mentions(document: str) -> tuple[Mention, ...]:
    """Every mention of a known drug, in document order; one per occurrence. Cached: every
    candidate of a job is checked against the same note (and each item's evidence by three
    checks); 256 entries hold the notes of the jobs in flight with their evidence quotes."""
    lexicon = load_lexicon()
    folded = FoldedText(document)
    text = folded.text
    taken: list[tuple[int, int, str]] = []
    for phrase, of_phrase in lexicon.phrases.items():
        for match in re.finditer(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text):
            taken.append((match.start(), match.end(), of_phrase))
    for match in _WORD.finditer(text):
        start, end = match.span()
        if any(s <= start < e for s, e, _ in taken):
            continue  # inside a phrase already found ("insulin glargine")
        word = match.group()
        generic: str | None = lexicon.generic_of.get(word) or next(
            (lexicon.generic_of[p] for p in word.split("-") if p in lexicon.generic_of), None
        )
        if generic is not None:
            taken.append((start, end, generic))
    mentions: list[Mention] = []
    for start, end, generic in sorted(taken):
        if _names_an_analyte(text, start, end):
            continue
        o_start, o_end = folded.original_span(start, end)
        mentions.append(Mention(generic, document[o_start:o_end], o_start, o_end))
    return tuple(mentions)


def _names_an_analyte(text: str, start: int, end: int) -> bool:
    after = text[end : end + 40]
    before = text[max(0, start - 60) : start]
    return bool(
        _LAB_VALUE_AFTER.match(after)
        or _LAB_NOUN_AFTER.match(after)
        or _LAB_VERB_BEFORE.search(before)
    )


def context(document: str, mention: Mention, width: int = 40) -> str:
    """A few words either side of a mention, for a finding a reader (or a model) can find."""
    start = max(0, mention.start - width)
    end = min(len(document), mention.end + width)
    snippet = " ".join(document[start:end].split())
    return ("…" if start else "") + snippet + ("…" if end < len(document) else "")
