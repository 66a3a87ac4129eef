"""The task types Ponder knows, by name: an explicit dict, so adding one is a reviewed edit."""

from __future__ import annotations

from ponder.tasktypes import TaskType
from tasks import contract_review, medrec_extraction

TASKS: dict[str, TaskType] = {
    contract_review.TASK.name: contract_review.TASK,
    medrec_extraction.TASK.name: medrec_extraction.TASK,
}


def get_task(name: str) -> TaskType:
    """The task type called ``name``; KeyError names the known ones when there is none."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task type {name!r}; known: {', '.join(sorted(TASKS))}") from None
