"""The OpenAI-compatible engine against a real vLLM server on 127.0.0.1 (the session's
``vllm_server``), and its failures."""

from __future__ import annotations

import json
import time

import pytest

from ponder.cli.devservers import WebhookReceiver, free_port
from ponder.engines.base import EngineRequestError, EngineUnavailable, GenerationRequest
from ponder.engines.openai import OpenAIEngine
from tasks.medrec_extraction import TASK

pytestmark = pytest.mark.e2e

NOTE = "Medications: metoprolol 50 mg by mouth twice daily; lisinopril 10 mg daily."


def request(**kw) -> GenerationRequest:
    defaults = dict(messages=TASK.messages(NOTE), request_id="t", max_tokens=200)
    return GenerationRequest(**{**defaults, **kw})


def test_n_samples_in_one_request_follow_the_json_schema_with_logprobs(vllm_server):
    engine = OpenAIEngine(base_url=vllm_server, model="smollm2")
    # Room for three medications with evidence: a sample cut at max_tokens is not valid JSON,
    # and that is not what this test is about.
    result = engine.generate(request(n=3, json_schema=TASK.json_schema(), seed=5, max_tokens=512))
    assert len(result.samples) == 3
    assert result.prompt_tokens > 0
    for sample in result.samples:
        TASK.output_model.model_validate_json(sample.text)  # structured decoding held
        assert sample.completion_tokens == len(sample.token_logprobs) > 0
        assert sample.mean_logprob is not None and sample.mean_logprob <= 0


def test_same_seed_gives_the_same_samples(vllm_server):
    engine = OpenAIEngine(base_url=vllm_server, model="smollm2")
    a = engine.generate(request(n=2, json_schema=TASK.json_schema(), seed=11))
    b = engine.generate(request(n=2, json_schema=TASK.json_schema(), seed=11))
    assert [s.text for s in a.samples] == [s.text for s in b.samples]


def test_choice_constraint_returns_one_choice_with_alternatives(vllm_server):
    engine = OpenAIEngine(base_url=vllm_server, model="smollm2")
    result = engine.generate(
        request(
            messages=({"role": "user", "content": "Is metoprolol a drug? Answer yes or no."},),
            choice=("yes", "no"),
            max_tokens=3,
            top_logprobs=5,
        )
    )
    assert result.samples[0].text in ("yes", "no")
    assert result.samples[0].top_alternatives and len(result.samples[0].top_alternatives[0]) > 1


def test_prompt_over_the_context_is_a_request_error_not_a_retry(vllm_server):
    engine = OpenAIEngine(base_url=vllm_server, model="smollm2", max_retries=3)
    long_note = "metoprolol 50 mg daily. " * 1500
    started = time.monotonic()
    with pytest.raises(EngineRequestError, match="refused the request: HTTP 400"):
        engine.generate(request(messages=TASK.messages(long_note)))
    assert time.monotonic() - started < 30  # no retry loop


def test_engine_down_fails_after_the_retry_limit_naming_the_engine():
    base = f"http://127.0.0.1:{free_port()}/v1"
    engine = OpenAIEngine(base_url=base, model="m", max_retries=2)
    with pytest.raises(EngineUnavailable, match=f"engine {base} unavailable after 3 tries"):
        engine.generate(request())


def test_server_errors_are_retried_then_reported():
    receiver = WebhookReceiver(responder=lambda _: 503).start()
    try:
        base = f"http://127.0.0.1:{receiver.port}/v1"
        engine = OpenAIEngine(base_url=base, model="m", max_retries=2)
        with pytest.raises(EngineUnavailable, match="HTTP 503"):
            engine.generate(request())
        assert len(receiver.received) == 3
        body = json.loads(receiver.received[0].body)
        assert body["n"] == 1 and body["model"] == "m"
    finally:
        receiver.stop()


def test_garbage_responses_are_retried_then_reported():
    receiver = WebhookReceiver(responder=lambda _: 200).start()  # 200 with an empty body
    try:
        engine = OpenAIEngine(
            base_url=f"http://127.0.0.1:{receiver.port}/v1", model="m", max_retries=1
        )
        with pytest.raises(EngineUnavailable, match="malformed response"):
            engine.generate(request())
        assert len(receiver.received) == 2
    finally:
        receiver.stop()
