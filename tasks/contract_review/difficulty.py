"""How hard a contract is to review, from cues that cost no engine call: its length and how
many clause headings it has (each section a place a clause of interest may hide)."""

from __future__ import annotations

import re

LONG_CONTRACT_CHARS = 30_000
MANY_HEADINGS = 30
_HEADING = re.compile(
    r"^[ \t]*(?:(?i:article|section|clause|schedule|exhibit|annex)\s+[\dIVXLC]+[.:)]?"
    r"|\d{1,2}(?:\.\d{1,2})*[.)]?\s+[A-Z][A-Za-z]"
    r"|[A-Z][A-Z &,'-]{3,60}$)",
    re.MULTILINE,
)
"""A line that opens a section: "ARTICLE IV", "Section 12.", "7.2 Termination", or a short
line in capitals ("GOVERNING LAW")."""


def difficulty_signals(document: str) -> dict[str, float]:
    return {
        "length": len(document) / LONG_CONTRACT_CHARS,
        "headings": len(_HEADING.findall(document)) / MANY_HEADINGS,
    }
