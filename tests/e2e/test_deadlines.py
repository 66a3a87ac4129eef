"""A job whose deadline passes while it runs, through the real runner, PostgreSQL and the real
vLLM engine (its OpenAI-compatible server on CPU): the run stops before its next engine call
and ends with what it has, the trace saying the deadline was the reason.

Runner level rather than through a Celery worker: the deadline must fall inside the first
engine call, so the claim has to follow the submission at once (a worker's pick-up time would
make the margin a guess)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ponder.config import get_settings
from ponder.db import session_scope
from ponder.engines.openai import OpenAIEngine
from ponder.jobs.runner import run_job
from ponder.models import Job

pytestmark = pytest.mark.e2e

NOTE = """Follow-up visit.
Medications: metoprolol 50 mg by mouth twice daily; lisinopril 10 mg by mouth daily.
Stop aspirin 81 mg daily because of bruising."""
MARGIN_S = 1.5
"""From the submission to the deadline: the claim and the first engine call's start take
milliseconds, the thinking call (up to 400 tokens on CPU) seconds."""


def test_a_run_past_its_deadline_stops_before_its_next_engine_call_with_the_reason(
    api, tenant, isolated_broker, vllm_server
):
    engine = OpenAIEngine(base_url=vllm_server, model="smollm2")
    deadline = datetime.now(UTC) + timedelta(seconds=MARGIN_S)
    body = {
        "task": "medrec_extraction",
        "document": NOTE,
        # Two engine calls, always: think, then answer (or answer plainly).
        "strategy": "extended_reasoning",
        "n": 1,
        "params": {"thinking_tokens": 400},
        "seed": 3,
        "complete_by": deadline.isoformat(),
    }
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]

    outcome = run_job(job_id=job_id, engine=engine, settings=get_settings(), owner="test")

    steps = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()
    kinds = [s["kind"] for s in steps["steps"]]
    started = next(s for s in steps["steps"] if s["kind"] == "started")
    thinking = next(s for s in steps["steps"] if s["kind"] == "thinking")
    # The premise: the run started before the deadline and its first call ended after it.
    assert datetime.fromisoformat(started["at"]) < deadline
    assert datetime.fromisoformat(thinking["at"]) >= deadline, "the think call was too quick"
    assert outcome.status == "needs_review"  # nothing verified: the answer call never ran
    assert kinds[-2:] == ["deadline_stop", "selection"]
    stop = steps["steps"][-2]["data"]
    assert "deadline" in stop["reason"] and "complete_by" in stop["reason"]
    assert steps["selection"]["stopped_by"] == "deadline"
    assert steps["candidates"] == []
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.charges == 1, "one engine call (the thinking) was paid for, none after"
