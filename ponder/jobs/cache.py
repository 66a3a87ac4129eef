"""The result cache and single flight, decided at a job's claim: a job identical to one of its
tenant's that already succeeded is answered from it, and one identical to a run in flight
waits for that run instead of paying the engine twice. No commits here."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from ponder.config import Settings
from ponder.jobs import ending
from ponder.jobs.events import append_job_event
from ponder.models import Job, JobStatus, utcnow
from ponder.ops import rollups
from ponder.scoping import readable_jobs

logger = logging.getLogger(__name__)

WAIT_FOR_TWIN_S = 3.0
"""How long a job identical to a run in flight waits before its next claim: that run's end
then answers it from the cache (or, if the run did not succeed, the job runs itself)."""

REVIEW_DECISIONS_CACHED = ("approved", "corrected")
"""A ``reviewed`` source answers only when a person stood behind an answer: a rejected one
has none to give."""

NOT_IN_KEY = frozenset({"cache", "model_requested", "model_used", "fallback_model"})
"""Keys of the frozen configuration that do not change the answer (the registry's names:
``model`` and ``engine`` say which model answers). The strategy's
``priority`` is left out too: it orders the queue, it does not shape the result."""


def cache_key(job: Job) -> str:
    """The tenant, the task, the document's hash and the frozen configuration (strategy,
    params, n, seed, budget, model, engine, verifiers, template and its version)."""
    config: dict[str, Any] = {k: v for k, v in job.config.items() if k not in NOT_IN_KEY}
    config["strategy"] = {k: v for k, v in config["strategy"].items() if k != "priority"}
    document = hashlib.sha256(job.document.encode("utf-8", "surrogatepass")).hexdigest()
    canonical = json.dumps(
        {"tenant": job.tenant_id, "task": job.task, "document": document, "config": config},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def mode_of(job: Job) -> str:
    """``use``, ``refresh`` or ``off``; jobs frozen before the cache existed ``use`` it."""
    return str(job.config.get("cache", "use"))


def at_claim(session: Session, job: Job, settings: Settings) -> str | None:
    """Called by the claim, under the job's row lock, before a run takes the lease. Returns
    ``cached`` (the job was answered from the cache and ended), ``waiting`` (an identical run
    is in flight: claim again later) or None (run it)."""
    mode = mode_of(job)
    if mode == "off":
        return None
    key = cache_key(job)
    # One claim at a time per key, until its transaction commits: of two identical jobs
    # claimed at once, the second sees the first's key on a running row and waits.
    lock_id = int.from_bytes(bytes.fromhex(key[:16]), "big", signed=True)
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id)))
    job.cache_key = key
    session.add(job)
    if mode == "refresh":
        return None  # runs; its answer is then the newest source for the key
    source = _finished_source(session, job, key)
    if source is not None:
        _answer_from(session, job, source, settings)
        return "cached"
    if _running_twin(session, job, key):
        job.enqueued_at = utcnow()  # waiting on purpose: not stale for the reconciler
        logger.info("job %s waits for an identical run in flight", job.id)
        return "waiting"
    return None


def _finished_source(session: Session, job: Job, key: str) -> Job | None:
    """The newest job of the tenant with this key that ran (not itself a cache hit) and
    ended with an answer to give, while its content is kept: retention's purge or a
    deletion removes it from the cache with its content."""
    decision = col(Job.result)["review"]["decision"].astext
    return session.exec(
        readable_jobs(job.tenant_id)
        .where(
            col(Job.cache_key) == key,
            col(Job.id) != job.id,
            col(Job.cached_from).is_(None),
            col(Job.purged_at).is_(None),
            col(Job.deleted_at).is_(None),
            col(Job.result).is_not(None),
            sa.or_(
                col(Job.status) == JobStatus.succeeded.value,
                sa.and_(
                    col(Job.status) == JobStatus.reviewed.value,
                    decision.in_(REVIEW_DECISIONS_CACHED),
                ),
            ),
        )
        .order_by(col(Job.finished_at).desc())
        .limit(1)
    ).first()


def _running_twin(session: Session, job: Job, key: str) -> bool:
    """Whether an identical job of the tenant is running under a live lease (a dead run's
    job is not waited for: its next claim, or this job, runs it)."""
    twin = session.exec(
        readable_jobs(job.tenant_id)
        .where(
            col(Job.cache_key) == key,
            col(Job.status) == JobStatus.running.value,
            col(Job.id) != job.id,
            col(Job.lease_expires_at) > sa.func.now(),
        )
        .limit(1)
    ).first()
    return twin is not None


def _answer_from(session: Session, job: Job, source: Job, settings: Settings) -> None:
    """End ``job`` with ``source``'s answer and status: no engine call, zero tokens; the trace
    says where the answer came from and what it saved; notified like any ending."""
    job.result = source.result
    job.cached_from = source.id
    # The answer's candidates and verdicts are the source's trace (its ``selected`` names
    # them); this job has none of its own.
    job.selected_candidate_id = None
    job.started_at = job.started_at or utcnow()
    saved = source.prompt_tokens + source.completion_tokens
    append_job_event(
        session,
        job,
        "cache_hit",
        {
            "source_job_id": source.id,
            "source_status": source.status,
            "tokens_saved": saved,
            "engine_wall_s_saved": source.engine_wall_s,
        },
    )
    ending.end(session, job, JobStatus(source.status), error=None, settings=settings)
    conn = session.connection()
    rollups.add(conn, "cache_hits", (job.task,), 1)
    rollups.add(conn, "cache_tokens_saved", (job.task,), saved)
    # The QA sample measures the machine's runs: a copy of one adds no evidence.
    job.qa_sampled = False
    session.add(job)
    logger.info(
        "job %s answered from the cache by job %s (%d tokens saved)", job.id, source.id, saved
    )
