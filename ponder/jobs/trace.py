"""The reasoning trace in PostgreSQL: candidates, verdicts and ordered events, written as
they happen by the run that holds the job's lease, and read back for ``/trace``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ponder.config import Settings
from ponder.db import session_scope, with_retries
from ponder.engines.base import GenerationResult
from ponder.errors import LeaseLost
from ponder.jobs.contract import Selection, Trace, TraceCandidate, TraceStep, TraceVerdict
from ponder.jobs.events import append_event
from ponder.jobs.lease import renew_lease
from ponder.models import Candidate, Job, TraceEvent, Verdict
from ponder.storable import storable, storable_text
from ponder.strategies.verification import ScoredCandidate
from ponder.tasktypes import TaskType
from ponder.verify import Verdict as VerdictValue

T = TypeVar("T")
logger = logging.getLogger(__name__)


class CancelRequested(Exception):
    """The caller cancelled the job while it ran."""


class PostgresRecorder:
    """Each write is its own transaction that first renews the lease with the run's fencing
    token: a run that lost its lease raises ``LeaseLost`` instead of writing."""

    def __init__(
        self,
        *,
        job_id: str,
        token: int,
        attempt: int,
        task: TaskType,
        settings: Settings,
        model: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.token = token
        self.attempt = attempt
        self.task = task
        self.settings = settings
        self.model = model
        """The registry model of this run's engine: recorded on its candidates and usage."""
        self._charges: int | None = None  # the job's charge count as this run last wrote it

    def _fence(self, session: Session) -> None:
        cancel = renew_lease(
            session=session, job_id=self.job_id, token=self.token, settings=self.settings
        )
        if cancel is None:
            raise LeaseLost(self.job_id)
        if cancel:
            raise CancelRequested(self.job_id)

    def _write(self, what: str, work: Callable[[Session, bool], T]) -> T:
        """One fenced transaction, run again while PostgreSQL is unreachable."""

        def attempt(retrying: bool) -> T:
            with session_scope() as session:
                self._fence(session)
                return work(session, retrying)

        return with_retries(attempt, what=f"job {self.job_id}: {what}")

    def check(self) -> None:
        self._write("lease check", lambda session, retrying: None)

    def load_step(self, step: str) -> list[ScoredCandidate] | None:
        return with_retries(
            lambda retrying: self._load_step(step), what=f"job {self.job_id}: read step"
        )

    def _load_step(self, step: str) -> list[ScoredCandidate] | None:
        with session_scope() as session:
            rows = session.exec(
                select(Candidate)
                .where(Candidate.job_id == self.job_id, Candidate.step == step)
                .order_by(col(Candidate.idx))
            ).all()
            if not rows:
                return None
            verdicts = _verdicts_by_candidate(session, [r.id for r in rows])
        return [
            ScoredCandidate(
                step=r.step,
                idx=r.idx,
                text=r.text,
                parsed=self.task.output_model.model_validate(r.parsed) if r.parsed else None,
                verdicts=[_verdict_value(v) for v in verdicts.get(r.id, [])],
                mean_logprob=r.mean_logprob,
                min_logprob=r.min_logprob,
                completion_tokens=r.completion_tokens,
                finish_reason=r.finish_reason,
                id=r.id,
            )
            for r in rows
        ]

    def save_step(
        self, step: str, result: GenerationResult, candidates: list[ScoredCandidate]
    ) -> None:
        self._write("save step", lambda session, retrying: self._save_step(
            session, step, result, candidates, retrying=retrying))  # fmt: skip

    def _save_step(
        self,
        session: Session,
        step: str,
        result: GenerationResult,
        candidates: list[ScoredCandidate],
        *,
        retrying: bool,
    ) -> None:
        started = datetime.fromtimestamp(result.started_at, UTC)
        finished = datetime.fromtimestamp(result.finished_at, UTC)
        if retrying:
            # The first try may have committed before the connection dropped.
            landed = session.exec(
                select(Candidate).where(Candidate.job_id == self.job_id, Candidate.step == step)
            ).all()
            if landed:
                ids = {row.idx: row.id for row in landed}
                for c in candidates:
                    c.id = ids.get(c.idx)
                return
        for i, c in enumerate(candidates):
            row = Candidate(
                job_id=self.job_id,
                step=step,
                idx=c.idx,
                attempt=self.attempt,
                # What the model wrote, made storable: PostgreSQL refuses a NUL or a lone
                # surrogate (the verdicts above were given on the real text).
                text=storable_text(c.text),
                parsed=storable(c.parsed.model_dump(mode="json")) if c.parsed is not None else None,
                # The prompt is prefilled once per request: count it on the first sample.
                prompt_tokens=result.prompt_tokens if i == 0 else 0,
                cached_tokens=result.cached_prompt_tokens if i == 0 else 0,
                completion_tokens=c.completion_tokens,
                mean_logprob=c.mean_logprob,
                min_logprob=c.min_logprob,
                finish_reason=c.finish_reason,
                score=c.score,
                passed_required=c.passed_required,
                engine_started_at=started,
                engine_finished_at=finished,
                model=self.model,
            )
            session.add(row)
            c.id = row.id
            for v in c.verdicts:
                session.add(
                    Verdict(
                        candidate_id=row.id,
                        verifier=v.verifier,
                        passed=v.passed,
                        score=v.score,
                        required=v.required,
                        weight=v.weight,
                        findings=storable(v.findings),
                    )
                )

    def charge(self, result: GenerationResult, *, thinking_tokens: int = 0) -> None:
        """Add an engine call's usage to the job, once: the job's ``charges`` counter moves
        with the tokens and the update applies only from the count this run saw before the
        charge, so a retry after a commit whose acknowledgement was lost adds nothing."""
        before = self._charges

        def add(session: Session, retrying: bool) -> None:
            nonlocal before
            if before is None:
                before = session.exec(select(Job.charges).where(Job.id == self.job_id)).one()
            # Only this run writes the job's usage (fenced above, the row locked by it).
            usage = session.exec(select(Job.usage_by_model).where(Job.id == self.job_id)).one()
            updated = session.execute(
                sa.update(Job)
                .where(col(Job.id) == self.job_id, col(Job.charges) == before)
                .values(
                    charges=before + 1,
                    prompt_tokens=Job.prompt_tokens + result.prompt_tokens,
                    completion_tokens=Job.completion_tokens + result.completion_tokens,
                    thinking_tokens=Job.thinking_tokens + thinking_tokens,
                    cached_tokens=Job.cached_tokens + result.cached_prompt_tokens,
                    engine_wall_s=Job.engine_wall_s + result.engine_wall_s,
                    usage_by_model=self._with_usage(dict(usage), result),
                )
                .returning(col(Job.id))
            ).first()
            if updated is None and not retrying:  # only this run writes it (fenced): a bug
                logger.error("job %s: charge skipped, the charge count moved", self.job_id)

        self._write("charge", add)
        assert before is not None
        self._charges = before + 1

    def _with_usage(self, usage: dict[str, Any], result: GenerationResult) -> dict[str, Any]:
        """The job's usage per model with ``result`` added to this run's model."""
        if self.model is None:
            return usage
        mine = usage.get(self.model) or {}
        return {
            **usage,
            self.model: {
                "prompt_tokens": mine.get("prompt_tokens", 0) + result.prompt_tokens,
                "completion_tokens": mine.get("completion_tokens", 0) + result.completion_tokens,
                "engine_wall_s": round(mine.get("engine_wall_s", 0.0) + result.engine_wall_s, 6),
            },
        }

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self._write(f"event {kind}", lambda session, retrying: self._event(
            session, kind, data, retrying=retrying))  # fmt: skip

    def _event(self, session: Session, kind: str, data: dict[str, Any], *, retrying: bool) -> None:
        data = storable(data)  # an event may quote an answer or a finding
        if retrying:
            last = session.exec(
                select(TraceEvent)
                .where(TraceEvent.job_id == self.job_id)
                .order_by(col(TraceEvent.seq).desc())
                .limit(1)
            ).first()
            if last is not None and (last.kind, last.attempt, last.data) == (
                kind,
                self.attempt,
                _as_stored(data),
            ):
                return  # the first try landed
        append_event(session, job_id=self.job_id, attempt=self.attempt, kind=kind, data=data)


