"""refine: the stop rules, and the exact findings fed back to the model."""

from __future__ import annotations

from ponder.strategies.refine import _bounded
from ponder.verify import failing_checks
from tests.ponder.strategies.medrec import BAD_DOSE, BROKEN, DOC, GOOD, INVENTED, TASK, answer, med
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    by_step,
    make_context,
    run_like_runner,
)


def run(rounds: dict[str, list[str]], **params):
    engine = ScriptedEngine(respond=by_step(rounds))
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name="refine", params=params, recorder=recorder)
    return run_like_runner(ctx), engine, recorder


def test_stops_as_soon_as_every_required_verifier_passes():
    outcome, engine, recorder = run({"round-1": [GOOD]})
    assert len(engine.requests) == 1
    assert recorder.of_kind("stop") == [{"reason": "every required verifier passed", "rounds": 1}]
    assert outcome.status == "succeeded"


def test_feeds_back_the_exact_findings_of_the_failing_checks():
    invented = answer(INVENTED)
    outcome, engine, recorder = run({"round-1": [invented], "round-2": [GOOD]})
    failures = failing_checks(recorder.steps["round-1"][0].verdicts)
    findings = [f for failure in failures for f in failure["findings"]]
    assert len(findings) == 3  # name and evidence not in the note, name not a drug
    messages = engine.requests[1].messages
    assert messages[:2] == TASK.messages(DOC)
    assert messages[2] == {"role": "assistant", "content": invented}
    assert messages[3]["role"] == "user"
    assert all(f in messages[3]["content"] for f in findings)
    (feedback,) = recorder.of_kind("feedback")
    assert feedback["findings"] == findings
    assert feedback["score_before"] < feedback["score_after"] == 1.0
    assert outcome.status == "succeeded" and outcome.selected.step == "round-2"


def test_stops_when_a_round_does_not_improve_the_score():
    outcome, engine, recorder = run({"round": [answer(INVENTED)]}, max_rounds=5)
    assert len(engine.requests) == 2
    assert recorder.of_kind("stop")[0]["reason"] == "round 2 did not improve the score"
    assert outcome.status == "needs_review"


def test_stops_at_the_round_limit_while_still_improving():
    rounds = {"round-1": [BROKEN], "round-2": [answer(INVENTED)], "round-3": [answer(BAD_DOSE)]}
    outcome, engine, recorder = run(rounds, max_rounds=3)
    assert len(engine.requests) == 3
    assert recorder.of_kind("stop")[0]["reason"] == "reached max_rounds=3"
    assert [e["round"] for e in recorder.of_kind("feedback")] == [2, 3]
    assert outcome.status == "needs_review" and outcome.selected.step == "round-3"


def test_each_round_is_its_own_recorded_step():
    _, _, recorder = run({"round-1": [BROKEN], "round-2": [GOOD]})
    assert list(recorder.steps) == ["round-1", "round-2"]


def test_feedback_shows_a_few_findings_per_failing_check():
    # Ten invented medications fail three checks ten times each: listing every finding
    # would not leave room in the context for the answer and a new one.
    invented = [
        med(f"Benjycillin{i}", "50", "daily", f"Benjycillin{i} 50 mg daily") for i in range(10)
    ]
    _, engine, recorder = run({"round-1": [answer(*invented)], "round-2": [GOOD]})
    (feedback,) = recorder.of_kind("feedback")
    assert len(feedback["findings"]) == 3 * 4
    assert feedback["findings"].count("and 7 more like these") == 3
    assert "and 7 more like these" in engine.requests[1].messages[3]["content"]


def test_feedback_puts_required_checks_first_and_drops_repeated_findings():
    failures = [
        {"verifier": "no_duplicates", "required": False, "findings": ["x twice"]},
        {"verifier": "name_grounding", "required": True, "findings": ["a", "a", "b"]},
    ]
    assert _bounded(failures) == [
        {"verifier": "name_grounding", "required": True, "findings": ["a", "b"]},
        {"verifier": "no_duplicates", "required": False, "findings": ["x twice"]},
    ]
