"""The result cache end to end: the API, a real Celery worker and the real vLLM server (the
session's ``vllm_server``, whose own ``/metrics`` count the engine's requests). A resubmitted
document is answered without an engine call and notified on its own; two identical jobs in
flight pay the engine once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from ponder import config, queue
from ponder.cli.devservers import WebhookReceiver
from ponder.cli.localrun import start_worker, stop
from tests.conftest import SPARE_BROKER, wait_for_status
from tests.ponder.reviews.jobs import GOOD, NOTE

pytestmark = pytest.mark.e2e

ENDED = {"succeeded", "needs_review", "reviewed", "failed", "cancelled"}


@pytest.fixture
def cache_worker(database, vllm_server, tmp_path: Path, monkeypatch) -> Iterator[str]:
    """A worker whose engine is the vLLM server, on a broker of its own; yields the server's
    metrics URL."""
    redis.Redis.from_url(SPARE_BROKER).flushdb()
    monkeypatch.setenv("PONDER_BROKER__URL", SPARE_BROKER)
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    log_path = tmp_path / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    env = {"PONDER_BROKER__URL": SPARE_BROKER, "PONDER_ENGINE__KIND": "openai",
           "PONDER_ENGINE__MODEL": "smollm2", "PONDER_ENGINE__BASE_URL": vllm_server}  # fmt: skip
    proc = start_worker(env, log, name="cache", concurrency=4)
    deadline = time.monotonic() + 90
    while b"ready." not in log_path.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, "worker did not start"
        time.sleep(0.3)
    yield vllm_server.removesuffix("/v1") + "/metrics"
    stop(proc)
    log.close()
    monkeypatch.undo()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()


def engine_requests(metrics_url: str) -> float:
    """Requests the vLLM server has answered, whatever their end."""
    lines = httpx.get(metrics_url, timeout=10).text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("vllm:request_success_total")
    )


def post_job(api: Any, tenant: Any, **fields: Any) -> str:
    body = {
        "task": "medrec_extraction",
        "document": NOTE,
        "n": 2,
        "seed": 3,
        "cache": "use",
        **fields,
    }
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def ended(api: Any, tenant: Any, job_id: str) -> dict[str, Any]:
    wait_for_status(job_id, ENDED, timeout_s=600)
    return dict(api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json())


def answerable(api: Any, tenant: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The job as a cache source: a needs_review answer is corrected by a person first (the
    small model does not always pass every check)."""
    assert job["status"] in {"succeeded", "needs_review"}, job["error"]
    if job["status"] == "needs_review":
        response = api.post(
            f"/v1/jobs/{job['id']}/review",
            json={"decision": "corrected", "answer": GOOD},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        job = dict(api.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json())
    return job


def wait_for_hook(receiver: WebhookReceiver, job_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(job_id.encode() in r.body for r in receiver.received):
        assert time.monotonic() < deadline, f"no webhook for job {job_id}"
        time.sleep(0.2)


def test_a_resubmitted_document_is_answered_from_the_cache_without_an_engine_call(
    api, tenant, other_tenant, cache_worker, webhook_receiver
):
    source = answerable(api, tenant, ended(api, tenant, post_job(api, tenant)))
    before = engine_requests(cache_worker)

    hit = ended(api, tenant, post_job(api, tenant, webhook_url=webhook_receiver.url))

    assert hit["cached_from"] == source["id"]
    assert hit["status"] == source["status"]
    assert hit["answer"] == source["answer"]
    assert hit["tokens"] == {"prompt": 0, "completion": 0, "cached_prompt": 0, "thinking": 0}
    assert engine_requests(cache_worker) == before  # no engine call
    wait_for_hook(webhook_receiver, hit["id"])  # its own notification
    steps = api.get(f"/v1/jobs/{hit['id']}/trace", headers=tenant.headers).json()["steps"]
    assert [(s["kind"], s["data"]["source_job_id"]) for s in steps] == [("cache_hit", source["id"])]

    # What differs, opts out, or belongs to another tenant runs.
    for who, fields in (
        (tenant, {"seed": 4}),
        (tenant, {"document": NOTE + " Lisinopril 10 mg daily."}),
        (tenant, {"cache": "off"}),
        (other_tenant, {}),
    ):
        before = engine_requests(cache_worker)
        job = ended(api, who, post_job(api, who, **fields))
        assert job["cached_from"] is None, fields
        assert job["tokens"]["prompt"] > 0, fields
        assert engine_requests(cache_worker) > before, fields


def test_an_identical_job_in_flight_waits_for_the_run_and_never_runs_beside_it(
    api, tenant, cache_worker
):
    """Two identical jobs sent together: the second waits while the first runs. When the run
    succeeds the twin takes its answer with no engine call of its own (the engine is paid
    once); when it does not (the small model often leaves this note needs_review), the twin
    then runs itself, after the first run ended, never beside it. The answer taken after a
    wait is also checked deterministically in tests/ponder/jobs/test_cache.py."""
    before = engine_requests(cache_worker)
    twin = {"n": 4, "seed": 1}
    first, second = post_job(api, tenant, **twin), post_job(api, tenant, **twin)
    jobs = [ended(api, tenant, job_id) for job_id in (first, second)]

    ran = sorted((j for j in jobs if j["cached_from"] is None), key=lambda j: at(j["started_at"]))
    runner = ran[0]
    calls = engine_requests(cache_worker) - before
    if runner["status"] == "succeeded":
        hits = [j for j in jobs if j["cached_from"] is not None]
        assert [h["cached_from"] for h in hits] == [runner["id"]] and len(ran) == 1
        assert hits[0]["tokens"]["prompt"] == 0
        assert calls == engine_calls(runner["id"])  # the engine paid once
    else:
        assert len(ran) == 2, jobs  # nothing to answer from: the twin ran itself
        assert at(ran[1]["started_at"]) >= at(runner["finished_at"]), jobs  # after, not beside
        assert calls == sum(engine_calls(j["id"]) for j in ran)


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def engine_calls(job_id: str) -> int:
    """What the vLLM server counts for the job's run: its generate calls (``jobs.charges``),
    each asking for ``n`` samples, which the server counts one request each."""
    from ponder.db import session_scope
    from ponder.models import Job

    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.charges * int(job.config["strategy"]["n"])
