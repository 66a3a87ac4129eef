"""A batch's results as JSONL, one line per item in upload order: ``result`` for an item with
an answer, ``error`` for one without, never both. Read with a server-side cursor and streamed,
so memory stays flat however large the batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from ponder.batches.state import PENDING
from ponder.db import get_engine
from ponder.models import Job, JobStatus

CHUNK_ROWS = 500
ANSWERED = (JobStatus.succeeded.value, JobStatus.needs_review.value, JobStatus.reviewed.value)


def result_line(
    custom_id: str | None, job_id: str, status: str, result: Any, error: str | None
) -> dict[str, Any]:
    """One line of the results: ``result`` for an item that has an answer (succeeded,
    needs_review, or reviewed: then ``result.review`` holds the person's decision and the
    answer they stand behind), else ``error``; the other is null."""
    if status in ANSWERED:
        return {
            "custom_id": custom_id,
            "job_id": job_id,
            "status": status,
            "result": result,
            "error": None,
        }
    message = error or f"item {status}"
    return {
        "custom_id": custom_id,
        "job_id": job_id,
        "status": status,
        "result": None,
        "error": {"code": status, "message": message},
    }


def iter_results(batch_id: str, *, ended_only: bool) -> Iterator[bytes]:
    """The lines of the batch's items (only those that ended, with ``ended_only``). Opens its
    own session, as it runs while the response streams."""
    query = (
        sa.select(col(Job.custom_id), col(Job.id), col(Job.status), col(Job.result), col(Job.error))
        .where(col(Job.batch_id) == batch_id)
        .order_by(col(Job.batch_index))
        .execution_options(yield_per=CHUNK_ROWS)
    )
    if ended_only:
        query = query.where(col(Job.status).not_in(PENDING))
    with Session(get_engine()) as session:
        for row in session.execute(query):
            yield (json.dumps(result_line(*row), separators=(",", ":")) + "\n").encode()
