"""The job service: validate and submit a request, read, list and cancel jobs. No commits
here: the caller's ``session_scope()`` (or the API's session dependency) owns the transaction."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from pydantic import ConfigDict, ValidationError
from sqlmodel import Session, col

from ponder.config import Settings
from ponder.db import after_commit
from ponder.engines.registry import UnknownModel
from ponder.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from ponder.idempotency import create_once
from ponder.jobs import arms, ending, routing
from ponder.jobs.contract import JobBase
from ponder.jobs.knobs import knobs_store
from ponder.models import Job, JobStatus, Tenant, new_id, utcnow
from ponder.notify.endpoints import usable_endpoint_id
from ponder.notify.webhooks import UnsafeWebhookURL, check_webhook_url
from ponder.pages import newest_first
from ponder.queue import send_run_job
from ponder.scoping import readable_jobs
from ponder.strategies import STRATEGIES, auto
from ponder.strategies.budget import MIN_USEFUL_OUTPUT_TOKENS
from ponder.strategies.config import StrategyConfig
from ponder.validation import is_blank, validation_problems
from tasks.registry import TASKS

logger = logging.getLogger(__name__)


class JobRequest(JobBase):
    """A submission as the service takes it: ``JobBase``'s fields, their types checked; the
    limits, the task and the strategy are checked by ``frozen_config``."""

    model_config = ConfigDict(frozen=True)

    def fingerprint(self) -> str:
        """Stable for the same fields: an idempotent replay must send the same request."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


def frozen_config(
    request: JobRequest, settings: Settings, tenant_name: str, *, job_id: str | None = None
) -> dict[str, Any]:
    """Check the request against the task, strategy, limits and the tenant's caps; return the
    configuration frozen on the job row. Also used for every line of a batch upload. With the
    job's id, a job that leaves its configuration to the knobs may be given one of its task's
    A/B arms instead (ponder/jobs/arms.py)."""
    config = _checked_config(request, settings, tenant_name)
    if job_id is None:
        return config
    return arms.with_arm(
        config,
        request,
        arms=knobs_store(settings.knobs_file).current().for_task(request.task).arms,
        job_id=job_id,
        checked=lambda arm_request: _checked_config(arm_request, settings, tenant_name),
    )


