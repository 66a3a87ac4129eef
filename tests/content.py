"""A job that ended with content in every place content is kept, marked with a canary string,
and a search for that string over every text and JSON column of every table: the check that
a purge leaves nothing behind, whichever table a later change adds."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs.lease import finish
from ponder.models import Candidate, Job, JobStatus, Review, TraceEvent, Verdict

HOOK = "http://127.0.0.1:9/hook"  # on the test allowlist; nothing listens
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY")
PROMPT_TOKENS, COMPLETION_TOKENS = 120, 40


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


def submit(api: Any, headers: dict[str, str], mark: str, **extra: Any) -> str:
    """A job whose document and metadata hold ``mark``, notified by webhook and e-mail."""
    body = {
        "task": "medrec_extraction",
        "document": f"Patient {mark} takes aspirin 81 mg daily.",
        "strategy": "single",
        "metadata": {"mrn": mark},
        "webhook_url": HOOK,
        "email": "clinician@example.org",
        **extra,
    }
    response = api.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def end_with_content(job_id: str, mark: str) -> None:
    """End the job as a run would: candidates, a verdict, trace events, tokens, the result,
    and the notifications the end writes; then a person's review of it. Every piece of
    content holds ``mark``."""
    with session_scope() as session:
        job = session.get(Job, job_id, with_for_update=True)
        assert job is not None
        job.status = JobStatus.running.value
        job.prompt_tokens, job.completion_tokens = PROMPT_TOKENS, COMPLETION_TOKENS
        candidate = Candidate(
            job_id=job_id,
            step="sample",
            idx=0,
            attempt=1,
            text=f'{{"medications": ["{mark}"]}}',
            parsed={"medications": [mark]},
            prompt_tokens=PROMPT_TOKENS,
            completion_tokens=COMPLETION_TOKENS,
            passed_required=True,
        )
        session.add(candidate)
        session.flush()
        session.add(
            Verdict(
                candidate_id=candidate.id,
                verifier="schema",
                passed=True,
                score=1.0,
                required=True,
                weight=1.0,
                findings=[f"quoted {mark}"],
            )
        )
        session.add(TraceEvent(job_id=job_id, seq=0, attempt=1, kind="select", data={"why": mark}))
        session.add(TraceEvent(job_id=job_id, seq=1, attempt=1, kind="escalate", data={"n": 4}))
        finish(
            session=session,
            job=job,
            status=JobStatus.succeeded,
            settings=get_settings(),
            result={"output": {"medications": [mark]}, "summary": mark},
            selected_candidate_id=candidate.id,
        )
        # A person's review of it: the answers, the diff, the reason and the verdicts.
        session.add(
            Review(
                job_id=job_id,
                tenant_id=job.tenant_id,
                decision="corrected",
                answer_before={"medications": [mark]},
                answer_after={"medications": [f"{mark} 81 mg"]},
                diff=[{"path": "medications.0", "before": mark, "after": f"{mark} 81 mg"}],
                reason=f"the note says {mark}",
                verdicts=[{"verifier": "schema", "passed": True, "findings": [mark]}],
            )
        )


def where_found(mark: str) -> list[str]:
    """``table.column`` of every text, JSON or array column of every table holding ``mark``."""
    found = []
    with get_engine().connect() as conn:
        columns = conn.execute(
            sa.text(
                "select c.table_name, c.column_name from information_schema.columns c "
                "join information_schema.tables t on t.table_name = c.table_name "
                "and t.table_schema = c.table_schema "
                "where c.table_schema = 'public' and t.table_type = 'BASE TABLE' "
                "and c.data_type = any(:types)"
            ),
            {"types": list(TEXT_TYPES)},
        ).all()
        assert len(columns) > 20  # the search reads the schema, not a list kept by hand
        for table, column in columns:
            hits = conn.execute(
                sa.text(f'select count(*) from "{table}" where "{column}"::text like :pattern'),
                {"pattern": f"%{mark}%"},
            ).scalar_one()
            if hits:
                found.append(f"{table}.{column}")
    return found
