"""A job's token accounting through the real runner and PostgreSQL: thinking in an inline
``<think>`` section reaches ``tokens.thinking``, and a retried job's budget counts what its
earlier attempts spent (a reused step costs nothing again). The engine is a scripted double:
a CPU model writes no ``<think>`` section on demand, nor fails between two chosen steps."""

from __future__ import annotations

from typing import Any

from ponder.config import get_settings
from ponder.engines.base import EngineUnavailable, GenerationRequest
from ponder.jobs.runner import run_job
from tests.ponder.strategies.medrec import BROKEN, DOC, GOOD, INVENTED, answer
from tests.ponder.strategies.scripted import ScriptedEngine, by_step

INLINE = f"<think>check the dose</think>{GOOD}"
"""An answer that opens with 3 words (3 scripted tokens) of thinking."""


def submit(api, tenant, **request: Any) -> str:
    response = api.post(
        "/v1/jobs",
        json={"task": "medrec_extraction", "document": DOC, **request},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def run(job_id: str, engine: ScriptedEngine) -> str:
    return run_job(job_id=job_id, engine=engine, settings=get_settings(), owner="test").status


def test_thinking_in_an_inline_think_section_is_reported_in_tokens_thinking(
    api, tenant, isolated_broker
):
    job_id = submit(api, tenant, strategy="best_of_n", n=2)
    run(job_id, ScriptedEngine([INLINE]))
    job = api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert job["tokens"]["thinking"] == 2 * 3
    steps = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()["steps"]
    inline = [s["data"] for s in steps if s["kind"] == "thinking"]
    assert [(t["idx"], t["tokens"], t["inline"]) for t in inline] == [(0, 3, True), (1, 3, True)]


def test_a_thinking_phase_and_inline_thinking_both_count_as_thinking(api, tenant, isolated_broker):
    job_id = submit(api, tenant, strategy="extended_reasoning", n=1)
    engine = ScriptedEngine(
        respond=by_step({"think": ["the note lists aspirin"], "answer": [INLINE]})
    )
    run(job_id, engine)
    job = api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    thinking_call = engine.results[0].samples[0].completion_tokens
    assert job["tokens"]["thinking"] == thinking_call + 3
    assert job["tokens"]["thinking"] <= job["tokens"]["completion"]


def test_a_retried_job_counts_what_it_spent_against_its_budget(api, tenant, isolated_broker):
    # Every sample uses all its max_tokens, so the budget, not the answer, ends each call.
    failed = []

    def fail_once(request: GenerationRequest) -> list[str]:
        step = request.request_id.split(":", 1)[1]
        if step == "round-2" and not failed:
            failed.append(step)
            raise EngineUnavailable("the engine restarted")
        # Round 2 improves on round 1 (it parses), so refine would go on to round 3.
        return [{"round-1": BROKEN, "round-2": answer(INVENTED)}.get(step, answer(INVENTED))]

    engine = ScriptedEngine(respond=fail_once, completion_tokens=10**6)
    job_id = submit(
        api, tenant, strategy="refine", n=1, params={"max_rounds": 5}, budget_tokens=BUDGET
    )
    assert run(job_id, engine) == "retry"  # round 1 recorded and charged, round 2 failed
    assert run(job_id, engine) == "needs_review"
    job = api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    steps = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()["steps"]
    assert job["attempts"] == 2
    assert ("reused", 2) in [(s["kind"], s["attempt"]) for s in steps]
    spent = job["tokens"]["prompt"] + job["tokens"]["completion"]
    assert spent <= BUDGET
    # The second attempt's budget counted what the job was charged over both attempts.
    (stop,) = [s["data"] for s in steps if s["kind"] == "budget_stop"]
    assert stop["tokens_spent"] == spent
    fresh = [r for r in engine.requests if r.request_id.endswith(":round-2")][-1]
    assert fresh.max_tokens < 256, "the premise: the budget, not max_tokens, cut round 2"


BUDGET = 1300
"""Round 1 costs about 575 tokens (its prompt and 256 completion tokens), round 2's prompt
is estimated at about 585: 1300 leaves round 2 about 140 tokens, so the budget cuts it and
stops round 3. Counting round 1 as its completion tokens only (or not at all) would let
round 2 take all 256 and the job spend past its budget."""
