"""The OpenAI-compatible Files and Batches API under ``/openai/v1``: the ``openai`` client with
``base_url=<api>/openai/v1`` and a Ponder API key. Errors take OpenAI's shape here."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api.deps import SessionDep, SettingsDep, TenantDep
from api.routes.jobs import to_public
from api.scopes import ActorDep
from ponder import audit
from ponder.audit import Actor
from ponder.config import Settings
from ponder.db import session_scope
from ponder.errors import Gone, PayloadTooLarge, UnsupportedMediaType
from ponder.models import Job, Tenant
from ponder.openai_compat import objects, results
from ponder.openai_compat import service as openai
from ponder.openai_compat.errors import InvalidOpenAIRequest

PREFIX = "/openai/v1"
router = APIRouter(prefix=PREFIX, tags=["openai"])


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIError} for code in (400, 401, 403, 404, 409, 413, 415, 429)
}
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error", 429: "rate_limit_error"}  # fmt: skip


def error_response(
    status_code: int,
    message: str,
    detail: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Any error on this surface in OpenAI's shape. A 422 (the native answer to a field that is
    not valid) is a 400 here, as OpenAI answers it."""
    status_code = 400 if status_code == 422 else status_code
    error: dict[str, Any] = {
        "message": message,
        "type": _TYPES.get(status_code, "server_error"),
        "param": detail.get("param"),
        "code": detail.get("code"),
    }
    if isinstance(detail.get("errors"), dict):
        error["errors"] = detail["errors"]  # a refused request file: each bad line
    return JSONResponse({"error": error}, status_code=status_code, headers=dict(headers or {}))


# Files


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the upload exceeds the file limit of {limit} bytes")
        yield chunk


@router.post("/files", response_model=objects.FileObject, responses=_ERRORS)
async def upload_file(
    request: Request, tenant: TenantDep, settings: SettingsDep, actor: ActorDep
) -> objects.FileObject:
    """Upload a request file (JSONL, ``purpose=batch``) as multipart ``file`` and ``purpose``."""
    limit = settings.limits.max_batch_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the upload is {declared} bytes; the file limit is {limit}")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise UnsupportedMediaType(
            "send multipart/form-data with a 'file' part and a 'purpose' field"
        )
    parser = MultiPartParser(request.headers, _limited(request, limit), max_files=1, max_fields=2)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidOpenAIRequest(
            f"the multipart upload is not valid: {exc.message}", param="file"
        ) from exc
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise InvalidOpenAIRequest("the upload needs a 'file' part", param="file")
    if not isinstance(purpose, str):
        raise InvalidOpenAIRequest("the upload needs a 'purpose' field", param="purpose")
    try:
        content = await upload.read()
    finally:
        await upload.close()
    return await run_in_threadpool(
        _store, tenant, content, upload.filename or "", purpose, settings, actor
    )


def _store(
    tenant: Tenant, content: bytes, filename: str, purpose: str, settings: Settings, actor: Actor
) -> objects.FileObject:
    with session_scope() as session:
        found = openai.upload_file(
            session=session, tenant=tenant, content=content, filename=filename, purpose=purpose,
            settings=settings,
        )  # fmt: skip
        audit.record(session, actor, "file.upload", target_id=found.id)
        return objects.file_object(found)


