"""The task types Ponder knows, by name: an explicit dict, so adding one is a reviewed edit."""

from __future__ import annotations

from ponder.evaluation.mutation import MutationSuite
from ponder.tasktypes import TaskType
from tasks import chat_completion, contract_review, math_answer, medrec_extraction
from tasks.contract_review import gold as contract_gold
from tasks.math_answer import gold as math_gold
from tasks.medrec_extraction import gold as medrec_gold

TASKS: dict[str, TaskType] = {
    task.name: task
    for task in (
        contract_review.TASK,
        contract_review.FULL_TASK,
        medrec_extraction.TASK,
        math_answer.TASK,
        chat_completion.TASK,
    )
}


MUTATION_SUITES: dict[str, MutationSuite] = {
    suite.task: suite
    for suite in (medrec_gold.SUITE, contract_gold.SUITE, contract_gold.FULL_SUITE, math_gold.SUITE)
}
"""Per task type, how ``ponder eval verifiers`` builds gold answers and mutates them."""


def get_task(name: str) -> TaskType:
    """The task type called ``name``; KeyError names the known ones when there is none."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task type {name!r}; known: {', '.join(sorted(TASKS))}") from None
