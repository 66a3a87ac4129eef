"""The job service: submit, read, cancel, and a run's claim/lease/finish. No commits here:
the caller's ``session_scope()`` (or the API's session dependency) owns the transaction."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ConfigDict, ValidationError
from sqlmodel import Session, col, select

from ponder.batches.state import close_batch_if_ended
from ponder.config import Settings
from ponder.db import after_commit
from ponder.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from ponder.idempotency import create_once
from ponder.jobs import deaths
from ponder.jobs import state as job_state
from ponder.jobs.contract import JobBase
from ponder.jobs.knobs import KnobsStore
from ponder.models import Job, JobStatus, Tenant, utcnow
from ponder.notify.endpoints import usable_endpoint_id
from ponder.notify.outbox import enqueue_job_notifications
from ponder.notify.webhooks import UnsafeWebhookURL, check_webhook_url
from ponder.pages import newest_first
from ponder.queue import send_run_job
from ponder.reviews.sampling import is_sampled
from ponder.scoping import readable_jobs
from ponder.strategies import STRATEGIES
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


def frozen_config(request: JobRequest, settings: Settings, tenant_name: str) -> dict[str, Any]:
    """Check the request against the task, strategy, limits and the tenant's caps; return the
    configuration frozen on the job row. Also used for every line of a batch upload."""
    task = TASKS.get(request.task)
    if task is None:
        # What is allowed, never the caller's value back (it may be anything).
        raise InvalidRequest(
            f"unknown task; valid tasks: {', '.join(sorted(TASKS))}", valid=sorted(TASKS)
        )
    request = _with_task_defaults(request, settings)
    caps = knobs_store(settings.knobs_file).current().caps_for(tenant_name)
    assert request.strategy is not None
    strategy = STRATEGIES.get(request.strategy)
    if strategy is None:
        raise InvalidRequest(
            f"unknown strategy; valid strategies: {', '.join(sorted(STRATEGIES))}",
            valid=sorted(STRATEGIES),
        )
    limits = settings.limits
    n = strategy.fixed_n or (request.n if request.n is not None else limits.default_n)
    if strategy.fixed_n and request.n not in (None, strategy.fixed_n):
        raise InvalidRequest(f"strategy {strategy.name} draws exactly {strategy.fixed_n} sample")
    max_n = min(limits.max_n, caps.max_n or limits.max_n)
    if not limits.min_n <= n <= max_n:
        raise InvalidRequest(f"n must be between {limits.min_n} and {max_n}, got {n}")
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
        priority=capped_priority(request.priority, caps.highest_priority),
        budget_tokens=request.budget_tokens,
        seed=request.seed,
        params=params,
    )
    return {
        "strategy": config.model_dump(),
        "model": settings.model_path if settings.engine.kind == "vllm" else settings.engine.model,
        "engine": settings.engine.kind,
        "verifiers": [
            "schema",
            *task.verifier_names(judges=task.judges_enabled(settings.tasks.judge_verifiers)),
        ],
        "template": task.template,
        "template_version": task.template_version(),
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


@functools.lru_cache(maxsize=4)
def knobs_store(path: Path | None) -> KnobsStore:
    return KnobsStore(path)


def submit(
    *,
    session: Session,
    tenant: Tenant,
    request: JobRequest,
    idempotency_key: str | None,
    settings: Settings,
) -> tuple[Job, bool]:
    """Write the job and enqueue it after commit. Returns (job, created)."""
    config = frozen_config(request, settings, tenant.name)
    endpoint_id = usable_endpoint_id(session, tenant.id, request.webhook_endpoint_id)
    fingerprint = request.fingerprint()

    def add_job() -> Job:
        job = Job(
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
        after_commit(session, lambda: send_run_job(job.id, job.priority))
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
        _end(session, job, JobStatus.cancelled,
             error="cancelled by the caller before it started", settings=settings)  # fmt: skip
    else:
        job.cancel_requested = True
    session.add(job)
    return job


# -- a run's lease ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    outcome: str
    """``claimed``; ``ended`` (terminal, nothing to do); ``busy`` (another live run holds the
    lease); ``exhausted`` (runs charged to the job used up: it was failed); ``quarantine``
    (the job runs only alone: send it to the quarantine queue)."""
    token: int = 0
    attempt: int = 0
    retry_in_s: float = 0.0
    charged: int = 0
    """Runs charged to the job, this one included: attempts less deaths in a crowd."""
    quarantined: bool = False


def claim(
    *, session: Session, job_id: str, owner: str, settings: Settings, isolated: bool = False
) -> Claim:
    """Take the job's lease. The row is locked first, so a death found here (a run whose
    lease expired) is counted once; the lease is then taken by one conditional UPDATE, so two
    runs can never both hold it. ``isolated``: the caller runs one job at a time (the
    quarantine worker); a quarantined job is claimed by no other."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or JobStatus(job.status).terminal:
        return Claim("ended")
    now = session.execute(sa.select(sa.func.now())).scalar_one()
    if job.lease_expires_at is not None and job.lease_expires_at > now:
        remaining = (job.lease_expires_at - now).total_seconds()
        return Claim("busy", retry_in_s=max(1.0, remaining + 1.0))
    if job.status == JobStatus.running.value:
        deaths.record_death(session, job, settings, now)
        # The dead run's lease is over: queued again, so the death is counted once whatever
        # this claim decides next.
        job_state.move(job, JobStatus.queued)
        job.lease_owner = None
        job.lease_expires_at = None
    reason = deaths.exhausted_reason(job, settings)
    if reason is not None:
        # A job whose runs kill their worker: fail it instead of looping.
        _end(session, job, JobStatus.failed, error=reason, settings=settings)
        return Claim("exhausted")
    if job.quarantined_at is not None and not isolated:
        waited = (now - job.quarantined_at).total_seconds()
        if waited > settings.worker.quarantine_wait_alert_s:
            logger.error(
                "job %s has waited %.0fs in quarantine: is a worker serving the quarantine "
                "queue (celery -A worker.app worker -Q quarantine -c 1)?",
                job.id,
                waited,
            )
        job.enqueued_at = utcnow()  # sent on to the quarantine queue: not stale
        session.add(job)
        return Claim("quarantine", quarantined=True)
    quarantined = job.quarantined_at is not None
    session.add(job)
    session.flush()
    ttl = timedelta(seconds=settings.worker.lease_ttl_s)
    row = session.execute(
        # From queued, or from running whose lease expired (job_state.TRANSITIONS).
        job_state.bulk_move(
            col(Job.id) == job_id,
            sa.or_(col(Job.lease_expires_at).is_(None), col(Job.lease_expires_at) < sa.func.now()),
            to=JobStatus.running,
            attempts=Job.attempts + 1,
            lease_owner=owner,
            lease_token=Job.lease_token + 1,
            lease_expires_at=sa.func.now() + ttl,
            started_at=sa.func.coalesce(Job.started_at, sa.func.now()),
        ).returning(col(Job.lease_token), col(Job.attempts), col(Job.crowd_deaths))
    ).first()
    session.expire(job)
    if row is None:  # not reachable under the row lock; refuse rather than run twice
        return Claim("busy", retry_in_s=1.0)
    return Claim(
        "claimed",
        token=row[0],
        attempt=row[1],
        charged=row[1] - row[2],
        quarantined=quarantined,
    )


