"""``review: always``: an answer that passes every required check still ends ``needs_review``
with the ``review_policy`` reason, so a person signs it off; the default (``on_failure``)
ends the same answer ``succeeded``. A bad value is refused at submit and writes nothing. The
engine is a scripted double so that the answer is known to pass."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine
from ponder.jobs.runner import run_job
from tests.ponder.strategies.medrec import ASPIRIN, DOC, LISINOPRIL, METOPROLOL
from tests.ponder.strategies.scripted import ScriptedEngine

PASSING = json.dumps({"medications": [METOPROLOL, LISINOPRIL, ASPIRIN]})


def submit_and_run(api, tenant, **options) -> dict:
    body = {"task": "medrec_extraction", "document": DOC, "strategy": "single", **options}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    run_job(job_id=job_id, engine=ScriptedEngine([PASSING]), settings=get_settings(), owner="t")
    return api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()


def test_by_default_a_passing_answer_succeeds(api, tenant, isolated_broker):
    job = submit_and_run(api, tenant)
    assert job["status"] == "succeeded", job["result"]["failing_checks"]


def test_review_always_sends_a_passing_answer_to_a_person(api, tenant, isolated_broker):
    job = submit_and_run(api, tenant, review="always")
    assert job["status"] == "needs_review"
    checks = job["result"]["failing_checks"]
    assert [c["verifier"] for c in checks] == ["review_policy"]
    assert job["result"]["output"]["medications"][0]["name"] == "Metoprolol"
    assert "review_policy" in job["result"]["summary"]


@pytest.mark.parametrize("value", ["sometimes", "", 1, None])
def test_an_unknown_review_value_is_refused_and_writes_nothing(api, tenant, isolated_broker, value):
    with get_engine().connect() as conn:
        before = conn.execute(sa.text("select count(*) from jobs")).scalar_one()
    body = {"task": "medrec_extraction", "document": DOC, "review": value}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert "review" in response.text and "always" in response.text
    with get_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from jobs")).scalar_one() == before
