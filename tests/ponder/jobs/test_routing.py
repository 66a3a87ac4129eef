"""Jobs name a registry model (or take their task's), an unknown one is refused with the known
ones and nothing written, each job is sent to its model's queue, and a task's fallback takes
new, re-sent and retried jobs while their model is unhealthy (PostgreSQL decides)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlmodel import select

from ponder import config, queue
from ponder.config import Settings, WorkerSettings
from ponder.db import get_engine, session_scope
from ponder.jobs import ending, routing
from ponder.jobs.knobs import knobs_store
from ponder.jobs.reconcile import reconcile
from ponder.models import Job, JobStatus, TraceEvent
from ponder.notify.payloads import job_payload
from tests.api.test_jobs_bad_input import job_rows
from tests.conftest import queued_messages

DOC = "Metoprolol 50 mg twice daily."
MODELS = [
    {"name": "small", "kind": "vllm", "model": "", "dtype": "float32", "max_model_len": 2048},
    {
        "name": "large",
        "kind": "vllm",
        "model": "/models/large",
        "dtype": "bfloat16",
        "max_model_len": 8192,
        "prices": {"per_million_completion_tokens": 10.0},
    },
]
KNOBS = """\
[tasks.medrec_extraction]
model = "large"
fallback_model = "small"
"""


@pytest.fixture
def two_models(isolated_broker, monkeypatch, tmp_path):
    """A registry of ``small`` (the default) and ``large``; medrec_extraction runs on large
    and falls back to small; a queued job is too old after a minute."""
    knobs = tmp_path / "knobs.toml"
    knobs.write_text(KNOBS)
    monkeypatch.setenv("PONDER_MODELS", json.dumps(MODELS))
    monkeypatch.setenv("PONDER_KNOBS_FILE", str(knobs))
    monkeypatch.setenv("PONDER_FALLBACK__QUEUE_AGE_S", "60")
    monkeypatch.setenv("PONDER_FALLBACK__ENGINE_ERRORS", "2")
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    knobs_store.cache_clear()
    yield isolated_broker
    monkeypatch.undo()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    knobs_store.cache_clear()


def in_queue(broker: redis.Redis, name: str) -> int:
    """Messages on one queue, its priority sub-lists (``name:N``) included."""
    keys = [name, *(f"{name}:{p}" for p in range(1, 10))]
    return sum(int(broker.llen(key)) for key in keys)


def submit(api: Any, tenant: Any, **change: Any) -> dict[str, Any]:
    body = {"task": "medrec_extraction", "document": DOC, "strategy": "single", **change}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


def sql(statement: str, **params: Any) -> None:
    with get_engine().begin() as conn:
        conn.execute(sa.text(statement), params)


def events(job_id: str, kind: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.exec(
            select(TraceEvent).where(TraceEvent.job_id == job_id, TraceEvent.kind == kind)
        ).all()
        return [row.data for row in rows]


def test_a_job_naming_a_model_runs_on_it_and_goes_to_its_queue(api, tenant, two_models):
    job = submit(api, tenant, task="contract_review", document="The lessee pays rent.",
                 model="large")  # fmt: skip
    assert job["model_requested"] == job["model_used"] == "large"
    assert job["config"]["model"] == "/models/large" and job["config"]["engine"] == "vllm"
    assert in_queue(two_models, "reasoning.large") == 1
    assert in_queue(two_models, "reasoning") == 0


def test_a_job_naming_no_model_runs_on_its_task_model_else_the_default(api, tenant, two_models):
    medrec = submit(api, tenant)  # its knobs name large
    review = submit(api, tenant, task="contract_review", document="The lessee pays rent.")
    assert medrec["model_used"] == "large" and medrec["config"]["fallback_model"] == "small"
    assert review["model_used"] == "small" and review["config"]["fallback_model"] is None
    assert review["config"]["model"] == config.get_settings().model_path
    assert in_queue(two_models, "reasoning.large") == 1
    assert in_queue(two_models, "reasoning") == 1


@pytest.mark.parametrize("model", ["huge", "Large", ""])
def test_an_unknown_model_is_refused_listing_the_known_ones(api, tenant, two_models, model):
    body = {"task": "medrec_extraction", "document": DOC, "model": model}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert "unknown model; known models: large, small" in response.json()["error"]
    assert job_rows() == 0
    assert queued_messages(two_models) == 0


def test_an_unknown_model_in_a_form_upload_is_refused(api, tenant, two_models):
    files = {"file": ("note.txt", DOC.encode(), "text/plain")}
    data = {"task": "medrec_extraction", "model": "huge"}
    response = api.post("/v1/jobs", data=data, files=files, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert "known models: large, small" in response.json()["error"]
    assert job_rows() == 0 and queued_messages(two_models) == 0


def test_a_batch_line_naming_an_unknown_model_is_refused_and_nothing_written(
    api, tenant, two_models
):
    lines = [
        {"custom_id": "a", "task": "medrec_extraction", "document": DOC, "model": "small"},
        {"custom_id": "b", "task": "medrec_extraction", "document": DOC, "model": "huge"},
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    response = api.post(
        "/v1/batches", content=body, headers={**tenant.headers, "content-type": "application/jsonl"}
    )
    assert response.status_code == 422, response.text
    assert "known models: large, small" in json.dumps(response.json())
    assert job_rows() == 0 and queued_messages(two_models) == 0


def test_batch_items_are_dispatched_to_their_models_queues(api, tenant, two_models):
    from ponder.batches.service import dispatch

    lines = [
        {"custom_id": "a", "task": "medrec_extraction", "document": DOC, "strategy": "single"},
        {"custom_id": "b", "task": "medrec_extraction", "document": DOC, "model": "small",
         "strategy": "single"},
    ]  # fmt: skip
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    response = api.post(
        "/v1/batches", content=body, headers={**tenant.headers, "content-type": "application/jsonl"}
    )
    assert response.status_code == 201, response.text
    with session_scope() as session:
        assert dispatch(session=session, batch_id=response.json()["id"]) == 2
    assert in_queue(two_models, "reasoning.large") == 1
    assert in_queue(two_models, "reasoning") == 1


def test_a_model_with_an_old_queued_job_sends_new_jobs_to_the_fallback(api, tenant, two_models):
    waiting = submit(api, tenant)
    assert waiting["model_used"] == "large"
    sql(
        "update jobs set created_at = now() - interval '2 minutes' where id = :id", id=waiting["id"]
    )
    job = submit(api, tenant)
    assert job["model_requested"] == "large" and job["model_used"] == "small"
    assert job["config"]["model"] == config.get_settings().model_path  # what answers
    [event] = events(job["id"], "fallback")
    assert event["from"] == "large" and event["to"] == "small" and "waited" in event["why"]
    assert in_queue(two_models, "reasoning") == 1
    assert in_queue(two_models, "reasoning.large") == 1  # the waiting job's alone
    shown = api.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json()
    assert (shown["model_requested"], shown["model_used"]) == ("large", "small")
    with session_scope() as session:
        row = session.get(Job, job["id"])
        assert row is not None
        data = job_payload(row, config.get_settings())["data"]
    assert (data["model_requested"], data["model_used"]) == ("large", "small")


def test_a_task_without_a_fallback_waits_for_its_model(api, tenant, two_models):
    waiting = submit(api, tenant, model="large", task="contract_review",
                     document="The lessee pays rent.")  # fmt: skip
    sql(
        "update jobs set created_at = now() - interval '2 minutes' where id = :id", id=waiting["id"]
    )
    job = submit(api, tenant, model="large", task="contract_review",
                 document="The lessee pays rent.")  # fmt: skip
    assert job["model_used"] == "large" and events(job["id"], "fallback") == []


def test_consecutive_engine_errors_send_jobs_to_the_fallback_until_a_run_succeeds(
    api, tenant, two_models
):
    ran = [submit(api, tenant)["id"] for _ in range(2)]
    for offset, job_id in enumerate(ran):
        sql(
            "update jobs set status = 'failed', started_at = now() - make_interval(secs => :s), "
            "error = 'engine unavailable: connection refused' where id = :id",
            s=10 - offset,
            id=job_id,
        )
    assert submit(api, tenant)["model_used"] == "small"
    # One run of large after them that met no engine error: healthy again.
    sql("update jobs set started_at = now(), error = null where id = :id", id=ran[0])
    assert submit(api, tenant)["model_used"] == "large"


def test_the_reconciler_moves_queued_jobs_of_an_unhealthy_model_to_the_fallback(
    api, tenant, two_models
):
    job = submit(api, tenant)
    two_models.flushdb()
    sql("update jobs set created_at = now() - interval '2 minutes' where id = :id", id=job["id"])
    with session_scope() as session:
        reconcile(session=session, settings=config.get_settings())
    with session_scope() as session:
        row = session.get(Job, job["id"])
        assert row is not None and row.status == "queued"
        assert (row.config["model_requested"], row.config["model_used"]) == ("large", "small")
    assert in_queue(two_models, "reasoning") == 1
    assert in_queue(two_models, "reasoning.large") == 0


def test_with_both_models_unhealthy_the_reconciler_leaves_the_job_where_it_is(
    api, tenant, two_models
):
    job = submit(api, tenant)
    stuck = submit(api, tenant, model="small")
    two_models.flushdb()
    sql("update jobs set created_at = now() - interval '2 minutes'")
    with session_scope() as session:
        reconcile(session=session, settings=config.get_settings())
    with session_scope() as session:
        row = session.get(Job, job["id"])
        assert row is not None and row.config["model_used"] == "large"
    assert queued_messages(two_models) == 0  # nothing moved; nothing stale yet either
    assert stuck["model_used"] == "small"


def test_a_stale_job_on_its_fallback_is_re_sent_to_both_pools(api, tenant, two_models):
    job = submit(api, tenant)
    sql(
        "update jobs set config = jsonb_set(config, '{model_used}', '\"small\"'), "
        "enqueued_at = now() - interval '1 hour' where id = :id",
        id=job["id"],
    )
    two_models.flushdb()
    with session_scope() as session:
        reconcile(session=session, settings=config.get_settings())
    assert in_queue(two_models, "reasoning") == 1
    assert in_queue(two_models, "reasoning.large") == 1


def test_a_worker_forwards_another_models_job_and_takes_back_its_own(api, tenant, two_models):
    on_large = submit(api, tenant)
    fell_back = submit(api, tenant, model="small", task="contract_review",
                       document="The lessee pays rent.")  # fmt: skip
    sql(
        "update jobs set config = jsonb_set(config, '{model_used}', '\"large\"') where id = :id",
        id=fell_back["id"],
    )
    small_worker = Settings(worker=WorkerSettings(model="small"))
    with session_scope() as session:
        assert routing.take_over(session, on_large["id"], small_worker) == ("reasoning.large", 5)
        assert routing.take_over(session, fell_back["id"], small_worker) is None
    with session_scope() as session:
        row = session.get(Job, fell_back["id"])
        assert row is not None and row.config["model_used"] == "small"
    assert events(fell_back["id"], "model_returned") == [{"to": "small"}]


def test_a_job_is_priced_at_its_models_prices(api, tenant, two_models):
    job_id = submit(api, tenant)["id"]
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.completion_tokens = 100_000
        ending.end(session, job, JobStatus.cancelled, error="x", settings=config.get_settings())
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.cost == pytest.approx(1.0)  # large: 10 per million


def test_metrics_count_jobs_by_model_requested_and_used_and_the_fallbacks(api, tenant, two_models):
    from ponder.ops.metrics import _models

    waiting = submit(api, tenant)
    sql(
        "update jobs set created_at = now() - interval '2 minutes' where id = :id", id=waiting["id"]
    )
    submit(api, tenant)  # falls back
    with get_engine().connect() as conn:
        families = {family.name: family for family in _models(conn)}
    by_model = {tuple(s.labels.values()): s.value for s in families["ponder_jobs_by_model"].samples}
    assert by_model == {("large", "large", "queued"): 1, ("large", "small", "queued"): 1}
    [fallback] = families["ponder_fallbacks"].samples
    assert (fallback.labels, fallback.value) == ({"requested": "large", "used": "small"}, 1)
