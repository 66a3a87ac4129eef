"""adaptive: confidence, stopping when confident, escalating in ladder order, ladder checks."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from ponder.strategies import STRATEGIES
from ponder.strategies.adaptive import Params, measure_confidence
from ponder.strategies.verification import ScoredCandidate
from ponder.verify import verify_candidate
from tests.ponder.strategies.medrec import DOC, GOOD, INVENTED, LISINOPRIL, TASK, answer
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    by_step,
    make_context,
    run_like_runner,
)


def run(script, **params):
    engine = ScriptedEngine(respond=by_step(script))
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name="adaptive", params=params, recorder=recorder)
    return run_like_runner(ctx), ctx, engine, recorder


def candidate(text: str, mean_logprob: float | None = -0.1) -> ScoredCandidate:
    parsed, verdicts = verify_candidate(
        text=text, output_model=TASK.output_model, document=DOC, verifiers=TASK.verifiers
    )
    return ScoredCandidate("s", 0, text, parsed, verdicts, mean_logprob, mean_logprob, 10, "stop")


def test_confidence_combines_verifiers_agreement_and_token_logprobs():
    confidence = measure_confidence(
        TASK, [candidate(GOOD), candidate(GOOD), candidate(answer(LISINOPRIL))]
    )
    tokens = math.exp(-0.1)
    assert confidence.verification == 1.0
    assert confidence.agreement == pytest.approx(2 / 3)
    assert confidence.tokens == pytest.approx(tokens)
    assert confidence.value == pytest.approx(0.5 + 0.25 * 2 / 3 + 0.25 * tokens)


def test_confidence_drops_components_it_has_no_evidence_for():
    confidence = measure_confidence(TASK, [candidate(GOOD, mean_logprob=None)])
    assert confidence.agreement is None and confidence.tokens is None
    assert confidence.value == 1.0  # verification alone


def test_stops_without_escalating_when_confident():
    outcome, _, engine, recorder = run({"initial": [GOOD]})
    assert [r.request_id for r in engine.requests] == ["job-1:initial"]
    assert engine.requests[0].n == 2
    assert recorder.of_kind("escalate") == []
    assert "reached the threshold" in recorder.of_kind("stop")[0]["reason"]
    assert outcome.status == "succeeded"


def test_escalates_in_ladder_order_until_confident():
    script = {
        "initial": [answer(INVENTED)],
        "esc1/sample": [answer(INVENTED)],
        "esc2/round-1": [GOOD],
    }
    outcome, ctx, engine, recorder = run(script)
    assert [r.request_id for r in engine.requests] == [
        "job-1:initial",
        "job-1:esc1/sample",
        "job-1:esc2/round-1",
    ]
    assert [e["to"] for e in recorder.of_kind("escalate")] == ["best_of_n", "refine"]
    assert [e["stage"] for e in recorder.of_kind("confidence")] == [
        "initial",
        "best_of_n",
        "refine",
    ]
    # refine continued from the best candidate so far rather than drafting afresh
    assert engine.requests[2].messages[2] == {"role": "assistant", "content": answer(INVENTED)}
    assert len(ctx.candidates) == 2 + 1 + 1  # every escalation's candidates land in the parent
    assert outcome.status == "succeeded" and outcome.selected.step == "esc2/round-1"


def test_disagreement_escalates_even_when_every_sample_passes():
    _, _, _, recorder = run(
        {"initial": [GOOD, answer(LISINOPRIL)], "sample": [GOOD]}, ladder=["best_of_n"]
    )
    first = recorder.of_kind("confidence")[0]
    assert first["passed_required"] and first["agreement"] == 0.5
    assert recorder.of_kind("escalate")[0]["to"] == "best_of_n"


def test_escalations_use_distinct_step_names_and_scoped_events():
    _, _, _, recorder = run(
        {"initial": [answer(INVENTED)], "sample": [answer(INVENTED)]},
        ladder=["best_of_n", "best_of_n"],
    )
    assert list(recorder.steps) == ["initial", "esc1/sample", "esc2/sample"]
    scopes = [e.get("scope") for e in recorder.of_kind("samples")]
    assert scopes == [None, "esc1/", "esc2/"]


def test_an_exhausted_ladder_selects_the_best_of_every_candidate():
    outcome, _, _, recorder = run(
        {"initial": [answer(INVENTED)], "sample": [answer(INVENTED)]}, ladder=["best_of_n"]
    )
    assert recorder.of_kind("stop")[0]["reason"].startswith("ladder exhausted")
    assert outcome.status == "needs_review"
    assert len(outcome.rationale["ranking"]) == 2 + 1


def test_a_ladder_naming_an_unknown_strategy_is_rejected_without_echoing_it():
    with pytest.raises(ValidationError, match=r"ladder\[1\] is not a known strategy") as error:
        Params(ladder=["best_of_n", "tree_of_thought"])
    assert "tree_of_thought" not in str(error.value).split("input_value")[0]
    with pytest.raises(ValidationError, match="is not a known strategy"):
        STRATEGIES["adaptive"].validate_params({"ladder": ["nope"]})


def test_a_ladder_escalating_to_adaptive_itself_is_rejected():
    with pytest.raises(ValidationError, match="cannot escalate to itself"):
        Params(ladder=["adaptive"])


def test_a_ladder_naming_auto_is_rejected():
    with pytest.raises(ValidationError, match="auto routes a job, it is not a rung"):
        Params(ladder=["best_of_n", "auto"])


def test_a_rung_that_adds_nothing_is_judged_on_the_candidates_before_it():
    script = {"initial": [GOOD, answer(LISINOPRIL)], "sample": [GOOD]}
    _, _, engine, recorder = run(script, ladder=["refine", "best_of_n"])
    first, after_refine, _ = recorder.of_kind("confidence")
    assert after_refine["stage"] == "refine" and after_refine["value"] == first["value"]
    assert [r.request_id for r in engine.requests] == ["job-1:initial", "job-1:esc2/sample"]
