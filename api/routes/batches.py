"""Batches: submit a JSONL upload, read counts, cancel, retry failed items, stream results."""

from __future__ import annotations

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
from api.scopes import ActorDep
from ponder import audit
from ponder.audit import Actor
from ponder.batches import service as batches
from ponder.batches.results import BatchResultLine, iter_results
from ponder.config import Settings
from ponder.db import session_scope
from ponder.errors import (
    BatchOptionsInQuery,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from ponder.models import Tenant
from ponder.validation import InvalidInput, parse_json, validation_problems

router = APIRouter(prefix="/v1/batches", tags=["batches"])

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines")
SPOOL_IN_MEMORY_BYTES = 1024 * 1024
MAX_OPTIONS_BYTES = 64 * 1024
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (400, 401, 404, 409, 413, 415, 422)
}
_UPLOAD_SCHEMA = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "JSONL items."},
                **{name: {"type": "string"} for name in BatchCreate.model_fields},
                "options": {
                    "type": "string",
                    "description": "All options as one JSON object, instead of the fields.",
                },
            },
        }
    },
    "application/jsonl": {
        "schema": {
            "type": "string",
            "description": "One item per line; default options (send options as multipart).",
        }
    },
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
        complete_by=batch.complete_by,
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


WHERE_OPTIONS_GO = (
    "send them as form fields (multipart/form-data) next to the 'file' part, or as one "
    "'options' part holding a JSON object"
)


def _options(fields: dict[str, Any]) -> BatchCreate:
    if "options" in fields:
        if len(fields) > 1:
            raise InvalidRequest(
                "send batch options either as form fields or as one 'options' JSON part, not both"
            )
        fields = _json_field("options", fields["options"])
        if not isinstance(fields, dict):
            raise InvalidRequest("options must be a JSON object of batch options")
    elif isinstance(fields.get("metadata"), str):
        fields["metadata"] = _json_field("metadata", fields["metadata"])
    try:
        return BatchCreate.model_validate(fields)
    except ValidationError as exc:
        problems = validation_problems(exc, whole="options")
        raise InvalidRequest("invalid batch options: " + "; ".join(problems)) from exc


def _json_field(name: str, text: str) -> Any:
    try:
        return parse_json(text)
    except InvalidInput as exc:
        raise InvalidRequest(f"{name} must be a JSON object; it is {exc}") from exc


async def _read_upload(request: Request, limit: int) -> tuple[IO[bytes], BatchCreate]:
    """The items spooled to a temporary file (on disk past 1 MiB), and the batch options."""
    if request.query_params:
        # URLs land in access logs and proxies' logs: metadata there would be logged PHI.
        raise BatchOptionsInQuery(
            "batch options are not accepted in the query string (URLs are logged); "
            + WHERE_OPTIONS_GO
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        parser = MultiPartParser(
            request.headers,
            _limited(request, limit),
            max_files=2,  # the items, and the options when sent as a JSON file part
            max_fields=len(BatchCreate.model_fields) + 1,
        )
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise InvalidRequest(f"the multipart upload is not valid: {exc.message}") from exc
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("the upload needs a 'file' part holding the JSONL items")
        fields: dict[str, Any] = {}
        for key, value in form.items():
            if key == "file":
                continue
            if key == "options" and isinstance(value, UploadFile):
                value = await _options_part(value)
            if isinstance(value, str):
                fields[key] = value
        return upload.file, _options(fields)
    if ctype in JSONL_TYPES:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
        async for chunk in _limited(request, limit):
            await run_in_threadpool(spool.write, chunk)
        return spool, BatchCreate()
    raise UnsupportedMediaType(
        f"content type {ctype or 'none'!r} is not accepted; send multipart/form-data with a "
        f"'file' part, or a JSONL body as {' or '.join(JSONL_TYPES)}"
    )


async def _options_part(part: UploadFile) -> str:
    """An ``options`` part sent as a file (``-F options=@options.json``), as text."""
    raw = await part.read(MAX_OPTIONS_BYTES + 1)
    if len(raw) > MAX_OPTIONS_BYTES:
        raise PayloadTooLarge(f"the options part is over {MAX_OPTIONS_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the options part is not UTF-8 text") from exc


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
    actor: ActorDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> BatchPublic:
    """Submit a JSONL upload, one item per line: ``custom_id``, ``task``, ``document`` and
    optionally ``strategy``, ``n``, ``params``, ``metadata``, ``seed``, ``budget_tokens``. If any
    line is invalid the whole batch is refused, listing every bad line in ``detail.errors``.
    Batch options go in multipart form fields next to the ``file`` part (or one ``options``
    JSON part); a bare JSONL body takes the defaults. The query string is refused (a 400):
    URLs are kept in access logs."""
    limit = settings.limits.max_batch_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the upload is {declared} bytes; the batch limit is {limit}")
    upload, options = await _read_upload(request, limit)
    try:
        public, created = await run_in_threadpool(
            _create, tenant, upload, options, idempotency_key, settings, actor
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
    actor: Actor,
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
        audit.record(session, actor, "batch.submit", batch_id=batch.id)
        return to_public(batches.summarize(session, batch), settings), created


@router.get("", response_model=BatchPage, responses=_ERRORS)
def list_batches(
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> BatchPage:
    """The newest batches first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    rows, next_cursor = batches.list_batches(
        session=session, tenant=tenant, limit=limit, cursor=cursor
    )
    audit.record_batches(session, actor, "batch.list", [b.id for b in rows])
    return BatchPage(
        items=[to_public(s, settings) for s in batches.summarize_all(session, rows)],
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
    # response_model puts the line's schema in the components; the 200 says it is the
    # schema of each line of a JSON Lines body. The stream itself is returned as it is.
    response_model=BatchResultLine,
    responses={
        200: {
            "description": "One BatchResultLine per line (JSON Lines), in upload order.",
            "content": {
                "application/jsonl": {"schema": {"$ref": "#/components/schemas/BatchResultLine"}}
            },
        },
        **_ERRORS,
    },
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
