"""Batches: submit a JSONL upload, read counts, cancel, retry failed items, stream results."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncGenerator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api.deps import SessionDep, SettingsDep, TenantDep
from api.schemas import (
    BatchCounts,
    BatchCreate,
    BatchPage,
    BatchPublic,
    BatchRetryPublic,
    ErrorPublic,
)
from ponder import batches
from ponder.batch_results import iter_results
from ponder.config import Settings
from ponder.db import session_scope
from ponder.errors import Conflict, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from ponder.models import Tenant

router = APIRouter(prefix="/v1/batches", tags=["batches"])

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines")
SPOOL_IN_MEMORY_BYTES = 1024 * 1024
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (401, 404, 409, 413, 415, 422)
}
_UPLOAD_SCHEMA = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "JSONL items."},
                **{name: {"type": "string"} for name in BatchCreate.model_fields},
            },
        }
    },
    "application/jsonl": {"schema": {"type": "string", "description": "One item per line."}},
}


def to_public(summary: batches.BatchSummary, settings: Settings) -> BatchPublic:
    batch = summary.batch
    base = settings.notify.public_base_url.rstrip("/")
    return BatchPublic(
        id=batch.id,
        name=batch.name,
        source=batch.source,
        status=summary.status,
        ended=summary.ended,
        total=sum(summary.counts.values()),
        counts=BatchCounts(**summary.counts),
        round=batch.round,
        priority=batch.priority,
        created_at=batch.created_at,
        started_at=summary.started_at,
        cancel_requested_at=batch.cancel_requested_at,
        finished_at=batch.finished_at,
        webhook_url=batch.webhook_url,
        webhook_endpoint_id=batch.webhook_endpoint_id,
        email=batch.email,
        metadata=batch.metadata_,
        rejected_files=batch.rejected_files or [],
        links={
            "self": f"{base}/v1/batches/{batch.id}",
            "results": f"{base}/v1/batches/{batch.id}/results",
        },
    )


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the upload exceeds the batch limit of {limit} bytes")
        yield chunk


def _options(fields: dict[str, Any]) -> BatchCreate:
    if isinstance(fields.get("metadata"), str):
        try:
            fields["metadata"] = json.loads(fields["metadata"])
        except ValueError as exc:
            raise InvalidRequest("metadata must be a JSON object") from exc
    try:
        return BatchCreate.model_validate(fields)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise InvalidRequest("invalid batch options: " + "; ".join(problems)) from exc


async def _read_upload(request: Request, limit: int) -> tuple[IO[bytes], BatchCreate]:
    """The items spooled to a temporary file (on disk past 1 MiB), and the batch options."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        parser = MultiPartParser(
            request.headers,
            _limited(request, limit),
            max_files=1,
            max_fields=len(BatchCreate.model_fields),
        )
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise InvalidRequest(f"the multipart upload is not valid: {exc.message}") from exc
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("the upload needs a 'file' part holding the JSONL items")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        return upload.file, _options(fields)
    if ctype in JSONL_TYPES:
        options = _options(dict(request.query_params))
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
        async for chunk in _limited(request, limit):
            await run_in_threadpool(spool.write, chunk)
        return spool, options
    raise UnsupportedMediaType(
        f"content type {ctype or 'none'!r} is not accepted; send multipart/form-data with a "
        f"'file' part, or a JSONL body as {' or '.join(JSONL_TYPES)}"
    )


@router.post(
    "",
    status_code=201,
    response_model=BatchPublic,
    responses={200: {"model": BatchPublic, "description": "Idempotent replay"}, **_ERRORS},
    openapi_extra={"requestBody": {"required": True, "content": _UPLOAD_SCHEMA}},
)
async def create_batch(
    request: Request,
    response: Response,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> BatchPublic:
    """Submit a JSONL upload, one item per line: ``custom_id``, ``task``, ``document`` and
    optionally ``strategy``, ``n``, ``params``, ``metadata``, ``seed``, ``budget_tokens``. If any
    line is invalid the whole batch is refused, listing every bad line in ``detail.errors``."""
    limit = settings.limits.max_batch_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the upload is {declared} bytes; the batch limit is {limit}")
    upload, options = await _read_upload(request, limit)
    try:
        public, created = await run_in_threadpool(
            _create, tenant, upload, options, idempotency_key, settings
        )
    finally:
        upload.close()
    if not created:
        response.status_code = 200
    return public


def _create(
    tenant: Tenant,
    upload: IO[bytes],
    options: BatchCreate,
    idempotency_key: str | None,
    settings: Settings,
) -> tuple[BatchPublic, bool]:
    with session_scope() as session:
        batch, created = batches.create_batch(
            session=session,
            tenant=tenant,
            upload=upload,
            options=batches.BatchOptions(**options.model_dump()),
            idempotency_key=idempotency_key,
            settings=settings,
        )
        session.flush()
        return to_public(batches.summarize(session, batch), settings), created


@router.get("", response_model=BatchPage, responses=_ERRORS)
def list_batches(
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> BatchPage:
    """The newest batches first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    rows, next_cursor = batches.list_batches(
        session=session, tenant=tenant, limit=limit, cursor=cursor
    )
    return BatchPage(
        items=[to_public(batches.summarize(session, b), settings) for b in rows],
        next_cursor=next_cursor,
    )


@router.get("/{batch_id}", response_model=BatchPublic, responses=_ERRORS)
def get_batch(
    batch_id: str, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> BatchPublic:
    batch = batches.get_batch(session=session, tenant=tenant, batch_id=batch_id)
    return to_public(batches.summarize(session, batch), settings)


@router.post("/{batch_id}/cancel", response_model=BatchPublic, responses=_ERRORS)
def cancel_batch(
    batch_id: str, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> BatchPublic:
    """Queued items are cancelled; running items finish and keep their results."""
    batch = batches.cancel_batch(
        session=session, tenant=tenant, batch_id=batch_id, settings=settings
    )
    return to_public(batches.summarize(session, batch), settings)


@router.post("/{batch_id}/retry", response_model=BatchRetryPublic, responses=_ERRORS)
def retry_batch(
    batch_id: str, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> BatchRetryPublic:
    """Run the failed items of an ended batch again; every other item keeps its outcome."""
    batch, retried = batches.retry_failed(session=session, tenant=tenant, batch_id=batch_id)
    session.flush()
    return BatchRetryPublic(
        retried=retried, batch=to_public(batches.summarize(session, batch), settings)
    )


@router.get(
    "/{batch_id}/results",
    responses={200: {"content": {"application/jsonl": {}}}, **_ERRORS},
    response_class=StreamingResponse,
)
def batch_results(
    batch_id: str,
    session: SessionDep,
    tenant: TenantDep,
    partial: bool = Query(
        default=False, description="While the batch runs: the items that ended so far."
    ),
) -> StreamingResponse:
    """One JSON line per item, in upload order: ``custom_id``, ``job_id``, ``status`` and
    either ``result`` or ``error``. A 409 while the batch runs, unless ``partial=true``."""
    batch = batches.get_batch(session=session, tenant=tenant, batch_id=batch_id)
    ended = batch.finished_at is not None
    if not ended and not partial:
        summary = batches.summarize(session, batch)
        pending = summary.counts["queued"] + summary.counts["running"]
        raise Conflict(
            f"batch {batch.id} is still running ({pending} items not ended); wait until it "
            "ends, or ask for the items ended so far with ?partial=true"
        )
    return StreamingResponse(
        iter_results(batch.id, ended_only=not ended),
        media_type="application/jsonl",
        headers={"Ponder-Batch-Ended": "true" if ended else "false"},
    )
