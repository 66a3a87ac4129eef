"""Run a dataset through the real pipeline: the job service submits every item for one
strategy at a time, a real Celery worker subprocess with the real engine runs them
concurrently, and each job's answer, tokens, cost and timing are read back from PostgreSQL."""

from __future__ import annotations

import functools
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from sqlmodel import Session, col, select

from ponder.cli.localrun import start_worker, stop
from ponder.config import Settings
from ponder.db import after_commit, session_scope
from ponder.errors import PonderError
from ponder.evaluation.loaders import EvalItem
from ponder.jobs import service as jobs
from ponder.models import Job, JobStatus, Tenant, utcnow
from ponder.queue import send_run_job
from ponder.strategies import STRATEGIES
from ponder.tenants import create_tenant

EVAL_TENANT = "ponder-eval"
"""Evaluation jobs belong to their own tenant, apart from any caller's jobs."""
ILLUSTRATIVE_PRICES = (0.05, 0.20)
"""USD per million prompt and completion tokens when none are given or configured."""


@dataclass(frozen=True)
class StrategySpec:
    text: str
    """As the user wrote it ("best_of_n:8"): the key of its results."""
    name: str
    n: int | None


def parse_strategies(text: str) -> list[StrategySpec]:
    """``name`` or ``name:n``, comma-separated; ValueError says what is wrong."""
    specs: list[StrategySpec] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, n_text = part.partition(":")
        strategy = STRATEGIES.get(name)
        if strategy is None:
            raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
        if n_text and not (n_text.isdigit() and int(n_text) >= 1):
            raise ValueError(f"{part!r}: n must be a positive whole number")
        n = int(n_text) if n_text else None
        if strategy.fixed_n and n not in (None, strategy.fixed_n):
            raise ValueError(f"{part!r}: {name} always draws {strategy.fixed_n} sample")
        if any(s.text == part for s in specs):
            raise ValueError(f"{part!r} is listed twice")
        specs.append(StrategySpec(part, name, n))
    if not specs:
        raise ValueError("no strategies given")
    return specs


@dataclass
class ItemRun:
    item: EvalItem
    status: str
    """A job status, or ``refused`` (at submission) or ``timed_out``."""
    job_id: str | None = None
    output: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    latency_s: float | None = None
    """From the run's first claim to its end: time in the worker, sharing the engine."""
    error: str | None = None


@dataclass
class StrategyRun:
    spec: StrategySpec
    runs: list[ItemRun]
    wall_s: float
    """From the first submission to the last job's end."""


@dataclass(frozen=True)
class EvalOptions:
    concurrency: int = 8
    """Jobs the worker runs at once (its threads; one engine batches them)."""
    timeout_s: float = 3600.0
    """Per strategy; jobs still running then are cancelled and count as failures."""
    seed: int = 0
    prices: tuple[float, float] = ILLUSTRATIVE_PRICES
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ponder-eval-")))


Progress = Callable[[str], None]


def run_evaluation(
    *, task: str, items: list[EvalItem], specs: list[StrategySpec], options: EvalOptions,
    settings: Settings, progress: Progress,
) -> list[StrategyRun]:  # fmt: skip
    """Every strategy over every item, one strategy after another (so each one's latency is
    its own), the items of a strategy concurrently on one worker."""
    tenant_id = _eval_tenant_id()
    env = {
        "PONDER_COST__PER_MILLION_PROMPT_TOKENS": str(options.prices[0]),
        "PONDER_COST__PER_MILLION_COMPLETION_TOKENS": str(options.prices[1]),
        "PONDER_WORKER__JOBS_IN_FLIGHT": str(options.concurrency),
    }
    log_path = options.log_dir / "worker.log"
    with log_path.open("wb") as log:
        worker = start_worker(env, log, queues="reasoning", concurrency=options.concurrency,
                              name=f"eval-{int(time.time())}")  # fmt: skip
        try:
            _wait_until_ready(worker, log_path, log)
            progress(f"worker ready (log: {log_path}); warm-up job")
            warm = StrategySpec("warm-up", "single", None)
            _run_strategy(task, items[:1], warm, tenant_id, options, settings, lambda _: None)
            results = []
            for spec in specs:
                results.append(_run_strategy(task, items, spec, tenant_id, options, settings,
                                             progress))  # fmt: skip
            return results
        finally:
            stop(worker)


def _wait_until_ready(
    worker: subprocess.Popen[bytes], log_path: Path, log: IO[bytes], timeout_s: float = 300
) -> None:
    deadline = time.monotonic() + timeout_s
    while b"ready." not in log_path.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            log.flush()
            raise RuntimeError(f"the eval worker did not start; see {log_path}")
        time.sleep(0.5)


