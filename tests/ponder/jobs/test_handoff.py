"""Escalation across models: a ladder rung may name a registry model (typed and checked, an
unknown one refused with nothing written); escalating to it hands the job to that model's pool
(released like a preemption, not counted as an attempt or a death, not taken back by the
requested model's pool), and that pool replays the recorded steps and runs the rung. The cost
sums each model's tokens at its own prices."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
import redis
from pydantic import ValidationError
from sqlmodel import select

from ponder import config, queue
from ponder.config import get_settings
from ponder.db import session_scope
from ponder.jobs import ending, handoff, lease, routing
from ponder.jobs.knobs import knobs_store
from ponder.models import Job, JobStatus, TraceEvent
from ponder.strategies import STRATEGIES
from ponder.strategies.adaptive import Params
from ponder.strategies.config import StrategyConfig
from ponder.strategies.context import HandOffRecord, ModelHandOff, StrategyContext
from tests.api.test_jobs_bad_input import job_rows
from tests.conftest import queued_messages
from tests.ponder.strategies.medrec import DOC, GOOD, INVENTED, TASK, answer
from tests.ponder.strategies.scripted import MemoryRecorder, Respond, ScriptedEngine, by_step

EMBEDDED = {"kind": "vllm", "model": "", "dtype": "float32", "max_model_len": 2048}
MODELS = [
    {"name": "small", **EMBEDDED, "prices": {"per_million_completion_tokens": 1.0}},
    {"name": "large", **EMBEDDED, "prices": {"per_million_completion_tokens": 10.0}},
]
LARGE_RUNG = {"strategy": "best_of_n", "model": "large", "n": 3}


@pytest.fixture
def two_models(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PONDER_MODELS", json.dumps(MODELS))
    monkeypatch.setenv("PONDER_DEFAULT_MODEL", "small")
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    knobs_store.cache_clear()
    yield
    monkeypatch.undo()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    knobs_store.cache_clear()


# Rung typing


def test_a_rung_may_name_a_model_its_n_and_params(two_models):
    params = Params.model_validate(
        {"ladder": ["refine", {**LARGE_RUNG, "params": {"early_stop": None}}]}
    )
    rung = params.ladder[1]
    assert not isinstance(rung, str)
    assert (rung.strategy, rung.model, rung.n) == ("best_of_n", "large", 3)
    dumped = STRATEGIES["adaptive"].validate_params({"ladder": ["refine", LARGE_RUNG]})
    assert dumped["ladder"][0] == "refine"
    assert dumped["ladder"][1]["model"] == "large" and dumped["ladder"][1]["n"] == 3


@pytest.mark.parametrize(
    ("rung", "phrase"),
    [
        ({"strategy": "best_of_n", "model": "huge"}, "known models: large, small"),
        ({"strategy": "nonsense", "model": "large"}, "not a known strategy"),
        ({"strategy": "adaptive", "model": "large"}, "cannot escalate to itself"),
        ({"strategy": "best_of_n", "params": {"bogus": 1}}, "bogus"),
        ({"strategy": "best_of_n", "n": 0}, "ladder.0"),
        ({"model": "large"}, "strategy"),
        ({**LARGE_RUNG, "temperature": 1.0}, "temperature"),
    ],
)
def test_a_bad_rung_is_refused_saying_what_to_fix(two_models, rung, phrase):
    with pytest.raises(ValidationError) as refused:
        Params.model_validate({"ladder": [rung]})
    assert phrase in str(refused.value)


def test_an_unknown_model_in_a_rung_is_a_422_listing_the_known_ones_and_nothing_is_written(
    api, tenant, two_models, isolated_broker
):
    body = {
        "task": "medrec_extraction",
        "document": DOC,
        "strategy": "adaptive",
        "params": {"ladder": [{"strategy": "best_of_n", "model": "huge"}]},
    }
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "ladder" in error and "known models: large, small" in error
    assert "huge" not in error  # the caller's value is not echoed
    assert job_rows() == 0 and queued_messages(isolated_broker) == 0


# The hand-off decision (strategy logic, scripted engine)


def context(
    engine: ScriptedEngine,
    recorder: MemoryRecorder,
    *,
    model: str,
    ladder: list[Any],
    handoffs: tuple[HandOffRecord, ...] = (),
) -> StrategyContext:
    params = STRATEGIES["adaptive"].validate_params({"ladder": ladder})
    cfg = StrategyConfig(name="adaptive", n=2, max_tokens=256, params=params)
    return StrategyContext.for_job(job_id="job-1", task=TASK, document=DOC, config=cfg,
                                   engine=engine, recorder=recorder, model=model,
                                   handoffs=handoffs)  # fmt: skip


SCRIPT: dict[str, Respond | Sequence[str]] = {"initial": [answer(INVENTED)], "sample": [GOOD]}
"""The first try fails a required verifier (never confident); the escalation answers well."""


def test_escalating_to_a_rung_on_another_model_hands_the_job_off_after_the_first_try(two_models):
    engine, recorder = ScriptedEngine(respond=by_step(SCRIPT)), MemoryRecorder()
    ctx = context(engine, recorder, model="small", ladder=[LARGE_RUNG])
    with pytest.raises(ModelHandOff) as handed:
        STRATEGIES["adaptive"].run(ctx)
    assert (handed.value.to_model, handed.value.rung, handed.value.strategy) == (
        "large", 1, "best_of_n",
    )  # fmt: skip
    [confidence] = recorder.of_kind("confidence")
    assert handed.value.confidence == confidence["value"] and not confidence["passed_required"]
    assert [r.request_id for r in engine.requests] == ["job-1:initial"]  # no rung ran here
    assert recorder.of_kind("escalate") == []


def test_the_target_pool_reuses_the_first_try_runs_the_rung_and_selects_over_both(two_models):
    recorder = MemoryRecorder()
    with pytest.raises(ModelHandOff):
        STRATEGIES["adaptive"].run(
            context(
                ScriptedEngine(respond=by_step(SCRIPT)),
                recorder,
                model="small",
                ladder=[LARGE_RUNG],
            )  # fmt: skip
        )
    engine = ScriptedEngine(respond=by_step(SCRIPT))
    ctx = context(engine, recorder, model="large", ladder=[LARGE_RUNG],
                  handoffs=(HandOffRecord("small", "large", 1),))  # fmt: skip
    outcome = STRATEGIES["adaptive"].run(ctx)
    assert [(r.request_id, r.n) for r in engine.requests] == [("job-1:esc1/sample", 3)]
    assert [e["step"] for e in recorder.of_kind("reused")] == ["initial"]
    assert [c.step for c in ctx.candidates] == ["initial"] * 2 + ["esc1/sample"] * 3
    assert outcome.selected is not None and outcome.selected.step == "esc1/sample"
    assert recorder.of_kind("escalate")[0]["model"] == "large"


def test_a_rung_another_model_already_ran_is_replayed_here_not_handed_off_again(two_models):
    # small -> large at rung 1, large -> small at rung 2: small replays rung 1 from the trace.
    ladder = [LARGE_RUNG, {"strategy": "best_of_n", "model": "small", "n": 1}]
    recorder = MemoryRecorder()
    script: dict[str, Respond | Sequence[str]] = {
        "initial": [answer(INVENTED)],
        "esc1/sample": [answer(INVENTED)],
        "esc2/sample": [GOOD],
    }
    engine = ScriptedEngine(respond=by_step(script))
    first = (HandOffRecord("small", "large", 1),)
    with pytest.raises(ModelHandOff):
        STRATEGIES["adaptive"].run(context(engine, recorder, model="small", ladder=ladder))
    with pytest.raises(ModelHandOff) as back:
        STRATEGIES["adaptive"].run(
            context(engine, recorder, model="large", ladder=ladder, handoffs=first)
        )
    assert (back.value.to_model, back.value.rung) == ("small", 2)
    engine.requests.clear()
    both = (*first, HandOffRecord("large", "small", 2))
    outcome = STRATEGIES["adaptive"].run(
        context(engine, recorder, model="small", ladder=ladder, handoffs=both)
    )
    assert [r.request_id for r in engine.requests] == ["job-1:esc2/sample"]
    assert outcome.selected is not None and outcome.selected.step == "esc2/sample"


@pytest.mark.parametrize("rung", ["best_of_n", {"strategy": "best_of_n", "model": "small"}])
def test_a_rung_on_no_model_or_this_one_runs_here(two_models, rung):
    engine, recorder = ScriptedEngine(respond=by_step(SCRIPT)), MemoryRecorder()
    STRATEGIES["adaptive"].run(context(engine, recorder, model="small", ladder=[rung]))
    assert [r.request_id for r in engine.requests] == ["job-1:initial", "job-1:esc1/sample"]


# The hand-off itself (PostgreSQL and the broker)


def submit_adaptive(api: Any, tenant: Any) -> str:
    body = {"task": "medrec_extraction", "document": DOC, "strategy": "adaptive",
            "params": {"ladder": [LARGE_RUNG]}}  # fmt: skip
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def in_queue(broker: redis.Redis, name: str) -> int:
    keys = [name, *(f"{name}:{p}" for p in range(1, 10))]
    return sum(int(broker.llen(key)) for key in keys)


OWNER = "host-a:41:b00t:7"


def claim(job_id: str, owner: str = OWNER) -> lease.Claim:
    with session_scope() as session:
        return lease.claim(session=session, job_id=job_id, owner=owner, settings=get_settings())


def test_a_hand_off_releases_the_job_to_the_target_pool_uncounted(
    api, tenant, two_models, isolated_broker
):
    from ponder.db import get_engine
    from ponder.ops.rollups import compact_and_read

    def handoffs() -> float:
        return compact_and_read(get_engine()).get("handoffs", {}).get(("small", "large"), 0.0)

    job_id = submit_adaptive(api, tenant)
    assert in_queue(isolated_broker, "reasoning") == 1
    isolated_broker.flushdb()
    held = claim(job_id)
    assert held.outcome == "claimed"
    counted = handoffs()
    moved = ModelHandOff(to_model="large", rung=1, strategy="best_of_n", confidence=0.41)
    assert handoff.hand_off(job_id=job_id, token=held.token, owner=OWNER, handoff=moved,
                            settings=get_settings())  # fmt: skip
    assert handoffs() == counted + 1  # ponder_handoffs_total{from_model, to_model}
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.status == JobStatus.queued.value and job.lease_owner is None
        assert job.attempts == 0  # not a failed attempt
        assert (job.config["model_requested"], job.config["model_used"]) == ("small", "large")
        assert job.config["escalated_to"] == "large"
        # The requested model's pool does not take it back; the reconciler sends it to large.
        assert routing.take_over(session, job_id, get_settings().model_copy(
            update={"worker": get_settings().worker.model_copy(update={"model": "small"})}
        )) == ("reasoning.large", job.priority)  # fmt: skip
        assert routing.queues_to_resend(job, get_settings()) == ["reasoning.large"]
        [event] = session.exec(
            select(TraceEvent.data).where(TraceEvent.job_id == job_id, TraceEvent.kind == "handoff")
        ).all()
    assert event == {"from": "small", "to": "large", "confidence": 0.41, "rung": 1,
                     "strategy": "best_of_n", "worker": "host-a:41:b00t"}  # fmt: skip
    assert handoff.recorded(job_id) == (HandOffRecord("small", "large", 1),)
    assert in_queue(isolated_broker, "reasoning.large") == 1
    assert in_queue(isolated_broker, "reasoning") == 0

    again = claim(job_id, owner="host-b:42:b00t:9")  # the large pool's run: no death counted
    assert again.outcome == "claimed" and again.attempt == 1 and again.charged == 1
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.crowd_deaths, job.lone_deaths) == (0, 0)
        kinds = session.exec(select(TraceEvent.kind).where(TraceEvent.job_id == job_id)).all()
    assert "worker_lost" not in kinds


def test_a_run_that_lost_its_lease_hands_nothing_off(api, tenant, two_models, isolated_broker):
    job_id = submit_adaptive(api, tenant)
    isolated_broker.flushdb()
    held = claim(job_id)
    moved = ModelHandOff(to_model="large", rung=1, strategy="best_of_n", confidence=0.4)
    assert not handoff.hand_off(job_id=job_id, token=held.token + 1, owner=OWNER,
                                handoff=moved, settings=get_settings())  # fmt: skip
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.running.value
        assert job.config["model_used"] == "small"
    assert queued_messages(isolated_broker) == 0


# Cost per model


def test_the_cost_sums_each_models_tokens_at_its_own_price(two_models):
    job = Job(tenant_id="t", task="medrec_extraction", request_hash="h", document="",
              config={"model_used": "large"}, prompt_tokens=300, completion_tokens=3_000_000,
              usage_by_model={
                  "small": {"prompt_tokens": 100, "completion_tokens": 2_000_000,
                            "engine_wall_s": 1.0},
                  "large": {"prompt_tokens": 150, "completion_tokens": 500_000,
                            "engine_wall_s": 2.0},
              })  # fmt: skip
    # small: 2M at 1/M; large: 0.5M at 10/M; 0.5M unattributed at the last model's (large).
    assert ending._cost(job, get_settings()) == pytest.approx(2.0 + 5.0 + 5.0)