def _as_stored(data: dict[str, Any]) -> Any:
    """``data`` as it reads back from its JSON column."""
    return json.loads(json.dumps(data, default=str))


def _verdicts_by_candidate(session: Session, ids: list[str]) -> dict[str, list[Verdict]]:
    out: dict[str, list[Verdict]] = {}
    if not ids:
        return out
    for v in session.exec(select(Verdict).where(col(Verdict.candidate_id).in_(ids))).all():
        out.setdefault(v.candidate_id, []).append(v)
    return out


def _verdict_value(v: Verdict) -> VerdictValue:
    return VerdictValue(v.verifier, v.passed, v.score, v.required, v.weight, list(v.findings))


def read_trace(session: Session, job: Job) -> Trace:
    """The whole trace of a job, for the API and the review workspace."""
    candidates = session.exec(
        select(Candidate)
        .where(Candidate.job_id == job.id)
        .order_by(col(Candidate.created_at), col(Candidate.step), col(Candidate.idx))
    ).all()
    verdicts = _verdicts_by_candidate(session, [c.id for c in candidates])
    events = session.exec(
        select(TraceEvent).where(TraceEvent.job_id == job.id).order_by(col(TraceEvent.seq))
    ).all()
    selection = next((e.data for e in reversed(events) if e.kind == "selection"), None)
    return Trace(
        candidates=[
            TraceCandidate(
                **c.model_dump(include=_CANDIDATE_COLUMNS),
                selected=c.id == job.selected_candidate_id,
                verdicts=[
                    TraceVerdict.model_validate(v, from_attributes=True)
                    for v in sorted(verdicts.get(c.id, []), key=lambda v: v.verifier)
                ],
            )
            for c in candidates
        ],
        selection=None if selection is None else Selection.model_validate(selection),
        steps=[
            TraceStep(seq=e.seq, attempt=e.attempt, kind=e.kind, data=e.data, at=e.created_at)
            for e in events
        ],
    )


_CANDIDATE_COLUMNS = set(TraceCandidate.model_fields) - {"selected", "verdicts"}
"""The trace shows these columns of a candidate as they are stored."""
