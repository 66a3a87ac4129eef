"""Contract review: find CUAD clause types in a contract, each quoted verbatim with its
character offsets, a risk level and a rationale. ``contract_review_full`` also lists every
category it judged absent, so a reader knows what was looked for and not found."""

from tasks.contract_review.task import FULL_TASK, TASK

__all__ = ["FULL_TASK", "TASK"]
