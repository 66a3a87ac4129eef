"""What a reviewed job's result says: the machine's result stays, and ``result["review"]``
records the decision and the answer a person stands behind. Read by the public job shape,
notifications and batch results."""

from __future__ import annotations

from typing import Any

MACHINE = "machine"
HUMAN_REVIEWED = "human_reviewed"


def public_answer(result: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """(answer, provenance) of a job: the reviewed answer when a person decided (None when
    they rejected it), else the machine's selected output."""
    result = result or {}
    review = result.get("review")
    if isinstance(review, dict):
        return review.get("answer"), HUMAN_REVIEWED
    return result.get("output"), MACHINE
