"""Selection logic of single and best_of_n, against a scripted engine."""

from __future__ import annotations

import json

from ponder.strategies import STRATEGIES
from tests.ponder.strategies.medrec import TASK, med
from tests.ponder.strategies.scripted import MemoryRecorder, ScriptedEngine, make_context

DOC = "Metoprolol 50 mg by mouth twice daily. Lisinopril 10 mg by mouth daily."
GROUNDED = "Metoprolol 50 mg by mouth twice daily"


def med_json(name: str, dose: str = "50") -> str:
    return json.dumps({"medications": [med(name, dose, "twice daily", GROUNDED)]})


GOOD = med_json("Metoprolol")
INVENTED = med_json("Benjycillin")
BAD_DOSE = med_json("Metoprolol", dose="fifty")
BROKEN = '{"medications": [{"name": "Meto'


def run(name: str, texts: list[str], n: int = 4, logprobs: list[float] | None = None):
    engine = ScriptedEngine(texts, logprobs)
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name=name, n=n, recorder=recorder)
    return STRATEGIES[name].run(ctx), engine, recorder


def test_best_of_n_draws_all_samples_in_one_engine_request():
    _, engine, _ = run("best_of_n", [INVENTED, GOOD, BAD_DOSE, BROKEN])
    assert len(engine.requests) == 1
    assert engine.requests[0].n == 4
    assert engine.requests[0].json_schema == TASK.json_schema()


def test_best_of_n_selects_the_candidate_that_passes_every_required_check():
    outcome, _, _ = run("best_of_n", [INVENTED, BAD_DOSE, GOOD, BROKEN])
    assert outcome.status == "succeeded"
    assert outcome.selected is not None and outcome.selected.idx == 2


def test_ties_on_verifiers_are_broken_by_mean_logprob():
    outcome, _, _ = run("best_of_n", [GOOD, GOOD, GOOD], n=3, logprobs=[-0.9, -0.1, -0.5])
    assert outcome.selected is not None and outcome.selected.idx == 1


def test_no_passing_candidate_is_needs_review_with_the_best_and_its_failing_checks():
    outcome, _, recorder = run("best_of_n", [BROKEN, INVENTED, BAD_DOSE], n=3)
    assert outcome.status == "needs_review"
    assert outcome.selected is not None
    failing = {f["verifier"] for f in outcome.rationale["failing_checks"]}
    assert failing  # the reviewer is told what failed
    kinds = [k for k, _ in recorder.events]
    assert kinds == ["samples", "selection"]
    assert recorder.events[-1][1]["status"] == "needs_review"


def test_unparseable_candidate_gets_a_failed_verdict_from_every_verifier():
    outcome, _, recorder = run("single", [BROKEN], n=1)
    candidate = recorder.steps["sample"][0]
    assert {v.verifier for v in candidate.verdicts} == {"schema", *TASK.verifier_names()}
    assert not any(v.passed for v in candidate.verdicts)
    assert outcome.status == "needs_review"


def test_a_recorded_step_is_reused_instead_of_generated_again():
    engine = ScriptedEngine([GOOD])
    recorder = MemoryRecorder()
    for _ in range(2):  # the second run is a retry of the same job
        ctx = make_context(
            TASK, DOC, engine, name="best_of_n", n=2, max_tokens=64, recorder=recorder
        )
        STRATEGIES["best_of_n"].run(ctx)
    assert len(engine.requests) == 1
    assert ("reused", {"step": "sample", "candidates": 2}) in recorder.events