@router.get("/files", response_model=objects.FileList, responses=_ERRORS)
def list_files(
    session: SessionDep,
    tenant: TenantDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> objects.FileList:
    """Newest first; pass the last id as ``after`` for the next page."""
    rows, has_more = openai.list_files(
        session=session, tenant=tenant, purpose=purpose, limit=limit, after=after
    )
    return objects.FileList(
        data=[objects.file_object(f) for f in rows],
        first_id=rows[0].id if rows else None,
        last_id=rows[-1].id if rows else None,
        has_more=has_more,
    )


@router.get("/files/{file_id}", response_model=objects.FileObject, responses=_ERRORS)
def get_file(file_id: str, session: SessionDep, tenant: TenantDep) -> objects.FileObject:
    return objects.file_object(openai.get_file(session=session, tenant=tenant, file_id=file_id))


@router.get(
    "/files/{file_id}/content",
    response_class=Response,
    responses={
        200: {"description": "The file's bytes (JSONL).", "content": {"application/jsonl": {}}},
        **_ERRORS,
    },
)
def file_content(file_id: str, session: SessionDep, tenant: TenantDep, actor: ActorDep) -> Response:
    """An upload as it was sent; a batch's output or error file, one line per request."""
    found = openai.get_file(session=session, tenant=tenant, file_id=file_id)
    audit.record(session, actor, "file.content", batch_id=found.batch_id, target_id=found.id)
    if found.content is not None:
        return Response(found.content, media_type="application/jsonl")
    if found.batch_id is None or found.kind is None:  # an upload whose retention ran out
        raise Gone(
            f"file {found.id}'s content was removed when its retention period ended; upload "
            "it again to run it again"
        )
    view = openai.get_batch(session=session, tenant=tenant, batch_id=found.batch_id)
    return StreamingResponse(
        results.iter_lines(view.batch, found.kind, public_job), media_type="application/jsonl"
    )


@router.delete("/files/{file_id}", response_model=objects.FileDeleted, responses=_ERRORS)
def delete_file(
    file_id: str, session: SessionDep, tenant: TenantDep, actor: ActorDep
) -> objects.FileDeleted:
    deleted = openai.delete_file(session=session, tenant=tenant, file_id=file_id)
    audit.record(session, actor, "file.delete", target_id=deleted)
    return objects.FileDeleted(id=deleted, deleted=True)


# Batches


class BatchCreate(BaseModel):
    """OpenAI's batch request. Each line of the input file is ``{custom_id, method: "POST",
    url, body}``; url ``/v1/jobs`` (a Ponder job's fields) or ``/v1/chat/completions``."""

    model_config = ConfigDict(extra="ignore")  # newer clients send fields this server ignores

    input_file_id: str = Field(max_length=64)
    endpoint: str = Field(max_length=64)
    completion_window: str = Field(
        max_length=8, description='"<N>h", 1h to 168h: the items\' deadline (complete_by).'
    )
    metadata: dict[str, str] | None = None


def public_job(job: Job) -> dict[str, Any]:
    """A ``/v1/jobs`` request's answer: the native API's public job with its result."""
    return to_public(job).model_dump(mode="json")


def _view(session: Any, view: openai.BatchView) -> objects.BatchObject:
    results.make_result_files(session=session, view=view, public_job=public_job)
    return objects.batch_object(view)


@router.post("/batches", response_model=objects.BatchObject, responses=_ERRORS)
def create_batch(
    body: BatchCreate, session: SessionDep, tenant: TenantDep, settings: SettingsDep,
    actor: ActorDep,
) -> objects.BatchObject:  # fmt: skip
    """Refused whole (a 400 whose ``error.errors`` lists each line) when a line is not a
    request; a request the server cannot run gets its line in the error file instead."""
    view = openai.create_batch(
        session=session,
        tenant=tenant,
        request=openai.BatchRequest(**body.model_dump()),
        settings=settings,
    )
    audit.record(session, actor, "batch.submit", batch_id=view.batch.id)
    return _view(session, view)


@router.get("/batches", response_model=objects.BatchList, responses=_ERRORS)
def list_batches(
    session: SessionDep,
    tenant: TenantDep,
    actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> objects.BatchList:
    """Newest first; pass the last id as ``after`` for the next page."""
    views, has_more = openai.list_batches(session=session, tenant=tenant, limit=limit, after=after)
    audit.record_batches(session, actor, "batch.list", [v.batch.id for v in views])
    data = [_view(session, v) for v in views]
    return objects.BatchList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get("/batches/{batch_id}", response_model=objects.BatchObject, responses=_ERRORS)
def get_batch(batch_id: str, session: SessionDep, tenant: TenantDep) -> objects.BatchObject:
    return _view(session, openai.get_batch(session=session, tenant=tenant, batch_id=batch_id))


@router.post("/batches/{batch_id}/cancel", response_model=objects.BatchObject, responses=_ERRORS)
def cancel_batch(
    batch_id: str, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> objects.BatchObject:
    """Queued requests are cancelled (in the error file); running ones finish with answers."""
    view = openai.cancel_batch(session=session, tenant=tenant, batch_id=batch_id, settings=settings)
    return _view(session, view)
