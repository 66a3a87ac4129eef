"""Jobs: submit (JSON or a text file upload), read, list, trace, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import SessionDep, SettingsDep, TenantDep
from api.schemas import (
    JOB_FORM_JSON_FIELDS,
    JOB_FORM_SCHEMA,
    ErrorPublic,
    JobCreate,
    JobPage,
    JobPublic,
    Tokens,
    TracePublic,
)
from api.scopes import ActorDep
from ponder import audit
from ponder.audit import Actor
from ponder.config import Settings
from ponder.db import session_scope
from ponder.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from ponder.jobs import service as jobs
from ponder.jobs.contract import JobResult
from ponder.jobs.trace import read_trace
from ponder.models import Job, Tenant
from ponder.validation import InvalidInput, parse_json, validation_problems

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

TEXT_SUFFIXES = (".txt", ".md")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (400, 401, 404, 409, 413, 415, 422)
}


def to_public(job: Job) -> JobPublic:
    return JobPublic(
        id=job.id,
        task=job.task,
        status=job.status,
        priority=job.priority,
        config=job.config,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        result=None if job.result is None else JobResult.model_validate(job.result),
        error=job.error,
        tokens=Tokens(
            prompt=job.prompt_tokens,
            completion=job.completion_tokens,
            cached_prompt=job.cached_tokens,
            thinking=job.thinking_tokens,
        ),
        engine_wall_s=job.engine_wall_s,
        cost=job.cost,
        metadata=job.metadata_,
        cancel_requested=job.cancel_requested,
        complete_by=job.complete_by,
        batch_id=job.batch_id,
        custom_id=job.custom_id,
        cached_from=job.cached_from,
        model_requested=job.config.get("model_requested"),
        model_used=job.config.get("model_used"),
        arm=job.config.get("arm"),
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # let request.form() parse what was already read
    return body


def _from_json(body: bytes) -> JobCreate:
    try:
        raw = parse_json(body)
    except InvalidInput as exc:
        raise InvalidRequest(f"request body is {exc}") from exc
    return _validate(raw)


def _validate(raw: Any) -> JobCreate:
    if not isinstance(raw, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return JobCreate.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc, whole="body")
        raise InvalidRequest("invalid request: " + "; ".join(problems), problems=problems) from exc


async def _from_multipart(request: Request) -> JobCreate:
    try:
        form = await request.form()
    except StarletteHTTPException as exc:  # a body the multipart parser cannot read
        raise InvalidRequest(f"the multipart upload is not valid: {exc.detail}") from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("multipart upload needs a 'file' part with a .txt or .md file")
    name = (upload.filename or "").lower()
    ctype = (upload.content_type or "").split(";")[0].strip()
    if not name.endswith(TEXT_SUFFIXES) or not (
        ctype.startswith("text/") or ctype in ("", "application/octet-stream")
    ):
        # The file's name is not repeated: it may name the patient.
        raise UnsupportedMediaType(
            f"the uploaded file ({ctype or 'no type'}) is not a text document; "
            "upload a .txt or .md file"
        )
    raw_bytes = await upload.read()
    if b"\x00" in raw_bytes:
        raise UnsupportedMediaType("the uploaded file is binary, not text; upload .txt or .md")
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsupportedMediaType("the uploaded file is not UTF-8 text") from exc
    fields: dict[str, Any] = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
    for name in sorted(JOB_FORM_JSON_FIELDS & fields.keys()):
        try:
            fields[name] = parse_json(fields[name])
        except InvalidInput as exc:
            raise InvalidRequest(f"{name} must be a JSON object; it is {exc}") from exc
    return _validate({**fields, "document": text})


@router.post(
    "",
    status_code=201,
    response_model=JobPublic,
    responses={200: {"model": JobPublic, "description": "Idempotent replay"}, **_ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": JobCreate.model_json_schema()},
                "multipart/form-data": {"schema": JOB_FORM_SCHEMA},
            },
        }
    },
)
async def create_job(
    request: Request,
    response: Response,
    tenant: TenantDep,
    settings: SettingsDep,
    actor: ActorDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JobPublic:
    """Submit a document. The same ``Idempotency-Key`` returns the same job and runs it once."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _read_limited(request, settings.limits.max_request_bytes)
    if ctype == "application/json":
        job_in = _from_json(body)
    elif ctype == "multipart/form-data":
        job_in = await _from_multipart(request)
    else:
        raise UnsupportedMediaType(
            f"content type {ctype or 'none'!r} is not accepted; send application/json or "
            "multipart/form-data with a .txt/.md file"
        )
    # One hop to a thread for the whole transaction: the submit path is the API's hot path.
    public, created = await run_in_threadpool(
        _submit, tenant, jobs.JobRequest(**job_in.model_dump()), idempotency_key, settings, actor
    )
    if not created:
        response.status_code = 200
    return public


def _submit(
    tenant: Tenant,
    request: jobs.JobRequest,
    idempotency_key: str | None,
    settings: Settings,
    actor: Actor,
) -> tuple[JobPublic, bool]:
    with session_scope() as session:
        job, created = jobs.submit(
            session=session,
            tenant=tenant,
            request=request,
            idempotency_key=idempotency_key,
            settings=settings,
        )
        audit.record(session, actor, "job.submit", job_id=job.id)
        return to_public(job), created


@router.get("", response_model=JobPage, responses=_ERRORS)
def list_jobs(
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    actor: ActorDep,
    status: str | None = None,
    task: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> JobPage:
    rows, next_cursor = jobs.list_jobs(
        session=session, tenant=tenant, status=status, task=task, limit=limit, cursor=cursor
    )
    audit.record_jobs(session, actor, "job.list", [j.id for j in rows])
    return JobPage(items=[to_public(j) for j in rows], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobPublic, responses=_ERRORS)
def get_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    return to_public(jobs.get_job(session=session, tenant=tenant, job_id=job_id))


@router.get("/{job_id}/trace", response_model=TracePublic, responses=_ERRORS)
def get_trace(job_id: str, session: SessionDep, tenant: TenantDep) -> TracePublic:
    """Every candidate with its verifier verdicts, the selection rationale and the steps."""
    job = jobs.get_job(session=session, tenant=tenant, job_id=job_id)
    trace = read_trace(session, job)
    return TracePublic(
        job_id=job.id,
        status=job.status,
        strategy=job.config.get("strategy", {}),
        candidates=trace.candidates,
        selection=trace.selection,
        steps=trace.steps,
    )


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=_ERRORS)
def cancel_job(
    job_id: str, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> JobPublic:
    return to_public(jobs.cancel(session=session, tenant=tenant, job_id=job_id, settings=settings))
