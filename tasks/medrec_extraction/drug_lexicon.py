"""A lexicon of common generic and brand drug names (``data/drug_names.txt`` beside this
module), to tell a medicine from a word that is not one, and a brand from its generic."""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from tasks.common.grounding import normalise_text

LEXICON_PATH = Path(__file__).resolve().parent / "data" / "drug_names.txt"
NEAR_MATCH_CUTOFF = 0.85
"""difflib similarity above which a misspelt word still counts as the drug it resembles."""
_MIN_PART = 5
"""Parts of a hyphenated name ("piperacillin-tazobactam") shorter than this are not names."""
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Lexicon:
    generic_of: dict[str, str]
    """Every single-word name (generic, brand, or part of a hyphenated name) to its generic."""
    phrases: dict[str, str]
    """Names of several words ("fish oil", "insulin glargine") to their generic."""

    def words(self) -> list[str]:
        return list(self.generic_of)


@dataclass(frozen=True)
class DrugMatch:
    generic: str
    """The generic name of the drug found."""
    matched: str
    """The word or phrase of the name that matched."""
    near: str | None = None
    """The lexicon word a misspelt word was taken for, when the match was not exact."""


@functools.lru_cache(maxsize=1)
def load_lexicon(path: Path = LEXICON_PATH) -> Lexicon:
    generic_of: dict[str, str] = {}
    phrases: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        generic, _, brands = line.partition("|")
        generic = normalise_text(generic)
        for name in [generic, *(normalise_text(b) for b in brands.split(","))]:
            if not name:
                continue
            if " " in name:
                phrases.setdefault(name, generic)
                continue
            generic_of.setdefault(name, generic)
            for part in name.split("-"):
                if len(part) >= _MIN_PART:
                    generic_of.setdefault(part, generic)
    return Lexicon(generic_of, phrases)


def name_words(name: str) -> list[str]:
    return _WORD.findall(normalise_text(name))


def find_drug(name: str, lexicon: Lexicon | None = None) -> DrugMatch | None:
    """The drug ``name`` names, if the lexicon knows it: a word or phrase of the name is a
    drug name, or a word of six letters or more is a near spelling of one."""
    lexicon = lexicon or load_lexicon()
    folded = " ".join(name_words(name))
    for phrase, generic in lexicon.phrases.items():
        if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", folded):
            return DrugMatch(generic, phrase)
    words = folded.split()
    for word in words:
        candidates = [word, *word.split("-")]
        for candidate in candidates:
            if candidate in lexicon.generic_of:
                return DrugMatch(lexicon.generic_of[candidate], candidate)
    for word in words:
        if len(word) >= 6 and not word.isdigit():
            close = difflib.get_close_matches(word, lexicon.words(), n=1, cutoff=NEAR_MATCH_CUTOFF)
            if close:
                return DrugMatch(lexicon.generic_of[close[0]], word, near=close[0])
    return None


def same_drug(first: str, second: str) -> bool:
    """Whether two names name the same drug, a brand and its generic included; names the
    lexicon does not know match when they share a word of four letters or more."""
    a, b = find_drug(first), find_drug(second)
    if a is not None and b is not None:
        return a.generic == b.generic
    shared = set(name_words(first)) & set(name_words(second))
    return any(len(w) >= 4 and not w.isdigit() for w in shared)
