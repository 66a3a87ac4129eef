"""How hard a word problem is, from cues that cost no engine call: its length, how many
numbers it gives and how many operations its wording asks for."""

from __future__ import annotations

import re

from tasks.math_answer.checks import NUMBERS_IN_TEXT

LONG_PROBLEM_CHARS = 500
"""A problem this long or longer counts as fully long (GSM8K's longest tenth)."""
MANY_NUMBERS = 8
MANY_OPERATIONS = 6
_OPERATION_CUES = re.compile(
    r"\b(?:each|every|per|times|twice|thrice|double|triple|half|third|quarter|percent|"
    r"more than|less than|fewer than|longer than|shorter than|left|remaining|total|"
    r"altogether|average|ratio|split|share|divided|multiplied)\b|%|[+\-*/×÷]",
    re.IGNORECASE,
)
"""Words and signs that each ask for an arithmetic step ("twice as many", "20% off")."""


def difficulty_signals(document: str) -> dict[str, float]:
    return {
        "length": len(document) / LONG_PROBLEM_CHARS,
        "numbers": len(NUMBERS_IN_TEXT.findall(document)) / MANY_NUMBERS,
        "operations": len(_OPERATION_CUES.findall(document)) / MANY_OPERATIONS,
    }
