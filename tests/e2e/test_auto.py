"""``auto`` through the API, a real worker and the real CPU engine: each document runs the
band its signals put it in, the trace records the route, and the model's yes/no question is
asked and paid for."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.db import get_engine
from tests.conftest import make_tenant, wait_for_status
from tests.ponder.jobs.test_knobs import write

pytestmark = pytest.mark.e2e

# The model is asked (its P(yes) is traced) but weighs nothing, so that the route depends on
# the count of numbers alone: 2 numbers score 0.25, 6 score 0.75.
KNOBS = """\
[tasks.math_answer.auto]
bands = [
  { max_score = 0.3, strategy = "single" },
  { max_score = 1.0, strategy = "best_of_n", n = 2 },
]
weights = { length = 0, operations = 0, model = 0 }
ask_model = true
"""
EASY = "What is 12 + 30?"
HARD = (
    "A farm has 12 cows, 30 hens and 7 goats. Each cow gives 9 litres of milk a day and "
    "each goat 2 litres. How many litres does the farm get in 5 days?"
)
ENDED = {"succeeded", "needs_review", "failed", "cancelled"}


@pytest.fixture(scope="module")
def finished(database, worker, tmp_path_factory):
    """The band table is read at submission and frozen on the job: the worker needs no knobs."""
    from fastapi.testclient import TestClient

    from api.main import app
    from ponder.jobs.knobs import knobs_store

    path = tmp_path_factory.mktemp("knobs") / "knobs.toml"
    write(path, KNOBS)
    patch = pytest.MonkeyPatch()
    patch.setenv("PONDER_KNOBS_FILE", str(path))
    config.get_settings.cache_clear()
    knobs_store.cache_clear()
    try:
        api = TestClient(app)
        tenant = make_tenant(f"auto-{uuid.uuid4()}")
        ids = {}
        for name, document in {"easy": EASY, "hard": HARD}.items():
            body = {"task": "math_answer", "document": document, "strategy": "auto", "seed": 3}
            response = api.post("/v1/jobs", json=body, headers=tenant.headers)
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]
        out = {}
        for name, job_id in ids.items():
            job = wait_for_status(job_id, ENDED, timeout_s=900)
            trace = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()
            out[name] = (job, trace)
        return out
    finally:
        patch.undo()
        config.get_settings.cache_clear()
        knobs_store.cache_clear()


def route_of(trace) -> dict:
    (route,) = [s["data"] for s in trace["steps"] if s["kind"] == "route"]
    return route


@pytest.mark.parametrize(
    ("name", "strategy", "n", "score"),
    [("easy", "single", 1, 0.25), ("hard", "best_of_n", 2, 0.75)],
)
def test_each_document_runs_the_band_its_signals_put_it_in(finished, name, strategy, n, score):
    job, trace = finished[name]
    assert job["status"] in {"succeeded", "needs_review"}, job["error"]
    route = route_of(trace)
    assert (route["strategy"], route["n"], route["score"]) == (strategy, n, score)
    assert 0.0 <= route["signals"]["model"] <= 1.0
    steps = {c["step"] for c in trace["candidates"]}
    assert steps == {f"{strategy}/sample"}
    assert len(trace["candidates"]) == n
    assert [s["kind"] for s in trace["steps"]][-1] == "selection"


def test_the_question_to_the_model_is_charged_to_the_job(finished):
    job, _ = finished["easy"]
    with get_engine().connect() as conn:
        sampled = conn.execute(
            sa.text("select sum(completion_tokens) from candidates where job_id = :j"),
            {"j": job["id"]},
        ).scalar_one()
    # The yes/no answer is one or two tokens on top of what the sample generated.
    assert sampled + 1 <= job["completion_tokens"] <= sampled + 2
