"""Two worker pools serving two registry models (the embedded weights under two names), with
the real CPU engine: a job naming the second model runs on the second pool; with the first
pool down and a short queue-age threshold, a job of a task with a fallback completes on the
fallback; with both pools down it stays queued and completes when a pool starts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ponder import config
from ponder.db import session_scope
from ponder.jobs.reconcile import reconcile
from ponder.models import Job
from tests.conftest import wait_for_status
from tests.e2e.pools import EMBEDDED, Pool, registry, two_pools

pytestmark = pytest.mark.e2e

DOC = "Aspirin 81 mg daily."
ENDED = {"succeeded", "needs_review", "failed"}
MODELS = [{"name": "small", **EMBEDDED}, {"name": "large", **EMBEDDED}]
KNOBS = """\
[tasks.medrec_extraction]
model = "large"
fallback_model = "small"
"""
QUEUE_AGE_S = 3.0


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[dict[str, Pool]]:
    knobs = tmp_path / "knobs.toml"
    knobs.write_text(KNOBS)
    with (
        registry(
            MODELS,
            PONDER_KNOBS_FILE=str(knobs),
            PONDER_FALLBACK__QUEUE_AGE_S=str(QUEUE_AGE_S),
        ),
        two_pools(tmp_path) as made,
    ):
        yield made


def submit(api: Any, tenant: Any, **change: Any) -> dict[str, Any]:
    body = {"task": "medrec_extraction", "document": DOC, "strategy": "single", **change}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


def reconcile_now() -> None:
    """What beat runs every ``worker.reconcile_every_s``."""
    with session_scope() as session:
        reconcile(session=session, settings=config.get_settings())


def test_a_job_naming_the_second_model_runs_on_the_second_pool(api, tenant, pools):
    pools["small"].start()
    pools["large"].start()
    job = submit(api, tenant, model="large")
    row = wait_for_status(job["id"], ENDED, timeout_s=420)
    assert row["status"] in {"succeeded", "needs_review"}, row["error"]
    assert row["config"]["model_requested"] == row["config"]["model_used"] == "large"
    assert pools["large"].claimed(job["id"]) and not pools["small"].claimed(job["id"])


def test_fallback_runs_a_job_when_its_pool_is_down_and_waits_when_both_are(api, tenant, pools):
    pools["small"].start()  # the large pool is down
    job = submit(api, tenant)
    assert job["model_used"] == "large"  # healthy as far as PostgreSQL knew: nothing waited
    time.sleep(QUEUE_AGE_S + 1)
    reconcile_now()
    row = wait_for_status(job["id"], ENDED, timeout_s=420)
    assert row["status"] in {"succeeded", "needs_review"}, row["error"]
    assert (row["config"]["model_requested"], row["config"]["model_used"]) == ("large", "small")
    assert pools["small"].claimed(job["id"])
    shown = api.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json()
    assert shown["model_used"] == "small"

    pools["small"].stop()  # both down now
    waiting = submit(api, tenant)
    time.sleep(QUEUE_AGE_S + 1)
    reconcile_now()
    time.sleep(2)
    with session_scope() as session:
        stuck = session.get(Job, waiting["id"])
        assert stuck is not None and stuck.status == "queued"  # nothing lost, nothing run
    pools["large"].start()  # the pool it asked for returns first and takes it back
    row = wait_for_status(waiting["id"], ENDED, timeout_s=420)
    assert row["status"] in {"succeeded", "needs_review"}, row["error"]
    assert row["config"]["model_used"] == "large"
    assert pools["large"].claimed(waiting["id"]) and not pools["small"].claimed(waiting["id"])
