"""Reasoning models the engine's way, with the real CPU engine: a model whose registry entry
names vLLM's ``deepseek_r1`` parser thinks, vLLM ends the thinking at ``thinking_token_budget``
and applies the schema to the answer after it, and the parser separates the two; a job on it
keeps thinking and answer apart in PostgreSQL and counts the thinking tokens apart.

The model is the embedded SmolLM2 dressed as a reasoning model (tests/ponder/engines/
thinking_model.py): its chat template opens ``<think>``, so every sample starts thinking, and
the budget is what ends it (the tiny model never writes ``</think>`` itself)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import sqlalchemy as sa

from ponder import config, queue
from ponder.cli.devservers import free_port
from ponder.db import get_engine
from ponder.engines.base import GenerationRequest
from tasks.registry import TASKS
from tests.conftest import SPARE_BROKER, serve_vllm, wait_for_status
from tests.ponder.engines.thinking_model import build_thinking_model

if TYPE_CHECKING:
    from ponder.engines.vllm import VLLMEngine

pytestmark = pytest.mark.e2e

NOTE = "Metoprolol 50 mg by mouth twice daily. Aspirin 81 mg daily."
BUDGET = 16
ENDED = {"succeeded", "needs_review", "failed", "cancelled"}


@pytest.fixture(scope="module")
def thinker_entry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The registry entry of the reasoning model."""
    model = build_thinking_model(tmp_path_factory.mktemp("thinker"))
    return {
        "name": "thinker", "kind": "vllm", "model": str(model), "dtype": "float32",
        "max_model_len": 1024, "reasoning_parser": "deepseek_r1",
    }  # fmt: skip


