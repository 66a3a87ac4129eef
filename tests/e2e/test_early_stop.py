"""Early stop with the real CPU engine: a threshold forced high stops samples mid-generation,
vLLM lets go of each stopped sample at once, PostgreSQL keeps it with its reason and tokens,
and the job is charged exactly what every sample generated. Bad ``early_stop`` input is
refused before anything is written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.db import get_engine
from ponder.engines.base import EngineAborted, GenerationRequest
from ponder.engines.confidence import EARLY_STOP_REASON, EarlyStop
from tasks.registry import TASKS
from tests.conftest import queued_messages, wait_for_status

if TYPE_CHECKING:
    from ponder.engines.vllm import VLLMEngine

pytestmark = pytest.mark.e2e

NOTE = "Metoprolol 50 mg by mouth twice daily. Aspirin 81 mg daily."
ENDED = {"succeeded", "needs_review", "failed", "cancelled"}
# Percentile 100 over one warm-up sample: a sample is stopped once any of its 4-token windows
# is less confident than the first finished sample's least confident window. The tiny model
# with this seed stops several of six (measured: four).
FORCED = {"window": 4, "warmup": 1, "percentile": 100}


@pytest.fixture(scope="module")
def engine() -> Iterator[VLLMEngine]:
    """The in-process engine in this test process, so that its bookkeeping can be read."""
    from ponder.engines.vllm import VLLMEngine

    engine = VLLMEngine(config.get_settings().model_path, max_model_len=2048)
    yield engine
    engine.close()


def forced_request(job_id: str, max_tokens: int) -> GenerationRequest:
    task = TASKS["medrec_extraction"]
    return GenerationRequest(
        messages=task.messages(NOTE), request_id=f"{job_id}:sample", n=6, max_tokens=max_tokens,
        seed=7, json_schema=task.json_schema(), early_stop=EarlyStop(**FORCED),
    )  # fmt: skip


def assert_nothing_left_in(engine: VLLMEngine) -> None:
    assert engine.in_flight == 0
    assert engine._engine.get_num_unfinished_requests() == 0
    # A stopped sample stays in its parent's bookkeeping until the engine forgets the parent.
    assert not engine._engine.output_processor.parent_requests


def test_the_engine_stops_samples_and_lets_go_of_them_at_once(engine):
    engine.stopped_samples.clear()
    result = engine.generate(forced_request("job-es", max_tokens=96))
    stopped = [s for s in result.samples if s.finish_reason == EARLY_STOP_REASON]
    assert stopped, [s.finish_reason for s in result.samples]
    assert len(stopped) < len(result.samples)  # the warm-up sample finished
    for sample in stopped:
        assert sample.stopped is not None
        assert sample.stopped.window_confidence < sample.stopped.threshold
        # All it generated is what it had at the stop: nothing came after.
        assert sample.completion_tokens == sample.stopped.tokens > 0
        assert len(sample.token_logprobs) == sample.completion_tokens
        assert sample.text  # its text so far
    # vLLM's scheduler no longer held a stopped sample right after its abort.
    records = list(engine.stopped_samples)
    assert len(records) == len(stopped)
    assert all(r.held_after_abort is False for r in records)
    assert [r.tokens for r in records] == [s.completion_tokens for s in stopped]
    assert_nothing_left_in(engine)


def test_cancelling_a_job_after_a_stop_leaves_nothing_in_the_engine(engine):
    engine.stopped_samples.clear()
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(engine.generate, forced_request("job-cancel", max_tokens=400))
        deadline = time.monotonic() + 120
        while not engine.stopped_samples and not call.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.stopped_samples, "no sample was stopped"
        engine.abort_job("job-cancel")
        with pytest.raises(EngineAborted):
            call.result(timeout=60)  # else every sample ended before the cancel: raise max_tokens
    assert_nothing_left_in(engine)


def test_a_job_with_early_stop_keeps_its_stopped_samples_and_their_tokens(api, tenant, worker):
    body = {
        "task": "medrec_extraction", "document": NOTE, "strategy": "best_of_n", "n": 6,
        "seed": 7, "params": {"early_stop": FORCED},
    }  # fmt: skip
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    job = wait_for_status(job_id, ENDED, timeout_s=600)
    assert job["status"] in {"succeeded", "needs_review"}, job["error"]

    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text(
                "select id, idx, finish_reason, completion_tokens, text from candidates "
                "where job_id = :job order by idx"
            ),
            {"job": job_id},
        ).all()
    assert len(rows) == 6
    stopped = [r for r in rows if r.finish_reason == EARLY_STOP_REASON]
    assert stopped, [r.finish_reason for r in rows]
    assert all(r.completion_tokens > 0 and r.text for r in stopped)
    # The job paid for exactly what every sample generated, the stopped ones included.
    assert job["completion_tokens"] == sum(r.completion_tokens for r in rows)
    assert job["selected_candidate_id"] not in {r.id for r in stopped}

    trace = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()
    (event,) = [s["data"] for s in trace["steps"] if s["kind"] == "early_stop"]
    assert {(s["idx"], s["tokens"]) for s in event["stopped"]} == {
        (r.idx, r.completion_tokens) for r in stopped
    }
    assert all(s["window_confidence"] < s["threshold"] for s in event["stopped"])
    assert trace["selection"]["stopped_early"] == [f"sample/{r.idx}" for r in stopped]


def job_rows() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(sa.text("select count(*) from jobs")).scalar_one())


def assert_refused(response: Any, phrase: str, broker: Any) -> None:
    assert response.status_code == 422, response.text
    assert phrase in response.json()["error"], response.json()
    assert job_rows() == 0
    assert queued_messages(broker) == 0


@pytest.mark.parametrize(
    ("strategy", "n", "early_stop", "phrase"),
    [
        ("best_of_n", 4, {"window": 0}, "early_stop.window"),
        ("best_of_n", 4, {"percentile": 101}, "early_stop.percentile"),
        ("best_of_n", 4, {"top_k": 50}, "early_stop.top_k"),
        ("self_consistency", 4, {"warmup": 0}, "early_stop.warmup"),
        ("adaptive", 4, {"percentile": -5}, "early_stop.percentile"),
        ("best_of_n", 4, {"threshold": 3.0}, "early_stop.threshold"),
        ("best_of_n", 4, "yes", "early_stop"),
        ("best_of_n", 2, {"warmup": 2}, "early_stop.warmup=2 must be below n=2"),
        ("self_consistency", 3, {"warmup": 5}, "early_stop.warmup=5 must be below n=3"),
    ],
)
def test_bad_early_stop_is_refused_and_nothing_is_queued(
    api, tenant, isolated_broker, strategy, n, early_stop, phrase
):
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": strategy, "n": n,
            "params": {"early_stop": early_stop}}  # fmt: skip
    assert_refused(api.post("/v1/jobs", json=body, headers=tenant.headers), phrase, isolated_broker)


def test_early_stop_is_refused_with_the_remote_engine(api, tenant, isolated_broker, monkeypatch):
    monkeypatch.setenv("PONDER_ENGINE__KIND", "openai")
    monkeypatch.setenv("PONDER_ENGINE__MODEL", "remote-model")
    config.get_settings.cache_clear()
    try:
        body = {"task": "medrec_extraction", "document": NOTE, "strategy": "best_of_n", "n": 4,
                "params": {"early_stop": {}}}  # fmt: skip
        response = api.post("/v1/jobs", json=body, headers=tenant.headers)
        assert_refused(response, "early_stop needs the in-process engine", isolated_broker)
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
