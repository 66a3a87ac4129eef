"""Escalation across models with the real CPU engine and two worker pools (the embedded weights
under two registry names): an adaptive job whose first try is never confident enough escalates
to a rung on the second model; the first pool hands the job off and the second replays the
first try and runs the rung. One trace holds both models' candidates and the hand-off, one
result, one webhook; a SIGKILL of the first pool's worker mid-job still ends it exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.db import get_engine, session_scope
from ponder.jobs.reconcile import reconcile
from ponder.models import Job
from tests.conftest import wait_for_status
from tests.e2e.pools import EMBEDDED, Pool, registry, two_pools

pytestmark = pytest.mark.e2e

DOC = "Aspirin 81 mg daily."
ENDED = {"succeeded", "needs_review", "failed"}
MODELS = [
    {"name": "small", **EMBEDDED, "prices": {"per_million_completion_tokens": 1.0}},
    {"name": "large", **EMBEDDED, "prices": {"per_million_completion_tokens": 10.0}},
]
PARAMS = {
    "initial_n": 1,
    # One sample's confidence is below 1 whatever it says (its token certainty is), so the
    # first try always escalates; the ladder's one rung ends it.
    "threshold": 1.0,
    "ladder": [{"strategy": "best_of_n", "model": "large", "n": 1}],
}
LEASE_TTL_S = 6


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[dict[str, Pool]]:
    with (
        registry(MODELS, PONDER_WORKER__LEASE_TTL_S=str(LEASE_TTL_S)),
        two_pools(tmp_path) as made,
    ):
        yield made


def submit(api: Any, tenant: Any, hook: str) -> str:
    body = {"task": "medrec_extraction", "document": DOC, "strategy": "adaptive",
            "params": PARAMS, "webhook_url": hook}  # fmt: skip
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    assert response.json()["model_used"] == "small"
    return str(response.json()["id"])


def rows(statement: str, **params: Any) -> list[Any]:
    with get_engine().connect() as conn:
        return list(conn.execute(sa.text(statement), params).all())


def hooks_for(receiver: Any, job_id: str) -> int:
    return sum(job_id.encode() in r.body for r in receiver.received)


def assert_ended_once_across_both_models(api: Any, tenant: Any, job_id: str, receiver: Any) -> None:
    row = wait_for_status(job_id, ENDED, timeout_s=600)
    assert row["status"] in {"succeeded", "needs_review"}, row["error"]
    assert row["result"] is not None and row["selected_candidate_id"] is not None
    assert (row["config"]["model_requested"], row["config"]["model_used"]) == ("small", "large")

    # Candidates from both models in one trace, the hand-off between them.
    made = rows("select step, model from candidates where job_id = :j order by created_at",
                j=job_id)  # fmt: skip
    assert [(r.step, r.model) for r in made] == [("initial", "small"), ("esc1/sample", "large")]
    [handed] = rows("select data from trace_events where job_id = :j and kind = 'handoff'",
                    j=job_id)  # fmt: skip
    event = handed.data
    assert (event["from"], event["to"], event["rung"], event["strategy"]) == (
        "small", "large", 1, "best_of_n",
    )  # fmt: skip
    assert 0.0 <= event["confidence"] < 1.0
    trace = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()
    assert {c["model"] for c in trace["candidates"]} == {"small", "large"}
    assert [s["data"]["step"] for s in trace["steps"] if s["kind"] == "reused"] == ["initial"]
    assert len(trace["selection"]["ranking"]) == 2  # over every candidate of both models

    # Tokens per model, each at its own price.
    usage = row["usage_by_model"]
    assert set(usage) == {"small", "large"}
    assert sum(u["completion_tokens"] for u in usage.values()) == row["completion_tokens"]
    expected = (usage["small"]["completion_tokens"] * 1.0
                + usage["large"]["completion_tokens"] * 10.0) / 1e6  # fmt: skip
    assert row["cost"] == pytest.approx(expected)

    # One result, one webhook. (A rung's own selection is scoped: adaptive's is the job's.)
    final = (
        "select 1 from trace_events where job_id = :j and kind = 'selection' "
        "and data->>'scope' is null"
    )
    assert len(rows(final, j=job_id)) == 1
    deadline = time.monotonic() + 60
    while hooks_for(receiver, job_id) == 0:
        assert time.monotonic() < deadline, f"no webhook for job {job_id}"
        time.sleep(0.2)
    time.sleep(3)  # a duplicate would follow within the retry schedule
    assert hooks_for(receiver, job_id) == 1
    assert len(rows("select 1 from notifications where job_id = :j", j=job_id)) == 1


def test_a_low_confidence_job_escalates_to_the_second_models_pool(
    api, tenant, pools, webhook_receiver
):
    pools["small"].start()
    pools["large"].start()
    job_id = submit(api, tenant, webhook_receiver.url)
    assert_ended_once_across_both_models(api, tenant, job_id, webhook_receiver)
    assert pools["small"].runs(job_id) == 1 and pools["large"].runs(job_id) == 1
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.attempts == 1  # the hand-off was not counted
        assert (job.crowd_deaths, job.lone_deaths) == (0, 0)


def test_killing_the_first_pools_worker_mid_job_still_ends_it_exactly_once(
    api, tenant, pools, webhook_receiver
):
    pools["small"].start()
    pools["large"].start()
    job_id = submit(api, tenant, webhook_receiver.url)
    deadline = time.monotonic() + 120
    while True:  # its first try is running on the small pool
        with session_scope() as session:
            job = session.get(Job, job_id)
            assert job is not None
            if job.status == "running":
                break
        assert time.monotonic() < deadline, "the small pool never claimed the job"
        time.sleep(0.1)
    pools["small"].kill()
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.config["model_used"] == "small"  # killed before it
    assert not rows("select 1 from trace_events where job_id = :j and kind = 'handoff'",
                    j=job_id)  # fmt: skip

    pools["small"].start()
    time.sleep(LEASE_TTL_S + 1)  # the dead run's lease expires
    with session_scope() as session:  # what beat runs every worker.reconcile_every_s
        reconcile(session=session, settings=config.get_settings())
    assert_ended_once_across_both_models(api, tenant, job_id, webhook_receiver)
    assert rows("select 1 from trace_events where job_id = :j and kind = 'worker_lost'",
                j=job_id)  # fmt: skip
    assert pools["small"].runs(job_id) == 2  # the killed run and the one that handed it off
    assert pools["large"].runs(job_id) == 1