def _checked_config(request: JobRequest, settings: Settings, tenant_name: str) -> dict[str, Any]:
    task = TASKS.get(request.task)
    if task is None:
        # What is allowed, never the caller's value back (it may be anything).
        raise InvalidRequest(
            f"unknown task; valid tasks: {', '.join(sorted(TASKS))}", valid=sorted(TASKS)
        )
    request = _with_task_defaults(request, settings)
    task_knobs = knobs_store(settings.knobs_file).current().for_task(request.task)
    try:
        model = settings.registry.get(
            request.model if request.model is not None else task_knobs.model
        )
    except UnknownModel as exc:
        raise InvalidRequest(str(exc), valid=settings.registry.names()) from exc
    caps = knobs_store(settings.knobs_file).current().caps_for(tenant_name)
    assert request.strategy is not None
    strategy = STRATEGIES.get(request.strategy)
    if strategy is None:
        raise InvalidRequest(
            f"unknown strategy; valid strategies: {', '.join(sorted(STRATEGIES))}",
            valid=sorted(STRATEGIES),
        )
    if task.strategies is not None and strategy.name not in task.strategies:
        raise InvalidRequest(
            f"task {task.name} runs with the strategies {', '.join(sorted(task.strategies))}; "
            f"not {strategy.name}",
            valid=sorted(task.strategies),
        )
    limits = settings.limits
    n = strategy.fixed_n or (request.n if request.n is not None else limits.default_n)
    if strategy.fixed_n and request.n not in (None, strategy.fixed_n):
        raise InvalidRequest(f"strategy {strategy.name} draws exactly {strategy.fixed_n} sample")
    max_n = min(limits.max_n, caps.max_n or limits.max_n)
    if not limits.min_n <= n <= max_n:
        raise InvalidRequest(f"n must be between {limits.min_n} and {max_n}, got {n}")
    if strategy.name == auto.NAME:
        request = _with_band_table(request, settings, max_n)
    if (
        request.budget_tokens is not None
        and caps.max_budget_tokens is not None
        and request.budget_tokens > caps.max_budget_tokens
    ):
        raise InvalidRequest(
            f"budget_tokens={request.budget_tokens} exceeds this tenant's cap of "
            f"{caps.max_budget_tokens}"
        )
    if is_blank(request.document):  # zero-width spaces, a BOM, bidi marks: nothing to read
        raise InvalidRequest("document is empty: send the text to analyse in 'document'")
    max_chars = min(task.max_document_chars, limits.max_document_chars)
    if len(request.document) > max_chars:
        raise PayloadTooLarge(
            f"document has {len(request.document)} characters; the limit for task "
            f"{task.name} is {max_chars}"
        )
    try:
        # A task whose messages and answer schema come with each document (chat_completion)
        # reads them here: a document it cannot run is refused now, not failed by a worker.
        task = task.for_document(request.document)
    except ValueError as exc:
        raise InvalidRequest(f"document is not a valid {task.name} request: {exc}") from exc
    if request.webhook_url:
        try:
            check_webhook_url(request.webhook_url, allow_hosts=settings.notify.webhook_allow_hosts)
        except UnsafeWebhookURL as exc:
            raise InvalidRequest(f"webhook_url refused: {exc}") from exc
    try:
        params = strategy.validate_params(request.params)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc))
        raise InvalidRequest(
            f"invalid params for strategy {strategy.name}: {problems}; "
            f"valid parameters: {', '.join(strategy.parameter_help()) or 'none'}"
        ) from exc
    _check_early_stop(params, n=n, engine_kind=model.kind)
    if request.budget_tokens is not None:
        # A conservative estimate (3 characters a token) of the prompt plus one short sample.
        needed = len(request.document) // 3 + 300 + MIN_USEFUL_OUTPUT_TOKENS
        if request.budget_tokens < needed:
            raise InvalidRequest(
                f"budget_tokens={request.budget_tokens} is too small for even one sample of "
                f"this document; give at least {needed}"
            )
    config = StrategyConfig(
        name=strategy.name,
        n=n,
        max_tokens=min(task.max_output_tokens, limits.max_tokens_per_sample),
        temperature=task.temperature,
        priority=capped_priority(request.priority, caps.highest_priority),
        budget_tokens=request.budget_tokens,
        seed=request.seed,
        params=params,
    )
    return {
        "strategy": config.model_dump(),
        **routing.model_fields(
            model,
            requested=model.name,
            fallback=task_knobs.fallback_model if task_knobs.fallback_model != model.name else None,
        ),
        "verifiers": [
            "schema",
            *task.verifier_names(judges=task.judges_enabled(settings.tasks.judge_verifiers)),
        ],
        "template": task.template,
        "template_version": task.template_version(),
        # How the job uses the result cache; not part of its cache key (ponder/jobs/cache.py).
        "cache": request.cache or settings.result_cache,
        # Whether a person signs off every answer or only a failing one (ponder/jobs/runner.py).
        "review": request.review,
    }


def capped_priority(priority: int, highest: int | None) -> int:
    """A priority more urgent than the tenant's cap (``highest_priority`` in the knobs file) is
    lowered to it rather than refused: the API's default priority and a batch's or nightly
    run's cannot tell a caller's choice from a default, and running a job a little later is
    always safe. The job's row shows the priority it runs at."""
    return priority if highest is None else max(priority, highest)


def _with_task_defaults(request: JobRequest, settings: Settings) -> JobRequest:
    """Fill what the caller left out from the task's section of the knobs file."""
    knobs = knobs_store(settings.knobs_file).current().for_task(request.task)
    strategy = request.strategy or knobs.strategy or "best_of_n"
    same = strategy == knobs.strategy
    return request.model_copy(
        update={
            "strategy": strategy,
            "n": request.n if request.n is not None else (knobs.n if same else None),
            "params": request.params
            if request.params is not None
            else (knobs.params if same else None),
            "budget_tokens": request.budget_tokens
            if request.budget_tokens is not None
            else knobs.budget_tokens,
        }
    )


def _with_band_table(request: JobRequest, settings: Settings, max_n: int) -> JobRequest:
    """``auto``'s params are its task's band table in the knobs file, frozen on the job so
    that its route can be replayed."""
    table = knobs_store(settings.knobs_file).current().for_task(request.task).auto
    if table is None:
        raise InvalidRequest(
            f"strategy auto needs a band table for task {request.task} and the knobs file has "
            f"none ([tasks.{request.task}.auto]); choose another strategy"
        )
    if request.params:
        raise InvalidRequest(
            "strategy auto takes no params: its bands come from the knobs file's "
            f"[tasks.{request.task}.auto] table"
        )
    for position, band in enumerate(table.bands):
        if band.n is not None and band.n > max_n:
            raise InvalidRequest(
                f"strategy auto's band {position} draws n={band.n}, above this tenant's "
                f"limit of {max_n}; choose another strategy"
            )
    return request.model_copy(update={"params": table.model_dump()})