def _eval_tenant_id() -> str:
    with session_scope() as session:
        tenant = session.exec(select(Tenant).where(Tenant.name == EVAL_TENANT)).first()
        return (tenant or create_tenant(session=session, name=EVAL_TENANT)).id


def _run_strategy(
    task: str, items: list[EvalItem], spec: StrategySpec, tenant_id: str,
    options: EvalOptions, settings: Settings, progress: Progress,
) -> StrategyRun:  # fmt: skip
    started = time.monotonic()
    runs = _submit_all(task, items, spec, tenant_id, options, settings)
    pending = {r.job_id: r for r in runs if r.job_id is not None}
    deadline = started + options.timeout_s
    reported = (-1, 0.0)  # (ended, when): report a change, or every 30 s without one
    while pending and time.monotonic() < deadline:
        time.sleep(1.0)
        with session_scope() as session:
            for job in session.exec(select(Job).where(col(Job.id).in_(list(pending)))):
                if JobStatus(job.status).terminal:
                    _read_back(pending.pop(job.id), job)
            _resend_stale(session, list(pending), settings)
        ended, now = len(runs) - len(pending), time.monotonic()
        if ended != reported[0] or now - reported[1] >= 30:
            progress(f"[{spec.text}] {ended}/{len(runs)} ended, {now - started:.0f}s")
            reported = (ended, now)
    if pending:
        _give_up(pending, tenant_id, settings, options.timeout_s)
    return StrategyRun(spec, runs, time.monotonic() - started)


def _submit_all(
    task: str, items: list[EvalItem], spec: StrategySpec, tenant_id: str,
    options: EvalOptions, settings: Settings,
) -> list[ItemRun]:  # fmt: skip
    """One transaction for the batch, so every job reaches the worker after one commit; an
    item the service refuses is recorded as refused, not dropped."""
    runs = []
    with session_scope() as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        for item in items:
            request = jobs.JobRequest(
                task=task, document=item.document, strategy=spec.name, n=spec.n, params={},
                seed=options.seed, metadata={"eval_item": item.id, "eval_strategy": spec.text},
                cache="off",  # an evaluation measures the engine, every run of it
            )  # fmt: skip
            try:
                with session.begin_nested():
                    job, _ = jobs.submit(session=session, tenant=tenant, request=request,
                                         idempotency_key=None, settings=settings)  # fmt: skip
                runs.append(ItemRun(item, job.status, job_id=job.id))
            except PonderError as exc:
                runs.append(ItemRun(item, "refused", error=exc.message))
    return runs


def _resend_stale(session: Session, job_ids: list[str], settings: Settings) -> None:
    """What the reconciler does, for this evaluation's jobs only: one still ``queued`` after
    ``worker.requeue_after_s`` is sent to the broker again (its message may have been taken by
    a worker of another database on the same broker). A duplicate is harmless: a run must
    claim the job's lease first."""
    stale = utcnow() - timedelta(seconds=settings.worker.requeue_after_s)
    query = select(Job).where(
        col(Job.id).in_(job_ids),
        col(Job.status) == JobStatus.queued.value,
        col(Job.enqueued_at) < stale,
    )
    for job in session.exec(query.with_for_update(skip_locked=True)):
        job.enqueued_at = utcnow()
        session.add(job)
        after_commit(session, functools.partial(send_run_job, job.id, job.priority))


def _read_back(run: ItemRun, job: Job) -> None:
    run.status = job.status
    run.output = (job.result or {}).get("output")
    run.prompt_tokens, run.completion_tokens = job.prompt_tokens, job.completion_tokens
    run.cost, run.error = job.cost, job.error
    if job.started_at is not None and job.finished_at is not None:
        run.latency_s = (job.finished_at - job.started_at).total_seconds()


def _give_up(
    pending: dict[str, ItemRun], tenant_id: str, settings: Settings, timeout_s: float
) -> None:
    with session_scope() as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        for job_id, run in pending.items():
            _cancel(session, tenant, job_id, settings)
            run.status, run.error = "timed_out", f"not finished after {timeout_s:.0f}s"


def _cancel(session: Session, tenant: Tenant, job_id: str, settings: Settings) -> None:
    try:
        with session.begin_nested():
            jobs.cancel(session=session, tenant=tenant, job_id=job_id, settings=settings)
    except PonderError:  # it ended between the last poll and now
        pass
