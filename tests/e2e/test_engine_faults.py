"""The engine failing: retried with backoff, then a clear failure naming the engine; a
document too long for the model fails cleanly; the worker stays up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ponder import config, queue
from ponder.devservers import free_port
from tests.conftest import SPARE_BROKER, wait_for_status

pytestmark = pytest.mark.e2e

ENDED = {"succeeded", "needs_review", "failed", "cancelled"}
DEAD_ENGINE_BROKER = SPARE_BROKER


@pytest.fixture
def dead_engine_worker(
    database: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[object, str]]:
    """A worker whose remote engine is down, on a broker database of its own."""
    from ponder.localrun import start_worker, stop

    redis.Redis.from_url(DEAD_ENGINE_BROKER).flushdb()
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    env = {
        "PONDER_BROKER__URL": DEAD_ENGINE_BROKER,
        "PONDER_ENGINE__KIND": "openai",
        "PONDER_ENGINE__MODEL": "remote-model",
        "PONDER_ENGINE__BASE_URL": base_url,
        "PONDER_ENGINE__MAX_RETRIES": "1",
        "PONDER_WORKER__RETRY_BASE_S": "0.5",
        "PONDER_WORKER__MAX_ATTEMPTS": "2",
    }
    log_path = tmp_path / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115
    proc = start_worker(env, log, name="dead-engine", concurrency=2)
    monkeypatch.setenv("PONDER_BROKER__URL", DEAD_ENGINE_BROKER)
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    deadline = time.monotonic() + 60
    while b"ready." not in log_path.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.3)
    yield proc, base_url
    stop(proc)
    log.close()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()


def test_engine_down_retries_then_fails_naming_the_engine(api, tenant, dead_engine_worker):
    proc, base_url = dead_engine_worker
    body = {"task": "medrec_extraction", "document": "Aspirin 81 mg daily.", "strategy": "single"}
    job_id = api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"]
    job = wait_for_status(job_id, ENDED, timeout_s=120)
    assert job["status"] == "failed"
    assert job["attempts"] == 2
    assert f"engine {base_url} unavailable" in job["error"]
    assert "gave up after 2 attempts" in job["error"]
    assert proc.poll() is None  # the worker is still up


def test_document_too_long_for_the_model_fails_cleanly(api, tenant, worker):
    long_note = "Patient takes metoprolol 50 mg by mouth twice daily. " * 600
    body = {"task": "medrec_extraction", "document": long_note, "strategy": "single"}
    job_id = api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"]
    job = wait_for_status(job_id, ENDED, timeout_s=120)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert "document too long for model smollm2-135m-instruct" in job["error"]
    assert "> limit 4096" in job["error"]
