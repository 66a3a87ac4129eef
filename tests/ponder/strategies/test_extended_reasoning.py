"""extended_reasoning: thinking kept apart from the answer, its budget, and the recovery."""

from __future__ import annotations

from ponder.prompts import render
from ponder.strategies.extended_reasoning import ANSWER_TEMPLATE
from tests.ponder.strategies.medrec import BROKEN, DOC, GOOD, TASK
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    by_step,
    make_context,
    run_like_runner,
)

THOUGHT = "The note lists metoprolol twice daily; lisinopril is mentioned too."


def run(script, *, params=None, budget_tokens=None, max_tokens=256, engine=None):
    engine = engine or ScriptedEngine(respond=by_step(script))
    recorder = MemoryRecorder()
    ctx = make_context(
        TASK, DOC, engine, name="extended_reasoning", params=params,
        budget_tokens=budget_tokens, max_tokens=max_tokens, recorder=recorder,
    )  # fmt: skip
    return run_like_runner(ctx), ctx, engine, recorder


def test_thinking_is_traced_apart_and_the_answer_is_conditioned_on_it():
    outcome, ctx, engine, recorder = run({"think": [THOUGHT], "answer": [GOOD]})
    think, answer = engine.requests
    assert think.json_schema is None and answer.json_schema == TASK.json_schema()
    assert answer.messages == (
        *TASK.messages(DOC),
        {"role": "assistant", "content": THOUGHT},
        {"role": "user", "content": render(ANSWER_TEMPLATE)},
    )
    (thinking,) = recorder.of_kind("thinking")
    assert thinking["text"] == THOUGHT and thinking["tokens"] == 10
    assert THOUGHT not in outcome.selected.text
    assert ctx.budget.thinking == 10
    assert ctx.budget.spent == sum(r.prompt_tokens + r.completion_tokens for r in engine.results)


def test_thinking_has_its_own_token_limit():
    _, _, engine, _ = run({"think": [THOUGHT], "answer": [GOOD]}, params={"thinking_tokens": 300})
    assert engine.requests[0].max_tokens == 300


def test_a_think_section_is_split_off_the_reasoning_and_off_the_answer():
    script = {"think": ["<think>hidden musing</think>\nvisible reasoning"], "answer": [
        f"<think>check the dose</think>{GOOD}"
    ]}  # fmt: skip
    outcome, ctx, _, recorder = run(script)
    first, inline = recorder.of_kind("thinking")
    assert first["text"] == "hidden musing\n\nvisible reasoning" and first["think_section"]
    assert inline == {
        "step": "answer",
        "idx": 0,
        "text": "check the dose",
        "tokens": 3,
        "inline": True,
    }
    assert outcome.status == "succeeded"  # the answer parsed once its thinking was split off
    assert ctx.budget.thinking == 10 + 3
    assert [thinking for _, _, thinking in recorder.charged] == [10, 3]  # charged to the job


def test_an_answer_that_does_not_parse_is_retried_once_without_the_thinking():
    outcome, _, engine, recorder = run(
        {"think": [THOUGHT], "answer": [BROKEN], "answer-plain": [GOOD]}
    )
    assert len(engine.requests) == 3
    assert engine.requests[2].messages == TASK.messages(DOC)
    (recover,) = recorder.of_kind("recover")
    assert recover["findings"][0].startswith("output is not valid")
    assert outcome.status == "succeeded" and outcome.selected.step == "answer-plain"


def test_thinking_is_cut_to_leave_room_for_a_full_answer():
    _, ctx, engine, _ = run(
        {"think": [THOUGHT], "answer": [GOOD]}, budget_tokens=1400, max_tokens=128
    )
    think, answer = engine.requests
    assert think.max_tokens < 1024
    assert answer.max_tokens == 128  # the thinking did not starve the answer
    assert ctx.budget.spent <= 1400


def test_without_room_to_think_it_answers_directly():
    outcome, _, engine, recorder = run({"answer-plain": [GOOD]}, budget_tokens=800, max_tokens=128)
    assert [r.request_id for r in engine.requests] == ["job-1:answer-plain"]
    assert recorder.of_kind("thinking")[0]["skipped"]
    assert outcome.status == "succeeded"


def test_a_retry_with_a_recorded_answer_does_not_think_again():
    engine = ScriptedEngine(respond=by_step({"think": [THOUGHT], "answer": [GOOD]}))
    _, _, _, recorder = run({}, engine=engine)
    retry = make_context(TASK, DOC, engine, name="extended_reasoning", recorder=recorder)
    outcome = run_like_runner(retry)
    assert len(engine.requests) == 2  # the first attempt's think and answer only
    assert outcome.status == "succeeded"