@pytest.fixture(scope="module")
def registry_env(thinker_entry: dict[str, object]) -> Iterator[dict[str, str]]:
    """The registry with the reasoning model as default, for this process (the API) and the
    worker; the previous settings come back after the module."""
    env = {
        "PONDER_MODELS": json.dumps([thinker_entry]),
        "PONDER_DEFAULT_MODEL": "thinker",
        # A broker of its own: the suite's shared worker consumes `reasoning` on the usual one.
        "PONDER_BROKER__URL": SPARE_BROKER,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()


@pytest.fixture(scope="module")
def engine(registry_env: dict[str, str]) -> Iterator[VLLMEngine]:
    """The in-process engine of the registry entry, in this process (to read its samples)."""
    from ponder.engines.vllm import VLLMEngine

    entry = config.get_settings().registry.get("thinker")
    built = VLLMEngine(
        entry.model, max_model_len=entry.max_model_len, reasoning_parser=entry.reasoning_parser
    )
    yield built
    built.close()


def test_the_worker_builds_the_registry_entrys_engine_with_its_parser(registry_env):
    from worker.engine import build_engine

    built = build_engine(config.get_settings())
    try:
        assert getattr(built, "reasoning_parser", None) == "deepseek_r1"
    finally:
        built.close()


def test_thinking_and_answer_are_separated_and_the_thinking_stays_in_its_budget(engine):
    task = TASKS["medrec_extraction"]
    request = GenerationRequest(
        messages=task.messages(NOTE), request_id="job-think:answer", n=3,
        max_tokens=BUDGET + 200, seed=1, json_schema=task.json_schema(),
        thinking_token_budget=BUDGET,
    )  # fmt: skip
    result = engine.generate(request)
    for sample in result.samples:
        assert sample.thinking_tokens <= BUDGET
        assert sample.thinking_tokens <= sample.completion_tokens
        assert "</think>" not in sample.text
    thought = [s for s in result.samples if s.thinking]
    assert thought, [(s.finish_reason, s.completion_tokens) for s in result.samples]
    for sample in thought:
        assert "</think>" not in sample.thinking and sample.thinking not in sample.text
        # The schema applied after the thinking: the answer alone is the task's JSON.
        task.output_model.model_validate_json(sample.text)
        # Thinking, its end marker and the answer: every completion token in one of them.
        assert sample.completion_tokens > sample.thinking_tokens > 0
    assert result.thinking_tokens == sum(s.thinking_tokens for s in result.samples)


def test_a_thinking_budget_on_a_plain_engine_is_refused():
    from ponder.engines.base import EngineRequestError
    from ponder.engines.vllm import VLLMEngine

    plain = VLLMEngine(config.get_settings().model_path, max_model_len=1024)
    try:
        request = GenerationRequest(
            messages=({"role": "user", "content": "hi"},), request_id="job-plain:x",
            max_tokens=32, thinking_token_budget=8,
        )  # fmt: skip
        with pytest.raises(EngineRequestError, match="needs a reasoning parser"):
            plain.generate(request)
    finally:
        plain.close()


@pytest.fixture(scope="module")
def thinker_worker(
    database: None, registry_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A real worker serving the registry's reasoning model on the default queue."""
    from ponder.cli.localrun import start_worker, stop

    redis.Redis.from_url(SPARE_BROKER).flushdb()
    log_path = tmp_path_factory.mktemp("thinker-worker") / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    env = {**registry_env, "PONDER_WORKER__METRICS_PORT": str(free_port())}
    proc = start_worker(env, log, concurrency=4)
    deadline = time.monotonic() + 180
    while b"ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start; see {log_path}")
        time.sleep(0.3)
    yield log_path
    stop(proc)
    log.close()


def test_a_job_on_the_reasoning_model_counts_its_thinking_apart(api, tenant, thinker_worker):
    body = {
        "task": "medrec_extraction", "document": NOTE, "strategy": "extended_reasoning",
        "n": 3, "seed": 1, "params": {"thinking_tokens": 64},
    }  # fmt: skip
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job = wait_for_status(response.json()["id"], ENDED, timeout_s=600)
    assert job["status"] in {"succeeded", "needs_review"}, job["error"]

    with get_engine().connect() as conn:
        events = conn.execute(
            sa.text("select kind, data from trace_events where job_id = :job order by seq"),
            {"job": job["id"]},
        ).all()
        answers = conn.execute(
            sa.text("select step, text from candidates where job_id = :job"), {"job": job["id"]}
        ).all()
    thinking = [e.data for e in events if e.kind == "thinking"]
    # One request thought and answered: no separate thinking call, the engine's parser split.
    assert thinking, [e.kind for e in events]
    assert all(t["parser"] == "deepseek_r1" and t["max_tokens"] == 64 for t in thinking)
    assert all(0 < t["tokens"] <= 64 for t in thinking)
    assert {a.step for a in answers} <= {"answer", "answer-plain"}
    for answer in answers:
        assert "</think>" not in answer.text
        assert not any(t["text"] in answer.text for t in thinking)
    # The job's thinking counter is exactly the thinking the parser counted, apart from the
    # rest of its completion tokens.
    assert job["thinking_tokens"] == sum(t["tokens"] for t in thinking)
    assert 0 < job["thinking_tokens"] < job["completion_tokens"]


@pytest.fixture(scope="module")
def thinker_server(
    thinker_entry: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real vLLM OpenAI-compatible server of the reasoning model, started with
    ``--reasoning-parser deepseek_r1``: its ``/v1`` base URL."""
    yield from serve_vllm(
        str(thinker_entry["model"]),
        "thinker",
        tmp_path_factory.mktemp("thinker-server") / "server.log",
        max_model_len=1024,
        args=("--reasoning-parser", "deepseek_r1"),
    )


def test_over_the_server_the_reasoning_field_is_the_thinking_within_its_budget(thinker_server):
    from ponder.engines.openai import OpenAIEngine

    task = TASKS["medrec_extraction"]
    remote = OpenAIEngine(base_url=thinker_server, model="thinker", reasoning_parser="deepseek_r1")
    try:
        result = remote.generate(
            GenerationRequest(
                messages=task.messages(NOTE),
                request_id="job-remote:answer",
                n=3,
                max_tokens=BUDGET + 200,
                seed=1,
                json_schema=task.json_schema(),
                thinking_token_budget=BUDGET,
            )  # fmt: skip
        )
    finally:
        remote.close()
    thought = [s for s in result.samples if s.thinking]
    assert thought, [(s.finish_reason, s.completion_tokens) for s in result.samples]
    for sample in result.samples:
        assert sample.thinking_tokens <= BUDGET and "</think>" not in sample.text
    for sample in thought:
        task.output_model.model_validate_json(sample.text)
        assert sample.completion_tokens > sample.thinking_tokens > 0
