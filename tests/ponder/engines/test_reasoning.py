"""Reasoning models the engine's way: vLLM's own parser separates thinking from answer on
scripted ``<think>`` outputs and the tokens of each are counted apart; unknown parsers are
refused by name; ``extended_reasoning`` on a reasoning engine asks for one request with a
``thinking_token_budget`` and charges the thinking apart (scripted engine: strategy logic)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ponder import config
from ponder.engines.base import GenerationRequest, Sample
from ponder.engines.openai import OpenAIEngine
from ponder.engines.reasoning import ReasoningSplitter, UnknownReasoningParser
from tests.ponder.engines.thinking_model import build_thinking_model
from tests.ponder.strategies.medrec import DOC, GOOD, TASK
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    make_context,
    run_like_runner,
)

THOUGHT = "The note lists metoprolol twice daily and nothing else."


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    model = build_thinking_model(tmp_path_factory.mktemp("thinking-model"))
    return AutoTokenizer.from_pretrained(model)


@pytest.fixture(scope="module")
def splitter(tokenizer: Any) -> ReasoningSplitter:
    return ReasoningSplitter("deepseek_r1", tokenizer)


def test_the_parser_separates_thinking_from_the_answer_and_counts_each(tokenizer, splitter):
    text = f"<think>{THOUGHT}</think>{GOOD}"
    ids = tokenizer.encode(text, add_special_tokens=False)
    split = splitter.split(text, ids)
    assert split.thinking == THOUGHT
    assert split.answer == GOOD
    thought_tokens = len(tokenizer.encode(THOUGHT, add_special_tokens=False))
    assert split.thinking_tokens == thought_tokens
    # The rest are the two markers and the answer: nothing counted twice or lost.
    answer_tokens = len(tokenizer.encode(GOOD, add_special_tokens=False))
    assert len(ids) == split.thinking_tokens + 2 + answer_tokens


def test_thinking_opened_by_the_chat_template_is_thinking_too(tokenizer, splitter):
    # The prompt ends in <think> (DeepSeek-R1's template): the output only closes it.
    text = f"{THOUGHT}</think>{GOOD}"
    split = splitter.split(text, tokenizer.encode(text, add_special_tokens=False))
    assert (split.thinking, split.answer) == (THOUGHT, GOOD)
    assert split.thinking_tokens == len(tokenizer.encode(THOUGHT, add_special_tokens=False))


def test_a_sample_that_never_ends_its_thinking_has_no_answer(tokenizer, splitter):
    ids = tokenizer.encode(THOUGHT, add_special_tokens=False)
    split = splitter.split(THOUGHT, ids)
    assert (split.thinking, split.answer, split.thinking_tokens) == (THOUGHT, "", len(ids))


def test_an_empty_thinking_counts_no_thinking_tokens(tokenizer, splitter):
    text = f"</think>{GOOD}"
    split = splitter.split(text, tokenizer.encode(text, add_special_tokens=False))
    assert (split.thinking, split.answer, split.thinking_tokens) == (None, GOOD, 0)


def test_an_unknown_parser_is_refused_with_its_name(tokenizer):
    with pytest.raises(UnknownReasoningParser, match="'no_such_parser'.*deepseek_r1"):
        ReasoningSplitter("no_such_parser", tokenizer)


def test_an_unknown_parser_is_refused_at_engine_construction(tmp_path: Path):
    from ponder.engines.vllm import VLLMEngine

    # Refused before the model loads: the directory does not even exist.
    with pytest.raises(UnknownReasoningParser, match="'no_such_parser'"):
        VLLMEngine(str(tmp_path / "missing"), reasoning_parser="no_such_parser")
    with pytest.raises(UnknownReasoningParser, match="'no_such_parser'"):
        OpenAIEngine(base_url="http://127.0.0.1:9/v1", model="m", reasoning_parser="no_such_parser")


def test_a_parser_whose_markers_the_tokenizer_lacks_is_refused_with_its_name():
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(config.get_settings().model_path)
    with pytest.raises(UnknownReasoningParser, match="'deepseek_r1' does not fit"):
        ReasoningSplitter("deepseek_r1", plain)


def test_a_thinking_budget_must_leave_room_for_the_answer():
    with pytest.raises(ValueError, match="thinking_token_budget"):
        GenerationRequest(messages=(), request_id="j:s", max_tokens=64, thinking_token_budget=64)


def test_the_servers_reasoning_field_is_the_thinking_and_its_tokens_are_counted_apart():
    engine = OpenAIEngine(base_url="http://127.0.0.1:9/v1", model="m", reasoning_parser="qwen3")
    tokens = ["Note", " lists", " one", "</think>", '{"a"', ":1}", "<|im_end|>"]
    data = {
        "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"content": '{"a":1}', "reasoning": "Note lists one"},
            "logprobs": {"content": [{"token": t, "logprob": -0.1} for t in tokens]},
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7},
    }  # fmt: skip
    (sample,) = engine._result(data, 0.0, 1.0, 0).samples
    engine.close()
    assert (sample.thinking, sample.text) == ("Note lists one", '{"a":1}')
    assert (sample.completion_tokens, sample.thinking_tokens) == (7, 3)


def test_without_logprobs_the_servers_reasoning_token_count_is_the_thinking():
    engine = OpenAIEngine(base_url="http://127.0.0.1:9/v1", model="m", reasoning_parser="qwen3")
    data = {
        "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"content": '{"a":1}', "reasoning": "Note lists one"},
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7,
                  "completion_tokens_details": {"reasoning_tokens": 3}},
    }  # fmt: skip
    (sample,) = engine._result(data, 0.0, 1.0, 0).samples
    engine.close()
    assert (sample.completion_tokens, sample.thinking_tokens) == (7, 3)


def test_a_thinking_budget_is_refused_by_a_plain_openai_engine():
    from ponder.engines.base import EngineRequestError

    engine = OpenAIEngine(base_url="http://127.0.0.1:9/v1", model="m")
    request = GenerationRequest(
        messages=(), request_id="j:s", max_tokens=64, thinking_token_budget=16
    )
    with pytest.raises(EngineRequestError, match="needs a reasoning parser"):
        engine._body(request)
    engine.close()


# -- extended_reasoning on a reasoning engine (scripted: strategy logic only) ---------------


class ScriptedReasoningEngine(ScriptedEngine):
    """Answers like an engine with a reasoning parser: each sample's thinking separated, its
    thinking tokens part of its completion tokens."""

    reasoning_parser = "deepseek_r1"

    def __init__(self, answers: Sequence[str], thinking_tokens: int = 40) -> None:
        super().__init__(respond=self._respond)
        self.answers = answers
        self.thinking_tokens = thinking_tokens

    def _respond(self, request: GenerationRequest) -> list[Sample]:
        budget = request.thinking_token_budget or 0
        thought = min(self.thinking_tokens, budget)
        answer = self.answers[(len(self.requests) - 1) % len(self.answers)]
        return [
            Sample(
                i, answer, thought + 10, "stop", token_logprobs=[-0.5] * (thought + 10),
                thinking=THOUGHT if thought else None, thinking_tokens=thought,
            )
            for i in range(request.n)
        ]  # fmt: skip


def run_reasoning(engine, *, params=None, budget_tokens=None, n=2):
    recorder = MemoryRecorder()
    ctx = make_context(
        TASK, DOC, engine, name="extended_reasoning", n=n, params=params,
        budget_tokens=budget_tokens, max_tokens=128, recorder=recorder,
    )  # fmt: skip
    return run_like_runner(ctx), ctx, recorder


def test_a_reasoning_engine_thinks_and_answers_in_one_request_under_the_thinking_budget():
    engine = ScriptedReasoningEngine([GOOD])
    outcome, ctx, recorder = run_reasoning(engine, params={"thinking_tokens": 200})
    (request,) = engine.requests
    assert request.thinking_token_budget == 200
    assert request.max_tokens == 200 + 128  # the thinking, then room for a whole answer
    assert request.json_schema == TASK.json_schema()  # vLLM applies it after the thinking
    assert outcome.status == "succeeded" and outcome.selected.text == GOOD
    # Thinking is charged apart: 40 per sample, within the 50 each completion took.
    assert recorder.charged == [(request_prompt(engine), 100, 80)]
    assert ctx.budget.thinking == 80
    events = recorder.of_kind("thinking")
    assert [(e["text"], e["tokens"], e["max_tokens"]) for e in events] == [(THOUGHT, 40, 200)] * 2


def request_prompt(engine: ScriptedEngine) -> int:
    return engine.results[0].prompt_tokens


def test_the_job_budget_cuts_the_thinking_never_the_answer():
    engine = ScriptedReasoningEngine([GOOD])
    budget = 1000  # the prompt, two answers of 128 and a little thinking each
    _, ctx, _ = run_reasoning(engine, budget_tokens=budget)
    (request,) = engine.requests
    thinking = request.thinking_token_budget
    assert thinking is not None and 64 <= thinking < 1024  # cut from the default
    assert request.max_tokens - thinking == 128  # the answer's room whole
    prompt = ctx.budget.estimate_prompt_tokens(request.messages)
    assert prompt + 2 * request.max_tokens <= budget


def test_no_parsed_answer_after_thinking_answers_once_without_thinking():
    engine = ScriptedReasoningEngine(["not json", GOOD])
    outcome, _, recorder = run_reasoning(engine)
    first, plain = engine.requests
    assert first.thinking_token_budget == 1024 and plain.thinking_token_budget == 0
    assert outcome.status == "succeeded" and outcome.rationale.get("recovered") is True
    assert recorder.of_kind("recover")
