"""beam: expansion, P(yes) scoring, keeping the top chains, and finishing the best one."""

from __future__ import annotations

import math
import re

import pytest

from ponder.engines.base import GenerationRequest, Sample
from ponder.prompts import render
from ponder.strategies.beam import ANSWER_TEMPLATE, p_yes
from tests.ponder.strategies.medrec import DOC, GOOD, TASK
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    by_step,
    make_context,
    run_like_runner,
)

SCORES = {"1": [0.2, 0.9, 0.6], "2": [0.5, 0.3, 0.8]}
"""The judge's P(yes) for each expansion, by depth; each step's text carries its score."""


def expand(request: GenerationRequest) -> list[str]:
    depth, parent = request.request_id.rsplit("expand-", 1)[1].split("-")
    return [f"step d{depth}p{parent}x{i} s={s}" for i, s in enumerate(SCORES[depth])]


def judge(request: GenerationRequest) -> list[Sample]:
    score = float(re.findall(r"s=([0-9.]+)", request.messages[-1]["content"])[-1])
    alternatives = {"yes": math.log(score), "no": math.log(1 - score)}
    return [Sample(0, "yes", 1, "stop", [math.log(score)], [alternatives])]


def run(**params):
    engine = ScriptedEngine(respond=by_step({"expand": expand, "judge": judge, "finish": [GOOD]}))
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name="beam", params=params, recorder=recorder)
    return run_like_runner(ctx), engine, recorder


def test_p_yes_is_a_softmax_over_the_yes_and_no_alternatives():
    alternatives = {"Yes": math.log(0.3), " yes": math.log(0.3), "no": math.log(0.2), "maybe": 0.0}
    assert p_yes(Sample(0, "yes", 1, "stop", [], [alternatives])) == pytest.approx(0.75)


def test_p_yes_falls_back_to_the_sampled_choice_without_alternatives():
    assert p_yes(Sample(0, "yes", 1, "stop")) == 1.0
    assert p_yes(Sample(0, "no", 1, "stop")) == 0.0


def test_each_chain_is_expanded_in_one_request_of_short_one_line_steps():
    _, engine, _ = run(width=2, expansions=3, depth=2)
    expansions = [r for r in engine.requests if "expand" in r.request_id]
    assert [r.request_id for r in expansions] == [
        "job-1:expand-1-0",
        "job-1:expand-2-0",
        "job-1:expand-2-1",
    ]
    assert all(r.n == 3 and r.stop == ("\n",) and r.max_tokens == 64 for r in expansions)


def test_chains_are_judged_by_a_constrained_yes_no_with_alternatives():
    _, engine, _ = run(width=2, expansions=3, depth=1)
    judges = [r for r in engine.requests if "judge" in r.request_id]
    assert len(judges) == 3
    assert all(r.choice == ("yes", "no") and r.top_logprobs == 5 for r in judges)
    assert all(r.max_tokens == 2 and r.json_schema is None for r in judges)


def test_keeps_the_top_width_chains_by_score():
    _, engine, recorder = run(width=2, expansions=3, depth=2)
    first, second = recorder.of_kind("beam_step")
    assert [(e["score"], e["kept"]) for e in first["expansions"]] == [
        (0.2, False),
        (0.9, True),
        (0.6, True),
    ]
    # depth 2 extends the kept chains, best first
    assert "step d1p0x1 s=0.9" in engine.requests[4].messages[-1]["content"]
    assert "step d1p0x2 s=0.6" in engine.requests[5].messages[-1]["content"]
    assert [e["kept"] for e in second["expansions"]] == [False, False, True, False, False, True]


def test_finishes_the_best_chain_into_the_schema():
    outcome, engine, _ = run(width=2, expansions=3, depth=2)
    finish = engine.requests[-1]
    chain = "step d1p0x1 s=0.9\nstep d2p0x2 s=0.8"
    assert finish.json_schema == TASK.json_schema()
    assert finish.messages[2:] == (
        {"role": "assistant", "content": chain},
        {"role": "user", "content": render(ANSWER_TEMPLATE)},
    )
    assert outcome.status == "succeeded" and outcome.selected.step == "finish"
    assert outcome.rationale["chain"] == chain.split("\n")


def test_expansion_text_in_the_trace_is_cut_to_200_characters():
    script = {"expand": lambda r: ["x" * 500 + " s=0.5"], "judge": judge, "finish": [GOOD]}
    engine = ScriptedEngine(respond=by_step(script))
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name="beam", params={"depth": 1}, recorder=recorder)
    run_like_runner(ctx)
    (step,) = recorder.of_kind("beam_step")
    assert [e["text"] for e in step["expansions"]] == ["x" * 200]


def test_a_search_cut_short_by_the_budget_still_finishes_its_best_chain():
    engine = ScriptedEngine(respond=by_step({"expand": expand, "judge": judge, "finish": [GOOD]}))
    recorder = MemoryRecorder()
    ctx = make_context(
        TASK, DOC, engine, name="beam", params={"depth": 4}, budget_tokens=2500, recorder=recorder
    )
    outcome = run_like_runner(ctx)
    assert recorder.of_kind("search_stopped")
    assert engine.requests[-1].request_id == "job-1:finish"
    assert outcome.status == "succeeded" and ctx.budget.spent <= 2500
