"""Run one job: claim its lease, run its strategy with the worker's engine, write the
outcome and the outbox rows in one transaction. The Celery task is a thin wrapper."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from ponder.config import Settings
from ponder.db import DatabaseUnavailable, session_scope, with_retries
from ponder.engines.base import (
    Engine,
    EngineAborted,
    EngineRequestError,
    EngineUnavailable,
)
from ponder.errors import LeaseLost
from ponder.jobs import handoff, lease, preemption
from ponder.jobs.contract import CandidateSummary, FailingCheck, JobResult
from ponder.jobs.deaths import worker_of
from ponder.jobs.preemption import Preempted, PreemptibleRecorder
from ponder.jobs.trace import CancelRequested
from ponder.models import Job, JobStatus
from ponder.storable import storable, storable_text
from ponder.strategies import STRATEGIES
from ponder.strategies.budget import BudgetExhausted, DeadlineReached, TokenLedger
from ponder.strategies.config import StrategyConfig
from ponder.strategies.context import ModelHandOff, StrategyContext
from ponder.strategies.selection import StrategyOutcome, outcome_from
from ponder.tasktypes import TaskType
from ponder.verify import failing_checks
from tasks.registry import TASKS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    status: str
    """The job's status after this run, or ``busy`` / ``lease_lost`` / ``retry`` /
    ``quarantine`` (send it to the quarantine queue) / ``preempted`` (given back) /
    ``handed_off`` (sent to another model's pool)."""
    retry_in_s: float | None = None


class _Heartbeat:
    """Renews the lease while a long engine call is in flight. When the caller has cancelled
    the job, or this run has lost its lease, it aborts the job's engine call in flight (and
    any started later, at each beat) instead of letting it run to its end; the run then
    finds out why from its next write."""

    def __init__(self, job_id: str, token: int, settings: Settings, engine: Engine) -> None:
        self._stop = threading.Event()
        self._engine = engine
        self._thread = threading.Thread(
            target=self._beat, args=(job_id, token, settings), daemon=True, name=f"lease-{job_id}"
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self, job_id: str, token: int, settings: Settings) -> None:
        while not self._stop.wait(settings.worker.heartbeat_s):
            try:
                with session_scope() as session:
                    cancel = lease.renew_lease(
                        session=session, job_id=job_id, token=token, settings=settings
                    )
            except Exception:  # the database may be restarting; the next beat retries
                logger.warning("lease renewal for job %s failed; will retry", job_id)
                continue
            if cancel is None or cancel:
                self._engine.abort_job(job_id)


def run_job(
    *, job_id: str, engine: Engine, settings: Settings, owner: str, isolated: bool = False
) -> RunOutcome:
    """``isolated``: this worker runs one job at a time (the quarantine queue's)."""
    if preemption.requested():
        # Shutting down: claim nothing; the task sends the message again.
        return RunOutcome("preempted", retry_in_s=0.0)
    try:
        return _run(job_id=job_id, engine=engine, settings=settings, owner=owner, isolated=isolated)
    except DatabaseUnavailable:
        # Nothing more can be written; the lease expires and the reconciler sends the job
        # again, and the next run reuses the steps that were recorded.
        logger.error("job %s: PostgreSQL unreachable; this run stops without writing", job_id)
        return RunOutcome("database_unavailable")


def _claim(
    job_id: str, owner: str, settings: Settings, isolated: bool
) -> tuple[lease.Claim, Job | None]:
    def work(retrying: bool) -> tuple[lease.Claim, Job | None]:
        with session_scope() as session:
            claim = lease.claim(
                session=session, job_id=job_id, owner=owner, settings=settings, isolated=isolated
            )
            return claim, session.get(Job, job_id) if claim.outcome == "claimed" else None

    return with_retries(work, what=f"job {job_id}: claim")


def _run(
    *, job_id: str, engine: Engine, settings: Settings, owner: str, isolated: bool
) -> RunOutcome:
    claim, job = _claim(job_id, owner, settings, isolated)
    if claim.outcome == "busy":
        logger.info(
            "job %s: claim refused, another run holds the lease; retry in %.0fs",
            job_id,
            claim.retry_in_s or 0.0,
        )
        return RunOutcome("busy", retry_in_s=claim.retry_in_s)
    if job is None:
        return RunOutcome(claim.outcome)
    logger.info("job %s attempt %d claimed by %s", job_id, claim.attempt, owner)
    task = TASKS[job.task].for_document(job.document)
    config = StrategyConfig.model_validate(job.config["strategy"])
    model = settings.worker_model.name
    recorder = PreemptibleRecorder(
        job_id=job_id,
        token=claim.token,
        attempt=claim.attempt,
        task=task,
        settings=settings,
        model=model,
    )
    started = time.monotonic()
    try:
        with (
            preemption.in_flight(job_id, claim.token, owner, engine),
            _Heartbeat(job_id, claim.token, settings, engine),
        ):
            recorder.event(
                "started",
                {"attempt": claim.attempt, "strategy": config.model_dump(), "model": model},
            )
            if claim.quarantined:
                recorder.event("quarantine_run", {"worker": worker_of(owner), "alone": isolated})
            marker = settings.worker.test_poison_marker
            if marker and marker in job.document:
                _die_as_poison(job_id)
            ctx = StrategyContext.for_job(
                job_id=job_id,
                task=task,
                document=job.document,
                config=config,
                engine=engine,
                recorder=recorder,
                # The budget is the whole job's: what earlier attempts paid is spent already.
                ledger=TokenLedger(
                    spent=job.prompt_tokens + job.completion_tokens, thinking=job.thinking_tokens
                ),
                judges=_judges_frozen(task, job.config),
                time_limit_s=settings.worker.job_time_limit_s,
                complete_by=job.complete_by,
                model=model,
                handoffs=handoff.recorded(job_id),
            )
            try:
                outcome = STRATEGIES[config.name].run(ctx)
            except DeadlineReached as exc:
                # The caller's deadline: the same stop as the budget's, with its own reason.
                ctx.event("deadline_stop", reason=str(exc), tokens_spent=ctx.budget.spent)
                outcome = outcome_from(ctx.candidates, ctx, stopped_by="deadline")
            except BudgetExhausted as exc:
                # Finish with what the budget bought; unverified means needs_review.
                ctx.event("budget_stop", reason=str(exc), tokens_spent=ctx.budget.spent)
                outcome = outcome_from(ctx.candidates, ctx, stopped_by="budget")
            except EngineAborted:
                recorder.check()  # raises LeaseLost or CancelRequested: why it was aborted
                raise EngineUnavailable("the engine aborted a request of a live run") from None
            except EngineRequestError as exc:
                if not ctx.candidates:
                    raise
                # A follow-up the engine refuses (a refine prompt past the model's context)
                # ends the run with the candidates already verified, not as a failed job.
                ctx.event("engine_stop", reason=f"the engine refused a follow-up request: {exc}")
                outcome = outcome_from(ctx.candidates, ctx, stopped_by="engine_refused")
            try:
                recorder.check()
            except Preempted:
                pass  # the outcome is complete: write it rather than give the job back
        review_always = job.config.get("review") == "always"
        return _finish(
            job_id, claim.token, outcome, settings, time.monotonic() - started, review_always
        )
    except ModelHandOff as exc:
        return _hand_off(job_id, claim.token, owner, exc, settings)
    except Preempted:
        if not preemption.release(job_id, claim.token, owner):
            return RunOutcome("lease_lost")  # released already (past half the grace period)
        return RunOutcome("preempted")
    except LeaseLost:
        logger.warning("job %s: lease lost; this run stops without writing", job_id)
        return RunOutcome("lease_lost")
    except CancelRequested:
        return _end_with(
            job_id, claim.token, JobStatus.cancelled, "cancelled while running", settings
        )
    except EngineRequestError as exc:
        return _end_with(job_id, claim.token, JobStatus.failed, f"engine refused: {exc}", settings)
    except EngineUnavailable as exc:
        return _retry_or_fail(job_id, claim, f"engine unavailable: {exc}", settings)
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        # The type and the frames, never the message: it may quote the document.
        logger.error(
            "job %s failed with an internal error %s:\n%s",
            job_id,
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return _end_with(
            job_id,
            claim.token,
            JobStatus.failed,
            f"internal error ({type(exc).__name__})",
            settings,
        )


UNSTORABLE_CHECK: dict[str, Any] = {
    "verifier": "storable",
    "required": True,
    "findings": [
        "the answer held characters that cannot be stored (a NUL, an unpaired surrogate or a "
        "non-finite number); they are shown as \u2400, \ufffd or null: check it against the "
        "document"
    ],
}


REVIEW_POLICY_CHECK: dict[str, Any] = {
    "verifier": "review_policy",
    "required": True,
    "findings": [
        "the job asked for a person to sign off every answer (review: always); the answer "
        "passed every required check"
    ],
}


def _judges_frozen(task: TaskType, config: dict[str, Any]) -> bool:
    """Whether the job was submitted with its task's model-judge verifiers enabled: the
    frozen verifier list decides, not this worker's settings."""
    frozen = set(config.get("verifiers") or ())
    return any(v.judge and v.name in frozen for v in task.verifiers)


def _finish(
    job_id: str,
    token: int,
    outcome: StrategyOutcome,
    settings: Settings,
    wall_s: float,
    review_always: bool = False,
) -> RunOutcome:
    selected = outcome.selected
    status = JobStatus(outcome.status)
    output = (
        selected.parsed.model_dump(mode="json")
        if selected is not None and selected.parsed is not None
        else None
    )
    checks = failing_checks(selected.verdicts) if selected is not None else []
    stored_output = storable(output)
    if stored_output != output or (
        selected is not None and storable_text(selected.text) != selected.text
    ):
        # The answer holds what PostgreSQL cannot store (a NUL, a lone surrogate, NaN); the
        # caller gets stand-ins, which is not the answer that was checked: a person reviews.
        checks = [*checks, UNSTORABLE_CHECK]
        if status == JobStatus.succeeded:
            status = JobStatus.needs_review
    if review_always and status == JobStatus.succeeded:
        # Checked, and still a person's to sign off: the caller asked for it on this job.
        checks = [*checks, REVIEW_POLICY_CHECK]
        status = JobStatus.needs_review
    typed = JobResult(
        output=stored_output,
        selected=None if selected is None else CandidateSummary.model_validate(selected.summary()),
        rationale=outcome.rationale.get("reason"),
        failing_checks=[FailingCheck.model_validate(check) for check in checks],
        wall_s=round(wall_s, 3),
        summary=_summary(status.value, stored_output, checks),
    )
    result = storable(typed.model_dump())  # findings and the rationale may quote the answer

    def work(session: Session, job: Job) -> None:
        lease.finish(
            session=session,
            job=job,
            status=status,
            result=result,
            selected_candidate_id=selected.id if selected is not None else None,
            settings=settings,
        )

    ended = _ending(job_id, token, work)
    if ended is None:
        logger.warning("job %s: lease lost before finishing; result not written", job_id)
        return RunOutcome("lease_lost")
    return RunOutcome(ended)


def _ending(job_id: str, token: int, work: Callable[[Session, Job], None]) -> str | None:
    """Run the transaction that ends this run's job, retried while PostgreSQL is unreachable.
    Returns the job's status after it, or None if the lease was lost. A retry whose first
    try landed (the commit's acknowledgement was lost) finds the job ended under this run's
    token and returns that status instead of writing twice."""

    def attempt(retrying: bool) -> str | None:
        with session_scope() as session:
            job = lease.locked_for_run(session, job_id, token)
            if job is None:
                landed = session.get(Job, job_id) if retrying else None
                if (
                    landed is not None
                    and landed.lease_token == token
                    and JobStatus(landed.status).terminal
                ):
                    return landed.status
                return None
            work(session, job)
            return job.status

    return with_retries(attempt, what=f"job {job_id}: end")


def _summary(status: str, output: dict[str, Any] | None, checks: list[dict[str, Any]]) -> str:
    items = next((len(v) for v in (output or {}).values() if isinstance(v, list)), None)
    found = f"{items} item(s)" if items is not None else "an answer"
    if status == "succeeded":
        return f"{found}; passed every required check"
    failing = ", ".join(f["verifier"] for f in checks) or "none"
    return f"{found}; needs review, failing checks: {failing}"


def _end_with(
    job_id: str, token: int, status: JobStatus, error: str, settings: Settings
) -> RunOutcome:
    def work(session: Session, job: Job) -> None:
        lease.finish(session=session, job=job, status=status, error=error, settings=settings)

    ended = _ending(job_id, token, work)
    if ended is None:
        return RunOutcome("lease_lost")
    logger.info("job %s ended %s", job_id, ended)
    return RunOutcome(ended)


def _hand_off(
    job_id: str, token: int, owner: str, exc: ModelHandOff, settings: Settings
) -> RunOutcome:
    """The strategy escalates to a rung on another model: that model's pool continues the job
    (ponder/jobs/handoff.py)."""
    if exc.to_model not in settings.registry.entries:
        # Frozen at submission against a registry this worker no longer has.
        return _end_with(
            job_id,
            token,
            JobStatus.failed,
            f"escalation to a model not in this worker's registry ({exc.to_model})",
            settings,
        )
    if not handoff.hand_off(
        job_id=job_id, token=token, owner=owner, handoff=exc, settings=settings
    ):
        return RunOutcome("lease_lost")
    return RunOutcome("handed_off")


def _die_as_poison(job_id: str) -> None:
    """Test-only (``worker.test_poison_marker``, refused in production): this input kills the
    worker process, as an engine crash on it would, a second in so its neighbours are in
    flight."""
    logger.error("job %s: test poison marker; this worker process dies in 1 s", job_id)
    time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)


def _retry_or_fail(job_id: str, claim: lease.Claim, reason: str, settings: Settings) -> RunOutcome:
    # Charged: runs less deaths in a crowd, which were not the job's doing.
    if claim.charged >= settings.worker.max_attempts or claim.attempt >= settings.worker.max_runs:
        return _end_with(
            job_id,
            claim.token,
            JobStatus.failed,
            f"{reason} (gave up after {claim.attempt} attempts)",
            settings,
        )

    def work(retrying: bool) -> bool:
        with session_scope() as session:
            job = lease.locked_for_run(session, job_id, claim.token)
            if job is None:
                return False
            lease.release_for_retry(session=session, job=job, reason=reason)
            return True

    # A retry whose first try landed finds the job queued and reports the lease lost: the
    # job is released either way and the reconciler sends it again.
    if not with_retries(work, what=f"job {job_id}: release for retry"):
        return RunOutcome("lease_lost")
    delay = min(300.0, settings.worker.retry_base_s * 2 ** (claim.attempt - 1))
    logger.warning("job %s: %s; retry in %.0fs", job_id, reason, delay)
    return RunOutcome("retry", retry_in_s=delay)
