"""A model answer PostgreSQL cannot store as written (a NUL, ``\\u0000`` in its JSON) ends the
job normally, with its candidates and verdicts kept, instead of failing it with an internal
error: the stored text shows U+2400 where the NUL was, and such an answer is never presented
as checked. The engine is a scripted double: a real model cannot be made to write a NUL."""

from __future__ import annotations

import json

import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine
from ponder.jobs.runner import run_job
from tests.ponder.strategies.medrec import ASPIRIN, DOC
from tests.ponder.strategies.scripted import ScriptedEngine

NUL_ANSWER = json.dumps({"medications": [{**ASPIRIN, "name": "Aspirin\x00"}]})


def submit_and_run(api, tenant, text: str) -> tuple[str, str]:
    response = api.post(
        "/v1/jobs",
        json={"task": "medrec_extraction", "document": DOC, "strategy": "single"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    outcome = run_job(
        job_id=job_id, engine=ScriptedEngine([text]), settings=get_settings(), owner="test"
    )
    return job_id, outcome.status


def test_a_nul_in_an_answer_ends_the_job_needing_review_with_its_candidates(
    api, tenant, isolated_broker
):
    assert "\\u0000" in NUL_ANSWER  # the JSON escape, as a model writes it
    job_id, status = submit_and_run(api, tenant, NUL_ANSWER)
    assert status == "needs_review"
    job = api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert job["status"] == "needs_review" and job["error"] is None
    assert job["result"]["output"]["medications"][0]["name"] == "Aspirin\u2400"
    assert "storable" in [c["verifier"] for c in job["result"]["failing_checks"]]
    (candidate,) = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()["candidates"]
    assert candidate["parsed"]["medications"][0]["name"] == "Aspirin\u2400"
    assert candidate["verdicts"], "the candidate's verdicts are kept"


def test_a_raw_nul_in_an_answer_is_stored_as_a_stand_in(api, tenant, isolated_broker):
    job_id, status = submit_and_run(api, tenant, "Aspirin\x00 81 mg")
    assert status == "needs_review"  # not JSON for the schema: no answer passes
    with get_engine().connect() as conn:
        text = conn.execute(
            sa.text("select text from candidates where job_id = :j"), {"j": job_id}
        ).scalar_one()
    assert text == "Aspirin\u2400 81 mg"
