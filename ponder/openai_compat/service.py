"""Files and batches of the OpenAI-compatible surface, over the native batch machinery: a
batch is a native batch (same id) whose items are the request file's jobs, plus a row saying
what the OpenAI shape needs. No commits here."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from ponder.batches import service as batches
from ponder.batches.state import close_batch_if_ended
from ponder.config import Settings
from ponder.errors import NotFound, PayloadTooLarge
from ponder.models import Batch, OpenAIBatch, OpenAIFile, Tenant, utcnow
from ponder.openai_compat.errors import InvalidOpenAIRequest
from ponder.openai_compat.requests import SUPPORTED_URLS, plan_requests
from ponder.scoping import readable_batches, readable_openai_batches, readable_openai_files
from ponder.validation import InvalidInput, check_value

logger = logging.getLogger(__name__)

UPLOAD_PURPOSE = "batch"
OUTPUT_PURPOSE = "batch_output"
WINDOW = re.compile(r"([1-9][0-9]{0,2})h")
MAX_WINDOW_HOURS = 168
"""``completion_window``: ``"<N>h"``, 1 to 168 hours (OpenAI's own is ``"24h"``)."""
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512


# Files


def upload_file(
    *, session: Session, tenant: Tenant, content: bytes, filename: str, purpose: str,
    settings: Settings,
) -> OpenAIFile:  # fmt: skip
    if purpose != UPLOAD_PURPOSE:
        raise InvalidOpenAIRequest(
            f"purpose must be {UPLOAD_PURPOSE!r}: this server keeps request files for batches only",
            param="purpose",
            code="invalid_purpose",
        )
    limit = settings.limits.max_batch_bytes
    if len(content) > limit:
        raise PayloadTooLarge(f"the file is over the limit of {limit} bytes")
    try:
        check_value("filename", filename)
    except InvalidInput as exc:
        raise InvalidOpenAIRequest(str(exc), param="file", code="invalid_filename") from exc
    upload = OpenAIFile(
        tenant_id=tenant.id,
        purpose=purpose,
        filename=filename[:255] or "upload.jsonl",
        size_bytes=len(content),
        content=content,
    )
    session.add(upload)
    session.flush()
    logger.info("openai file %s uploaded (%d bytes)", upload.id, upload.size_bytes)
    return upload


def get_file(*, session: Session, tenant: Tenant, file_id: str) -> OpenAIFile:
    found = session.exec(
        readable_openai_files(tenant.id).where(col(OpenAIFile.id) == file_id)
    ).first()
    if found is None:
        raise NotFound(f"no file {file_id}")  # another tenant's file is indistinguishable
    return found


def list_files(
    *, session: Session, tenant: Tenant, purpose: str | None, limit: int, after: str | None
) -> tuple[list[OpenAIFile], bool]:
    """Newest first; ``after`` is the last id of the previous page. Returns (page, has_more)."""
    query = readable_openai_files(tenant.id)
    if purpose:
        query = query.where(col(OpenAIFile.purpose) == purpose)
    if after:
        last = get_file(session=session, tenant=tenant, file_id=after)
        query = query.where(
            sa.tuple_(col(OpenAIFile.created_at), col(OpenAIFile.id))
            < sa.tuple_(last.created_at, last.id)
        )
    query = query.order_by(col(OpenAIFile.created_at).desc(), col(OpenAIFile.id).desc())
    rows = list(session.exec(query.limit(limit + 1)).all())
    return rows[:limit], len(rows) > limit


def delete_file(*, session: Session, tenant: Tenant, file_id: str) -> str:
    """Deletes the file and its content. A batch made from it keeps running (its items hold
    their documents); a deleted result file is not made again."""
    found = get_file(session=session, tenant=tenant, file_id=file_id)
    session.delete(found)
    logger.info("openai file %s deleted", found.id)
    return found.id


# Batches


@dataclass(frozen=True)
class BatchRequest:
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class BatchView:
    """An OpenAI batch with what its public shape is made of."""

    batch: OpenAIBatch
    native: batches.BatchSummary


def window_hours(window: str) -> int:
    match = WINDOW.fullmatch(window)
    if match is None or int(match.group(1)) > MAX_WINDOW_HOURS:
        raise InvalidOpenAIRequest(
            f'completion_window must be hours as "<N>h", from 1h to {MAX_WINDOW_HOURS}h '
            '("24h" as with OpenAI)',
            param="completion_window",
            code="invalid_completion_window",
        )
    return int(match.group(1))


def _check_request(request: BatchRequest) -> None:
    if request.endpoint not in SUPPORTED_URLS:
        raise InvalidOpenAIRequest(
            f"endpoint must be one of {', '.join(SUPPORTED_URLS)}",
            param="endpoint",
            code="unsupported_endpoint",
        )
    metadata = request.metadata or {}
    if len(metadata) > MAX_METADATA_KEYS or any(
        len(k) > MAX_METADATA_KEY or len(v) > MAX_METADATA_VALUE for k, v in metadata.items()
    ):
        raise InvalidOpenAIRequest(
            f"metadata holds at most {MAX_METADATA_KEYS} pairs, keys up to {MAX_METADATA_KEY} "
            f"and values up to {MAX_METADATA_VALUE} characters",
            param="metadata",
            code="invalid_metadata",
        )
    try:
        check_value("metadata", metadata)
    except InvalidInput as exc:
        raise InvalidOpenAIRequest(str(exc), param="metadata", code="invalid_metadata") from exc


def create_batch(
    *, session: Session, tenant: Tenant, request: BatchRequest, settings: Settings
) -> BatchView:
    """Checks the request and its input file whole (``InvalidOpenAIRequest`` lists every line
    that is not a request, and nothing is written), then creates the native batch with one
    item per runnable line, dispatched after commit. Its window is its items' deadline."""
    _check_request(request)
    hours = window_hours(request.completion_window)
    source = get_file(session=session, tenant=tenant, file_id=request.input_file_id)
    if source.purpose == UPLOAD_PURPOSE and source.content is None:
        raise InvalidOpenAIRequest(
            f"file {source.id}'s content was removed when its retention period ended; upload "
            "it again",
            param="input_file_id",
            code="invalid_input_file",
        )
    if source.purpose != UPLOAD_PURPOSE or source.content is None:
        raise InvalidOpenAIRequest(
            f"file {source.id} is not a request file (purpose {source.purpose!r}); upload one "
            f"with purpose {UPLOAD_PURPOSE!r}",
            param="input_file_id",
            code="invalid_input_file",
        )
    plan = plan_requests(
        source.content,
        priority=settings.limits.batch_priority,
        tenant_name=tenant.name,
        settings=settings,
    )
    now = utcnow()
    try:
        native = batches.new_batch(
            session=session,
            tenant=tenant,
            options=batches.BatchOptions(
                metadata=dict(request.metadata) if request.metadata else None,
                complete_by=now + timedelta(hours=hours),
            ),
            settings=settings,
            source="openai",
        )
        session.flush()  # the items' rows refer to the batch's
        batches.insert_items(
            session=session, batch=native, upload=plan.items, tenant_name=tenant.name,
            settings=settings,
        )  # fmt: skip
    finally:
        plan.items.close()
    batch = OpenAIBatch(
        id=native.id,
        tenant_id=tenant.id,
        input_file_id=source.id,
        endpoint=request.endpoint,
        completion_window=request.completion_window,
        line_errors=[e.as_row() for e in plan.line_errors],
        chat_lines=plan.chat_lines,
        created_at=now,  # expires_at is created_at + the window, to the second
    )
    session.add(batch)
    session.flush()
    if plan.jobs == 0:  # no item will end to close it: it is over now
        close_batch_if_ended(session=session, batch_id=native.id, settings=settings)
    logger.info(
        "openai batch %s created: %d jobs, %d line errors",
        native.id,
        plan.jobs,
        len(plan.line_errors),
    )
    return BatchView(batch, batches.summarize(session, native))


def get_batch(*, session: Session, tenant: Tenant, batch_id: str) -> BatchView:
    batch = session.exec(
        readable_openai_batches(tenant.id).where(col(OpenAIBatch.id) == batch_id)
    ).first()
    if batch is None:
        raise NotFound(f"no batch {batch_id}")  # another tenant's batch is indistinguishable
    native = batches.get_batch(session=session, tenant=tenant, batch_id=batch_id)
    return BatchView(batch, batches.summarize(session, native))


def list_batches(
    *, session: Session, tenant: Tenant, limit: int, after: str | None
) -> tuple[list[BatchView], bool]:
    """Newest first; ``after`` is the last id of the previous page. Returns (page, has_more)."""
    query = readable_openai_batches(tenant.id)
    if after:
        last = get_batch(session=session, tenant=tenant, batch_id=after).batch
        query = query.where(
            sa.tuple_(col(OpenAIBatch.created_at), col(OpenAIBatch.id))
            < sa.tuple_(last.created_at, last.id)
        )
    query = query.order_by(col(OpenAIBatch.created_at).desc(), col(OpenAIBatch.id).desc())
    rows = list(session.exec(query.limit(limit + 1)).all())
    page = rows[:limit]
    natives = session.exec(
        readable_batches(tenant.id).where(col(Batch.id).in_([r.id for r in page]))
    ).all()
    summaries = {s.batch.id: s for s in batches.summarize_all(session, list(natives))}
    return [BatchView(r, summaries[r.id]) for r in page], len(rows) > limit


def cancel_batch(
    *, session: Session, tenant: Tenant, batch_id: str, settings: Settings
) -> BatchView:
    """Queued items are cancelled now; running items finish and keep their answers."""
    batch = get_batch(session=session, tenant=tenant, batch_id=batch_id).batch
    native = batches.cancel_batch(
        session=session, tenant=tenant, batch_id=batch_id, settings=settings
    )
    session.flush()
    return BatchView(batch, batches.summarize(session, native))


# What the public shape is made of


def status_of(view: BatchView) -> str:
    """OpenAI's status for the native one. Request lines are checked when the batch is
    created, so a batch is ``in_progress`` from the start; it is never ``failed`` (a request
    file that cannot run is refused instead)."""
    native = view.native.status
    if native in ("cancelling", "cancelled", "expired"):
        return native
    if not view.native.ended:
        return "in_progress"
    return "completed" if view.batch.files_made_at is not None else "finalizing"


ANSWERED = ("succeeded", "needs_review", "reviewed")
UNANSWERED = ("failed", "cancelled", "expired")


def request_counts(view: BatchView) -> dict[str, int]:
    """``completed``: requests answered (``status_code`` 200: the body says whether the answer
    passed its checks); ``failed``: requests that ended without one, or became no job."""
    counts = view.native.counts
    errors = len(view.batch.line_errors)
    return {
        "total": sum(counts.values()) + errors,
        "completed": sum(counts.get(s, 0) for s in ANSWERED),
        "failed": sum(counts.get(s, 0) for s in UNANSWERED) + errors,
    }


def ended_at(view: BatchView) -> datetime | None:
    return view.native.batch.finished_at


def expires_at(view: BatchView) -> datetime | None:
    return view.native.batch.complete_by


def metadata_of(view: BatchView) -> dict[str, Any] | None:
    return view.native.batch.metadata_
