"""Where a quoted span lies in a document, as character offsets of the original text: exact,
after folding case, whitespace and typography, or near-exact within a bounded edit ratio."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from tasks.common.grounding import normalise_text

MAX_EDIT_RATIO = 0.1
"""A near-exact quote may differ from the document by at most this share of its length in
character edits (after folding): a dropped comma or a misspelt word, not a paraphrase."""

_SEED_CHARS = 12
_MAX_CANDIDATES = 3


@dataclass(frozen=True)
class Location:
    start: int
    end: int
    """Offsets into the original document, ``document[start:end]`` is the located span."""
    how: str
    """``exact``, ``normalised`` (case, whitespace or typography differ) or ``near-exact``."""
    edit_ratio: float = 0.0
    """Character edits over the quote's length, after folding; 0 unless near-exact."""


class FoldedText:
    """A document folded like ``normalise_text``, remembering for each folded character the
    offset in the original it came from, so a match in the folded text maps back."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        origin: list[int] = []
        for i, ch in enumerate(text):
            if ch.isspace():
                if chars and chars[-1] != " ":
                    chars.append(" ")
                    origin.append(i)
                continue
            for folded in normalise_text(unicodedata.normalize("NFKC", ch)) or ch:
                chars.append(folded)
                origin.append(i)
        if chars and chars[-1] == " ":
            chars.pop()
            origin.pop()
        self.text = "".join(chars)
        self._origin = origin

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Offsets in the original of the folded span ``[start, end)`` (non-empty)."""
        return self._origin[start], self._origin[end - 1] + 1


def fold(text: str) -> str:
    return FoldedText(text).text


def locate(quote: str, document: str, folded: FoldedText | None = None) -> Location | None:
    """The first place ``quote`` occurs in ``document``, or None when it does not occur
    within ``MAX_EDIT_RATIO``. Pass ``folded`` to reuse one folding for many quotes."""
    if not quote.strip():
        return None
    start = document.find(quote)
    if start >= 0:
        return Location(start, start + len(quote), "exact")
    folded = folded or FoldedText(document)
    needle = fold(quote)
    at = folded.text.find(needle)
    if at >= 0:
        return Location(*folded.original_span(at, at + len(needle)), "normalised")
    return _near_exact(needle, folded)


def _near_exact(needle: str, folded: FoldedText) -> Location | None:
    budget = int(MAX_EDIT_RATIO * len(needle))
    if budget == 0:
        return None
    best: tuple[int, int, int] | None = None  # (distance, start, end) in folded text
    for anchor in _anchors(needle, folded.text):
        lo = max(0, anchor - budget)
        window = folded.text[lo : anchor + len(needle) + budget]
        found = _best_substring(needle, window, budget)
        if found is not None and (best is None or found[0] < best[0]):
            best = (found[0], lo + found[1], lo + found[2])
    if best is None:
        return None
    distance, start, end = best
    return Location(
        *folded.original_span(start, end), "near-exact", round(distance / len(needle), 3)
    )


def _anchors(needle: str, haystack: str) -> list[int]:
    """Where the quote would start if one of its fixed-size pieces is where it is found;
    the starts most pieces agree on first. Any quote within the edit budget keeps at least
    one piece intact when it has more pieces than allowed edits."""
    votes: dict[int, int] = {}
    for offset in range(0, max(1, len(needle) - _SEED_CHARS + 1), _SEED_CHARS):
        seed = needle[offset : offset + _SEED_CHARS]
        for match in re.finditer(re.escape(seed), haystack):
            start = match.start() - offset
            votes[start] = votes.get(start, 0) + 1
    ranked = sorted(votes, key=lambda s: (-votes[s], s))
    return ranked[:_MAX_CANDIDATES]


def _best_substring(needle: str, window: str, budget: int) -> tuple[int, int, int] | None:
    """The substring of ``window`` closest to ``needle`` in edit distance (Sellers'
    algorithm), as (distance, start, end), or None when it is over ``budget``."""
    m = len(needle)
    # Per column j: the distance of the best match ending at j, and where it starts.
    previous = list(range(m + 1))
    starts = [0] * (m + 1)
    best: tuple[int, int, int] | None = None
    for j, wc in enumerate(window, start=1):
        current = [0] * (m + 1)
        current_starts = [j] * (m + 1)
        for i in range(1, m + 1):
            cost = 0 if needle[i - 1] == wc else 1
            options = (
                (previous[i - 1] + cost, starts[i - 1]),
                (previous[i] + 1, starts[i]),
                (current[i - 1] + 1, current_starts[i - 1]),
            )
            current[i], current_starts[i] = min(options)
        if current[m] <= budget and (best is None or current[m] < best[0]):
            best = (current[m], current_starts[m], j)
        previous, starts = current, current_starts
    return best
