"""Engine calls and their charges: each call is charged once, to the budget and the job
together, a reused step is charged nothing, and a ``<think>`` section counts as thinking."""

from __future__ import annotations

from ponder.strategies import STRATEGIES
from ponder.strategies.budget import TokenLedger
from tests.ponder.strategies.medrec import DOC, GOOD, TASK
from tests.ponder.strategies.scripted import MemoryRecorder, ScriptedEngine, make_context

INLINE = f"<think>check the dose</think>{GOOD}"


def test_every_engine_call_is_charged_to_the_job_as_the_budget_counts_it():
    engine = ScriptedEngine([GOOD])
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name="refine", n=2, recorder=recorder)
    STRATEGIES["refine"].run(ctx)
    assert recorder.charged == [(r.prompt_tokens, r.completion_tokens, 0) for r in engine.results]
    assert ctx.budget.spent == sum(p + c for p, c, _ in recorder.charged)


def test_a_reused_step_is_charged_nothing():
    engine = ScriptedEngine([GOOD])
    recorder = MemoryRecorder()
    first = make_context(TASK, DOC, engine, name="best_of_n", n=2, recorder=recorder)
    STRATEGIES["best_of_n"].run(first)
    charged = list(recorder.charged)
    # The retry starts from the job's counters, which hold the first attempt's charge.
    ledger = TokenLedger(spent=first.budget.spent)
    retry = make_context(TASK, DOC, engine, name="best_of_n", n=2, recorder=recorder, ledger=ledger)
    STRATEGIES["best_of_n"].run(retry)
    assert len(engine.requests) == 1
    assert recorder.charged == charged
    assert retry.budget.spent == first.budget.spent


def test_a_think_section_in_an_answer_is_charged_as_thinking_in_any_strategy():
    engine = ScriptedEngine([INLINE])
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name="best_of_n", n=2, recorder=recorder)
    outcome = STRATEGIES["best_of_n"].run(ctx)
    assert [thinking for _, _, thinking in recorder.charged] == [2 * 3]
    assert ctx.budget.thinking == 2 * 3
    inline = recorder.of_kind("thinking")
    assert [(t["idx"], t["text"], t["tokens"]) for t in inline] == [
        (0, "check the dose", 3),
        (1, "check the dose", 3),
    ]
    assert outcome.status == "succeeded"  # the answer after the thinking was verified