def _check_early_stop(params: dict[str, Any], *, n: int, engine_kind: str) -> None:
    """``early_stop`` aborts single samples inside the in-process engine's step loop; a remote
    OpenAI-compatible server returns an n-sample request whole and cannot abort one sample."""
    early_stop = params.get("early_stop")
    if early_stop is None:
        return
    if engine_kind != "vllm":
        raise InvalidRequest(
            "params.early_stop needs the in-process engine (engine.kind=vllm); this deployment "
            "uses a remote OpenAI-compatible engine, which cannot stop one sample of a request: "
            "remove early_stop"
        )
    if n <= early_stop["warmup"]:
        raise InvalidRequest(
            f"params.early_stop.warmup={early_stop['warmup']} must be below n={n}: warm-up "
            "samples are never stopped, so none would be left to stop"
        )


def submit(
    *,
    session: Session,
    tenant: Tenant,
    request: JobRequest,
    idempotency_key: str | None,
    settings: Settings,
) -> tuple[Job, bool]:
    """Write the job and enqueue it after commit. Returns (job, created)."""
    job_id = new_id()  # before the configuration: an A/B arm is chosen from it
    config = frozen_config(request, settings, tenant.name, job_id=job_id)
    endpoint_id = usable_endpoint_id(session, tenant.id, request.webhook_endpoint_id)
    fingerprint = request.fingerprint()

    def add_job() -> Job:
        job = Job(
            id=job_id,
            tenant_id=tenant.id,
            task=request.task,
            priority=config["strategy"]["priority"],  # capped for the tenant
            request_hash=fingerprint,
            config=config,
            document=request.document,
            metadata_=request.metadata,
            webhook_url=request.webhook_url,
            webhook_endpoint_id=endpoint_id,
            email=request.email,
            # A time already past is accepted: the claim ends the job ``expired``, notified
            # like any ending, rather than a refusal the caller cannot tell from bad input.
            complete_by=request.complete_by,
            enqueued_at=utcnow(),
        )
        session.add(job)
        return job

    job, created = create_once(
        session=session,
        key=idempotency_key,
        fingerprint=fingerprint,
        same_key=readable_jobs(tenant.id).where(col(Job.idempotency_key) == idempotency_key),
        create=add_job,
        what="request",
    )
    if created:
        queue = routing.route(session, job, settings, reason="submit")
        after_commit(session, lambda: send_run_job(job.id, job.priority, queue=queue))
    return job, created


def get_job(*, session: Session, tenant: Tenant, job_id: str) -> Job:
    job = session.exec(readable_jobs(tenant.id).where(col(Job.id) == job_id)).first()
    if job is None:
        raise NotFound(f"no job {job_id}")  # another tenant's job is indistinguishable
    return job


def list_jobs(
    *,
    session: Session,
    tenant: Tenant,
    status: str | None,
    task: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Job], str | None]:
    """Newest first; the cursor is the (created_at, id) of the last row of the page."""
    query = readable_jobs(tenant.id)
    if status:
        if status not in {s.value for s in JobStatus}:
            raise InvalidRequest(f"unknown status; valid: {', '.join(s.value for s in JobStatus)}")
        query = query.where(Job.status == status)
    if task:
        query = query.where(Job.task == task)
    return newest_first(session, query, Job, limit=limit, cursor=cursor)


def cancel(*, session: Session, tenant: Tenant, job_id: str, settings: Settings) -> Job:
    """A queued job is cancelled at once; a running one by its run, which sees the flag at its
    next heartbeat or write (the heartbeat aborts the engine call in flight)."""
    job = get_job(session=session, tenant=tenant, job_id=job_id)
    session.refresh(job, with_for_update=True)
    if JobStatus(job.status).terminal:
        raise Conflict(f"job {job.id} already ended with status {job.status}")
    if job.status == JobStatus.queued:
        ending.end(session, job, JobStatus.cancelled,
             error="cancelled by the caller before it started", settings=settings)  # fmt: skip
    else:
        job.cancel_requested = True
    session.add(job)
    return job
