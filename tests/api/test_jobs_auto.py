"""Submitting with strategy ``auto``: its task's band table is frozen on the job; without a
table, with params, or with a band beyond the tenant's cap, a 422 that writes and queues
nothing."""

from __future__ import annotations

import pytest

from tests.api.test_jobs_bad_input import assert_nothing_changed, job_rows
from tests.conftest import queued_messages
from tests.ponder.jobs.test_knobs import knobs_in_force, write

KNOBS = """\
[tasks.medrec_extraction.auto]
bands = [
  { max_score = 0.4, strategy = "single" },
  { max_score = 1.0, strategy = "best_of_n", n = 6 },
]

[tenants.default]
max_n = 8
"""
BODY = {"task": "medrec_extraction", "document": "Aspirin 81 mg daily.", "strategy": "auto"}


@pytest.fixture
def knobs_file(tmp_path, monkeypatch):
    yield from knobs_in_force(tmp_path, monkeypatch, KNOBS)


def test_auto_freezes_the_task_band_table_on_the_job(api, tenant, isolated_broker, knobs_file):
    response = api.post("/v1/jobs", json=BODY, headers=tenant.headers)
    assert response.status_code == 201, response.text
    strategy = response.json()["config"]["strategy"]
    assert strategy["name"] == "auto"
    bands = strategy["params"]["bands"]
    assert [(b["max_score"], b["strategy"], b["n"]) for b in bands] == [
        (0.4, "single", None),
        (1.0, "best_of_n", 6),
    ]
    assert job_rows() == 1 and queued_messages(isolated_broker) == 1


def test_auto_on_a_task_without_a_table_is_refused(api, tenant, isolated_broker, knobs_file):
    body = {**BODY, "task": "math_answer", "document": "What is 2 + 3?"}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert_nothing_changed(
        response, 422, "strategy auto needs a band table for task math_answer", isolated_broker
    )
    assert "[tasks.math_answer.auto]" in response.json()["error"]


def test_auto_without_any_knobs_file_is_refused(api, tenant, isolated_broker):
    response = api.post("/v1/jobs", json=BODY, headers=tenant.headers)
    assert_nothing_changed(response, 422, "needs a band table", isolated_broker)


def test_params_for_auto_are_refused(api, tenant, isolated_broker, knobs_file):
    body = {**BODY, "params": {"bands": [{"max_score": 1.0, "strategy": "beam"}]}}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert_nothing_changed(response, 422, "strategy auto takes no params", isolated_broker)


def test_a_band_beyond_the_tenant_cap_is_refused(api, tenant, isolated_broker, knobs_file):
    write(knobs_file, KNOBS.replace("max_n = 8", "max_n = 4"))
    response = api.post("/v1/jobs", json=BODY, headers=tenant.headers)
    assert_nothing_changed(
        response, 422, "band 1 draws n=6, above this tenant's limit of 4", isolated_broker
    )
