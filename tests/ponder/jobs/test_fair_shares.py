"""Fair shares between tenants: a tenant's priority is capped (knobs file), and a flood of one
tenant's items does not hold back another tenant's job (``jobs.fairer_job``, used by the
worker's run task)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.batches.service import BatchOptions, create_batch
from ponder.db import get_engine, session_scope
from ponder.models import Tenant
from tests.conftest import wait_for_status

FLOOD = 200
SLACK_S = 3.0
"""Between a worker slot freeing and the next claim: fetching a message, two transactions."""


@pytest.fixture
def capped_knobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from ponder.jobs.knobs import knobs_store

    path = tmp_path / "knobs.toml"
    path.write_text("[tenants.default]\nhighest_priority = 3\n")
    monkeypatch.setenv("PONDER_KNOBS_FILE", str(path))
    config.get_settings.cache_clear()
    knobs_store.cache_clear()
    yield path
    monkeypatch.undo()
    config.get_settings.cache_clear()
    knobs_store.cache_clear()


def test_a_priority_above_the_tenants_cap_is_lowered_to_the_cap(
    api: Any, tenant: Any, isolated_broker: Any, capped_knobs: Path
) -> None:
    body = {"task": "math_answer", "document": "What is 2 + 2?", "strategy": "single"}
    urgent = api.post("/v1/jobs", json={**body, "priority": 0}, headers=tenant.headers)
    relaxed = api.post("/v1/jobs", json={**body, "priority": 8}, headers=tenant.headers)

    assert urgent.status_code == 201, urgent.text
    assert urgent.json()["priority"] == 3
    assert urgent.json()["config"]["strategy"]["priority"] == 3  # the engine's priority too
    assert relaxed.json()["priority"] == 8  # below the cap: as asked


def test_a_batch_priority_above_the_tenants_cap_is_lowered_for_its_items(
    api: Any, tenant: Any, isolated_broker: Any, capped_knobs: Path
) -> None:
    line = {"custom_id": "a", "task": "math_answer", "document": "What is 2 + 2?",
            "strategy": "single"}  # fmt: skip
    response = api.post(
        "/v1/batches",
        files={"file": ("items.jsonl", json.dumps(line).encode() + b"\n")},
        data={"priority": "0"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    with get_engine().connect() as conn:
        priorities = conn.execute(
            sa.text(
                "select b.priority, j.priority from batches b join jobs j on j.batch_id = b.id "
                "where b.id = :b"
            ),
            {"b": response.json()["id"]},
        ).all()
    assert [tuple(row) for row in priorities] == [(3, 3)]  # the row and its broker message


def _starts(tenant_id: str) -> list[tuple[float, float | None]]:
    """(started, finished) as epoch seconds for the tenant's jobs that have started."""
    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text(
                "select extract(epoch from started_at), extract(epoch from finished_at) "
                "from jobs where tenant_id = :t and started_at is not null"
            ),
            {"t": tenant_id},
        ).all()
    return [(float(s), None if f is None else float(f)) for s, f in rows]


def _running(tenant_id: str) -> int:
    with get_engine().connect() as conn:
        return int(
            conn.execute(
                sa.text("select count(*) from jobs where tenant_id = :t and status = 'running'"),
                {"t": tenant_id},
            ).scalar_one()
        )


@pytest.mark.e2e
def test_another_tenants_job_starts_at_the_next_free_slot_despite_a_flood(
    api: Any, tenant: Any, other_tenant: Any, worker: Path
) -> None:
    """Tenant A queues a 200-item batch at priority 0; once A fills the worker's slots, tenant
    B submits one job at the default priority. Bound: B's job is claimed at the next free slot,
    so it waits at most the longest run of an A job (the slot that frees first) plus
    ``SLACK_S``, and at most two A items (claims racing B's) start in between. Without fair
    shares, B waits for every A item ahead of it in the broker."""
    lines = [
        {"custom_id": f"q{i}", "task": "math_answer", "strategy": "single",
         "document": f"What is {i} + {i}?"}
        for i in range(FLOOD)
    ]  # fmt: skip
    upload = io.BytesIO(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    with session_scope() as session:
        owner = session.get(Tenant, tenant.tenant_id)
        assert owner is not None
        batch, _ = create_batch(
            session=session,
            tenant=owner,
            upload=upload,
            options=BatchOptions(priority=0),
            idempotency_key=None,
            settings=config.get_settings(),
        )
        batch_id = batch.id
    deadline = time.monotonic() + 300
    while _running(tenant.tenant_id) < 12:  # the worker's 16 slots are (nearly) all A's
        assert time.monotonic() < deadline, "tenant A's batch did not start"
        time.sleep(0.5)

    body = {"task": "math_answer", "document": "What is 20 + 22?", "strategy": "single"}
    response = api.post("/v1/jobs", json=body, headers=other_tenant.headers)
    assert response.status_code == 201, response.text
    b_job = wait_for_status(response.json()["id"], {"running", "succeeded", "needs_review"}, 300)

    b_queued = b_job["created_at"].timestamp()
    b_started = b_job["started_at"].timestamp()
    a_runs = _starts(tenant.tenant_id)
    overtaking = [s for s, _ in a_runs if b_queued < s < b_started]
    finished_first = [f - s for s, f in a_runs if f is not None and f <= b_started]
    bound_s = (max(finished_first) if finished_first else 0.0) + SLACK_S
    print(f"B waited {b_started - b_queued:.1f}s; bound {bound_s:.1f}s; "
          f"A items started meanwhile: {len(overtaking)}")  # fmt: skip
    api.post(f"/v1/batches/{batch_id}/cancel", headers=tenant.headers)
    end_by = time.monotonic() + 120
    while _running(tenant.tenant_id) and time.monotonic() < end_by:
        time.sleep(1)

    assert b_started - b_queued <= bound_s
    assert len(overtaking) <= 2
