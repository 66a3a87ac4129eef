"""A batch's results as JSONL, one line per item in upload order: ``result`` for an item with
an answer, ``error`` for one without, never both. Read with a server-side cursor and streamed,
so memory stays flat however large the batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlmodel import Session, col

from ponder.batches.state import PENDING
from ponder.db import get_engine
from ponder.jobs.contract import JobResult
from ponder.models import Job, JobStatus

CHUNK_ROWS = 500
ANSWERED = (JobStatus.succeeded.value, JobStatus.needs_review.value, JobStatus.reviewed.value)


class BatchItemError(BaseModel):
    """Why an item has no answer."""

    code: str = Field(description="The item's status: failed, cancelled or expired.")
    message: str = Field(description="What happened, in words a person can act on.")


class BatchResultLine(BaseModel):
    """One line of ``GET /v1/batches/{id}/results``: ``result`` for an item that has an
    answer (succeeded, needs_review, or reviewed: then ``result.review`` holds the person's
    decision and the answer they stand behind), else ``error``; the other is null."""

    custom_id: str | None = Field(description="The item's id from its line of the upload.")
    job_id: str
    status: str
    result: JobResult | None
    error: BatchItemError | None


def result_line(
    custom_id: str | None, job_id: str, status: str, result: Any, error: str | None
) -> BatchResultLine:
    if status in ANSWERED:
        return BatchResultLine(
            custom_id=custom_id, job_id=job_id, status=status, result=result, error=None
        )
    return BatchResultLine(
        custom_id=custom_id,
        job_id=job_id,
        status=status,
        result=None,
        error=BatchItemError(code=status, message=error or f"item {status}"),
    )


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
            line = result_line(*row).model_dump(mode="json")
            yield (json.dumps(line, separators=(",", ":")) + "\n").encode()
