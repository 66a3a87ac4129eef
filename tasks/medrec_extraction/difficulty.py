"""How hard a note is to reconcile, from cues that cost no engine call: its length and how
many distinct drugs it mentions (each one an item to extract, ground and check)."""

from __future__ import annotations

from tasks.medrec_extraction.mentions import medication_mentions

LONG_NOTE_CHARS = 4_000
"""A note this long or longer counts as fully long (about a page of a clinic note)."""
MANY_MEDICATIONS = 10
"""This many distinct drugs or more count as fully hard."""


def difficulty_signals(document: str) -> dict[str, float]:
    drugs = {mention.generic for mention in medication_mentions(document)}
    return {
        "length": len(document) / LONG_NOTE_CHARS,
        "medications": len(drugs) / MANY_MEDICATIONS,
    }