@dataclass(frozen=True)
class FairTurn:
    """A queued job of a tenant with fewer jobs running, to run in place of the message's job."""

    job_id: str
    priority: int


def fairer_job(*, session: Session, job_id: str) -> FairTurn | None:
    """The job a worker should run for a message naming ``job_id``: None to run that job, or the
    first queued job of the tenant with the fewest jobs running, when that tenant has fewer
    running than ``job_id``'s (then by priority, then age). The message's job is then sent to
    the broker again after commit, so every queued job keeps a message of its own.

    The broker serves messages in priority and arrival order, so without this a tenant that
    queued 50,000 items ahead of another tenant's job would run all of them first. Here a
    message is a turn at a worker slot and the turn goes to the tenant with the fewest jobs
    running: another tenant's job starts at the next claim after it is queued, whatever is in
    the broker ahead of it. With one tenant, or when the message's tenant runs no more than
    anyone waiting, nothing changes. Claim, lease and fencing are untouched: the chosen job is
    claimed like any other, so a race for it costs a ``busy`` claim, never a second run.

    Only jobs never started (``attempts = 0``) are chosen: a job waiting for its retry backoff
    runs from its own (delayed) message."""
    mine = session.execute(
        sa.select(col(Job.tenant_id), col(Job.priority)).where(
            col(Job.id) == job_id, col(Job.status) == JobStatus.queued.value
        )
    ).first()
    if mine is None:
        return None  # running, ended or missing: the claim says what to do
    tenant_id, priority = mine
    running: dict[str, int] = {
        tenant: count
        for tenant, count in session.execute(
            sa.select(col(Job.tenant_id), sa.func.count())
            .where(col(Job.status) == JobStatus.running.value)
            .group_by(col(Job.tenant_id))
        ).all()
    }
    own = running.get(tenant_id, 0)
    if own == 0:
        return None
    crowded = [tenant for tenant, count in running.items() if count >= own]  # own tenant too
    running_of_tenant = sa.case(running, value=col(Job.tenant_id), else_=0)
    fairer = session.execute(
        sa.select(col(Job.id), col(Job.priority))
        .where(
            col(Job.status) == JobStatus.queued.value,
            col(Job.attempts) == 0,
            col(Job.tenant_id).not_in(crowded),
        )
        .order_by(running_of_tenant, col(Job.priority), col(Job.created_at))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if fairer is None:
        return None
    session.execute(sa.update(Job).where(col(Job.id) == job_id).values(enqueued_at=utcnow()))
    after_commit(session, functools.partial(send_run_job, job_id, priority))
    logger.info("job %s runs before job %s: its tenant has fewer jobs running", fairer[0], job_id)
    return FairTurn(job_id=fairer[0], priority=fairer[1])


def renew_lease(*, session: Session, job_id: str, token: int, settings: Settings) -> bool | None:
    """Extend the lease if this run still holds it. Returns the cancel flag, or None if the
    lease was lost."""
    row = session.execute(
        sa.update(Job)
        .where(
            col(Job.id) == job_id,
            col(Job.lease_token) == token,
            col(Job.status) == JobStatus.running.value,
        )
        .values(lease_expires_at=sa.func.now() + timedelta(seconds=settings.worker.lease_ttl_s))
        .returning(col(Job.cancel_requested))
    ).first()
    return None if row is None else bool(row[0])


def locked_for_run(session: Session, job_id: str, token: int) -> Job | None:
    """The job row, locked, if this run still holds its lease."""
    job = session.exec(
        select(Job)
        .where(Job.id == job_id, Job.lease_token == token, Job.status == JobStatus.running.value)
        .with_for_update()
    ).first()
    return job


def finish(
    *,
    session: Session,
    job: Job,
    status: JobStatus,
    settings: Settings,
    result: dict[str, Any] | None = None,
    selected_candidate_id: str | None = None,
    error: str | None = None,
) -> None:
    """End a run that holds the lease (the caller locked the row with ``locked_for_run``)."""
    job.result = result
    job.selected_candidate_id = selected_candidate_id
    _end(session, job, status, error=error, settings=settings)


def release_for_retry(*, session: Session, job: Job, reason: str) -> None:
    """Give the job back to the queue after a transient failure (engine unavailable)."""
    job_state.move(job, JobStatus.queued)
    job.lease_owner = None
    job.lease_expires_at = None
    job.error = reason
    job.enqueued_at = utcnow()
    session.add(job)


def release_preempted(*, session: Session, job: Job, worker: str) -> None:
    """Give back the job of a run stopped by its worker's shutdown (SIGTERM): the lease is
    released at once rather than left to expire, the attempt is not counted (the job did
    nothing wrong), and the job is sent to the broker again after commit. Recorded steps
    stay and are reused by the next run."""
    job_state.move(job, JobStatus.queued)
    deaths.append_event(session, job, "preempted", {"worker": worker})
    job.attempts -= 1
    job.lease_owner = None
    job.lease_expires_at = None
    job.enqueued_at = utcnow()
    session.add(job)
    after_commit(session, functools.partial(send_run_job, job.id, job.priority))
    logger.info("job %s given back to the queue: its worker %s is shutting down", job.id, worker)


def _end(
    session: Session, job: Job, status: JobStatus, *, error: str | None, settings: Settings
) -> None:
    job_state.move(job, status)
    job.error = error
    job.finished_at = utcnow()
    if status == JobStatus.succeeded:
        # Decided once, as it ends: the QA sample a person reviews to measure precision.
        rate = knobs_store(settings.knobs_file).current().for_task(job.task).qa_sample_rate
        job.qa_sampled = is_sampled(job.id, rate)
    job.cost = settings.cost.cost(
        prompt=job.prompt_tokens, completion=job.completion_tokens, engine_s=job.engine_wall_s
    )
    job.lease_owner = None
    job.lease_expires_at = None
    session.add(job)
    _after_end(session, job, settings)
    logger.info("job %s ended %s", job.id, job.status)


def _after_end(session: Session, job: Job, settings: Settings) -> None:
    """In the transaction that ends the job: its notifications, and its batch's report when it
    was the batch's last item."""
    session.flush()
    enqueue_job_notifications(session=session, job=job, settings=settings)
    if job.batch_id is not None:
        close_batch_if_ended(session=session, batch_id=job.batch_id, settings=settings)
