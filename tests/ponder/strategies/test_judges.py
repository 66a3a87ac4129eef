"""Model-judge verifiers: off by default; when the job enables them, each
question is a greedy engine call constrained to yes or no, charged to the job."""

from __future__ import annotations

import json
import math

from ponder.engines.base import GenerationRequest, Sample
from ponder.strategies import STRATEGIES
from tasks.contract_review import TASK
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    make_context,
    run_like_runner,
)
from tests.tasks.contract_review.fixtures import DOCUMENT, finding

REVIEW = json.dumps({"findings": [finding().model_dump()]})


def respond(request: GenerationRequest) -> list[str | Sample]:
    if request.choice is not None:
        alternatives = {"yes": math.log(0.75), "no": math.log(0.25)}
        return [Sample(0, "yes", 1, "stop", [math.log(0.75)], [alternatives])]
    return [REVIEW] * request.n


def run(judges: bool):
    engine = ScriptedEngine(respond=respond)
    recorder = MemoryRecorder()
    ctx = make_context(
        TASK, DOCUMENT, engine, name="best_of_n", n=2, judges=judges, recorder=recorder
    )
    return run_like_runner(ctx), engine, ctx, recorder


def test_judges_are_off_by_default_and_never_call_the_engine():
    outcome, engine, _, _ = run(judges=False)
    assert len(engine.requests) == 1
    assert "judge" not in {v.verifier for v in outcome.selected.verdicts}


def test_enabled_judges_ask_a_constrained_yes_no_per_finding_and_are_charged():
    outcome, engine, ctx, recorder = run(judges=True)
    questions = [r for r in engine.requests if r.choice is not None]
    # Both candidates hold the same finding: the greedy question is asked once per job.
    assert len(questions) == 1
    (question,) = questions
    assert question.choice == ("yes", "no") and question.top_logprobs == 5
    assert question.temperature == 0.0 and question.max_tokens == 2
    assert question.request_id == "job-1:sample/judge-0-1"
    assert "governing_law" in question.messages[-1]["content"]
    for candidate in ctx.candidates:
        verdict = next(v for v in candidate.verdicts if v.verifier == "judge")
        assert verdict.passed and verdict.score == 0.75
    assert len(recorder.charged) == 2


def test_a_scoped_context_keeps_the_judges_setting():
    engine = ScriptedEngine(respond=respond)
    ctx = make_context(TASK, DOCUMENT, engine, name="best_of_n", n=2, judges=True)
    STRATEGIES["single"].run(ctx.scoped("esc1/", name="single", params={}))
    questions = [r.request_id for r in engine.requests if r.choice is not None]
    assert questions == ["job-1:esc1/sample/judge-0-1"]
