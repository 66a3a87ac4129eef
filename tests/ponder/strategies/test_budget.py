"""Every strategy stays within budget_tokens, and a budget stop with nothing verified is
needs_review."""

from __future__ import annotations

import time

import pytest

from ponder.engines.base import GenerationRequest
from ponder.strategies import STRATEGIES
from ponder.strategies.budget import TokenLedger
from tests.ponder.strategies.medrec import DOC, INVENTED, TASK, answer
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    make_context,
    run_like_runner,
)


def failing_answers(request: GenerationRequest) -> list[str]:
    """Structured answers that never pass; reasoning steps and judges that carry on."""
    if request.json_schema is not None:
        text = answer(INVENTED)
    elif request.choice is not None:
        text = "yes"
    else:
        text = "the note lists one drug"
    return [text] * request.n


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("budget", [900, 2500, 6000])
def test_no_request_can_overspend_the_budget(name, budget):
    # Every sample uses its whole max_tokens: the worst case the budget check plans for.
    engine = ScriptedEngine(respond=failing_answers, completion_tokens=10**6)
    ctx = make_context(TASK, DOC, engine, name=name, n=2, max_tokens=256, budget_tokens=budget)
    outcome = run_like_runner(ctx)
    spent = 0
    for request, result in zip(engine.requests, engine.results, strict=True):
        bound = ctx.budget.estimate_prompt_tokens(request.messages) + request.n * request.max_tokens
        assert bound <= budget - spent, request.request_id
        spent += result.prompt_tokens + result.completion_tokens
    assert ctx.budget.spent == spent <= budget
    assert ctx.budget.thinking <= ctx.budget.spent
    assert outcome.status == "needs_review"


def test_the_budget_counts_what_earlier_attempts_of_the_job_spent():
    engine = ScriptedEngine(respond=failing_answers, completion_tokens=10**6)
    spent_before = 600
    ctx = make_context(
        TASK, DOC, engine, name="best_of_n", n=1, max_tokens=256, budget_tokens=1000,
        ledger=TokenLedger(spent=spent_before),
    )  # fmt: skip
    run_like_runner(ctx)
    (request,) = engine.requests
    prompt = ctx.budget.estimate_prompt_tokens(request.messages)
    assert request.max_tokens == 1000 - spent_before - prompt < 256
    assert ctx.budget.spent <= 1000


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_budget_stop_with_nothing_verified_is_needs_review(name):
    engine = ScriptedEngine(respond=failing_answers)
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name=name, n=2, budget_tokens=200, recorder=recorder)
    outcome = run_like_runner(ctx)
    assert engine.requests == []
    assert [k for k, _ in recorder.events][-2:] == ["budget_stop", "selection"]
    assert outcome.status == "needs_review" and outcome.selected is None


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_engine_call_starts_after_the_job_time_limit(name):
    started: list[float] = []

    def slow(request: GenerationRequest) -> list[str]:
        started.append(time.monotonic())
        time.sleep(0.05)
        return failing_answers(request)

    engine = ScriptedEngine(respond=slow)
    ctx = make_context(TASK, DOC, engine, name=name, n=2, time_limit_s=0.04)
    outcome = run_like_runner(ctx)
    assert started and ctx.budget.deadline is not None
    assert all(t < ctx.budget.deadline for t in started)
    assert outcome.status == "needs_review"


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_run_past_its_time_limit_stops_with_the_reason(name):
    engine = ScriptedEngine(respond=failing_answers)
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name=name, n=2, time_limit_s=1e-6, recorder=recorder)
    time.sleep(0.01)
    outcome = run_like_runner(ctx)
    assert engine.requests == []
    assert "job time limit" in recorder.of_kind("budget_stop")[0]["reason"]
    assert outcome.status == "needs_review" and outcome.selected is None
