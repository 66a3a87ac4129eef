"""The engine failing: retried with backoff, then a clear failure naming the engine; a
document too long for the model fails cleanly; the worker stays up."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ponder import config, queue
from ponder.cli.devservers import free_port
from tests.conftest import SPARE_BROKER, wait_for_status

pytestmark = pytest.mark.e2e

ENDED = {"succeeded", "needs_review", "failed", "cancelled"}
DEAD_ENGINE_BROKER = SPARE_BROKER


@pytest.fixture
def dead_engine_worker(
    database: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[object, str]]:
    """A worker whose remote engine is down, on a broker database of its own."""
    from ponder.cli.localrun import start_worker, stop

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


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from transformers import AutoTokenizer

    from ponder.config import get_settings

    return AutoTokenizer.from_pretrained(get_settings().model_path)


def _prompt_tokens(document: str) -> int:
    from tasks.medrec_extraction import TASK

    text = _tokenizer().apply_chat_template(
        list(TASK.messages(document)), tokenize=False, add_generation_prompt=True
    )
    return len(_tokenizer()(text, add_special_tokens=False)["input_ids"])


def test_a_follow_up_past_the_context_ends_with_the_candidates_it_has(
    api, tenant, worker, monkeypatch
):
    from ponder.config import get_settings

    # Short answers (frozen on the job at submission) keep the run short.
    monkeypatch.setenv("PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE", "128")
    get_settings.cache_clear()
    # Round 1 fits the model's context (4096) with room for a full answer (max_tokens); the
    # refine round adds that answer and the feedback to the prompt, and no longer fits.
    room = get_settings().engine.max_model_len - get_settings().limits.max_tokens_per_sample
    filler = "The patient walked in the garden and talked about the weather at length. "
    note = "Medications: metoprolol 50 mg by mouth twice daily; lisinopril 10 mg daily. "
    while _prompt_tokens(note + filler) <= room - 30:
        note += filler
    body = {"task": "medrec_extraction", "document": note, "strategy": "refine", "n": 2,
            "params": {"max_rounds": 3}, "seed": 3}  # fmt: skip
    job_id = api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"]
    monkeypatch.undo()
    get_settings.cache_clear()
    job = wait_for_status(job_id, ENDED, timeout_s=300)
    trace = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()
    kinds = [step["kind"] for step in trace["steps"]]
    if job["status"] == "succeeded" and "engine_stop" not in kinds:
        pytest.fail("round 1 passed every check, so no follow-up was asked: change the seed")
    assert job["status"] == "needs_review", job["error"]
    assert "engine_stop" in kinds
    stop = next(s for s in trace["steps"] if s["kind"] == "engine_stop")
    assert "document too long for model" in stop["data"]["reason"]
    assert len(trace["candidates"]) == 2  # round 1, kept and selected from
    assert trace["selection"]["stopped_by"] == "engine_refused"
    assert any(c["selected"] for c in trace["candidates"])
