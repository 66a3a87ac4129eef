"""A batch's output and error files: one line per request, ``{"id", "custom_id", "response":
{"status_code", "request_id", "body"}, "error"}``, in the request file's order. Their lines
are made from the items when read (streamed with a server-side cursor), so a job's deletion
or retention reaches them; the file rows, made once the batch has ended, hold their sizes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from sqlmodel import Session, col, select

from ponder.db import get_engine
from ponder.models import Job, OpenAIBatch, OpenAIFile, utcnow
from ponder.openai_compat.chat import chat_completion_body
from ponder.openai_compat.service import ANSWERED, OUTPUT_PURPOSE, BatchView

logger = logging.getLogger(__name__)

CHUNK_ROWS = 200
OUTPUT, ERROR = "output", "error"
PublicJob = Callable[[Job], dict[str, Any]]
"""The native API's public job (api/routes/jobs.py), as JSON: a ``/v1/jobs`` answer's body."""
ERROR_CODES = {"failed": "job_failed", "cancelled": "batch_cancelled", "expired": "batch_expired"}


def make_result_files(*, session: Session, view: BatchView, public_job: PublicJob) -> None:
    """Once the batch has ended, the first read makes its output file (when a request was
    answered) and its error file (when one was not), each sized by making its lines once."""
    if view.batch.files_made_at is not None or not view.native.ended:
        return
    batch = session.exec(
        select(OpenAIBatch).where(col(OpenAIBatch.id) == view.batch.id).with_for_update()
    ).one()
    if batch.files_made_at is not None:  # another read made them while this one waited
        return
    for kind in (OUTPUT, ERROR):
        size = sum(len(line) for line in iter_lines(batch, kind, public_job))
        if size == 0:
            continue
        made = OpenAIFile(
            tenant_id=batch.tenant_id,
            purpose=OUTPUT_PURPOSE,
            filename=f"batch_{batch.id}_{kind}.jsonl",
            size_bytes=size,
            batch_id=batch.id,
            kind=kind,
        )
        session.add(made)
        if kind == OUTPUT:
            batch.output_file_id = made.id
        else:
            batch.error_file_id = made.id
    batch.files_made_at = utcnow()
    session.add(batch)
    session.flush()
    logger.info("openai batch %s: result files made", batch.id)


def iter_lines(batch: OpenAIBatch, kind: str, public_job: PublicJob) -> Iterator[bytes]:
    """The lines of the batch's ``output`` or ``error`` file: the items' answers (or why they
    have none) merged in line order with the requests that became no job. Opens its own
    session, as it runs while the response streams."""
    line_errors = sorted(batch.line_errors, key=lambda e: int(e["line"])) if kind == ERROR else []
    chat_lines = set(batch.chat_lines)
    query = (
        select(Job)
        .where(col(Job.batch_id) == batch.id)
        .order_by(col(Job.batch_index))
        .execution_options(yield_per=CHUNK_ROWS)
    )
    if kind == OUTPUT:
        query = query.where(col(Job.status).in_(ANSWERED))
    else:
        query = query.where(col(Job.status).in_(tuple(ERROR_CODES)))
    pending = iter(line_errors)
    next_error = next(pending, None)
    with Session(get_engine()) as session:
        for job in session.exec(query):
            while next_error is not None and int(next_error["line"]) < (job.batch_index or 0):
                yield _dump(_line_error(batch.id, next_error))
                next_error = next(pending, None)
            if kind == OUTPUT:
                chat = job.batch_index in chat_lines
                yield _dump(_answer(job, chat=chat, public_job=public_job))
            else:
                yield _dump(_job_error(job))
    while next_error is not None:
        yield _dump(_line_error(batch.id, next_error))
        next_error = next(pending, None)


def _answer(job: Job, *, chat: bool, public_job: PublicJob) -> dict[str, Any]:
    body = chat_completion_body(job) if chat else public_job(job)
    return {
        "id": f"batch_req_{job.id}",
        "custom_id": job.custom_id,
        "response": {"status_code": 200, "request_id": job.id, "body": body},
        "error": None,
    }


def _job_error(job: Job) -> dict[str, Any]:
    return {
        "id": f"batch_req_{job.id}",
        "custom_id": job.custom_id,
        "response": None,
        "error": {"code": ERROR_CODES[job.status], "message": job.error or f"request {job.status}"},
    }


def _line_error(batch_id: str, error: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"batch_req_{batch_id}_line_{error['line']}",
        "custom_id": error["custom_id"],
        "response": None,
        "error": {"code": error["code"], "message": error["message"]},
    }


def _dump(line: dict[str, Any]) -> bytes:
    return (json.dumps(line, separators=(",", ":"), default=str) + "\n").encode()
