"""Reviewed jobs as an evaluation dataset: the JSONL format of ``ponder eval``
(ponder/evaluation/loaders.py: ``{"id", "task", "document", "gold"}``), the gold built from
the answer a person stood behind, in the scorer's gold shape, so that ``ponder eval --dataset``
measures any strategy against a tenant's own reviewed data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlmodel import Session, col

from ponder.models import Job, JobStatus, Review, ReviewDecision
from ponder.scoping import readable_jobs


def gold_from_answer(task: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The scorer's gold for ``answer`` (ponder/evaluation/scoring.py): medications as names
    with their dose and unit ("aspirin 81 mg"), clause categories, or the number."""
    if task == "medrec_extraction":
        return {"medications": [_medication(m) for m in answer.get("medications", [])]}
    if task in ("contract_review", "contract_review_full"):
        return {"categories": sorted({f["category"] for f in answer.get("findings", [])})}
    if task == "math_answer":
        return {"answer": str(answer["answer"])}
    raise ValueError(f"no gold shape for task {task!r}")


def _medication(m: dict[str, Any]) -> str:
    name = str(m["name"])
    if m.get("dose") and m.get("unit") and m["unit"] != "other":
        return f"{name} {m['dose']} {m['unit']}"
    return name


def export_gold(*, session: Session, tenant_id: str, task: str) -> Iterator[dict[str, Any]]:
    """One record per reviewed job of the task with an answer (rejections have none), oldest
    review first; purged or deleted jobs have no document left and are skipped."""
    rows = session.execute(
        readable_jobs(tenant_id)
        .with_only_columns(col(Job.id), col(Job.document), col(Review.answer_after))
        .join(Review, col(Review.job_id) == col(Job.id))
        .where(
            col(Job.task) == task,
            col(Job.status) == JobStatus.reviewed.value,
            col(Job.purged_at).is_(None),
            col(Job.deleted_at).is_(None),
            col(Review.decision) != ReviewDecision.rejected.value,
            col(Review.answer_after).is_not(None),
        )
        .order_by(col(Review.created_at), col(Job.id))
    )
    for job_id, document, answer in rows:
        yield {
            "id": job_id,
            "task": task,
            "document": document,
            "gold": gold_from_answer(task, answer),
        }
