"""The job state machine: the only writer of ``Job.status``; impossible moves raise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from ponder.db import get_engine, session_scope
from ponder.jobs.state import (
    DEADLINE_ONLY,
    TRANSITIONS,
    ImpossibleTransition,
    bulk_move,
    expire,
    move,
)
from ponder.models import Job, JobStatus

ROOT = Path(__file__).resolve().parents[3]
ALL = list(JobStatus)


def job_in(status: JobStatus) -> Job:
    return Job(id="j", tenant_id="t", task="math_answer", status=status.value, request_hash="h",
               config={}, document="-")  # fmt: skip


@pytest.mark.parametrize("start", ALL, ids=lambda s: s.value)
def test_every_move_outside_the_table_raises_and_leaves_the_status(start):
    for to in ALL:
        job = job_in(start)
        if to in TRANSITIONS[start]:
            move(job, to)
            assert job.status == to.value
        else:
            with pytest.raises(ImpossibleTransition, match=f"{start.value} -> {to.value}"):
                move(job, to)
            assert job.status == start.value


def test_a_finished_job_cannot_run_again():
    for ended in (JobStatus.succeeded, JobStatus.cancelled, JobStatus.reviewed):
        with pytest.raises(ImpossibleTransition):
            move(job_in(ended), JobStatus.running)


def test_expired_is_reachable_only_through_a_deadline():
    for start in (JobStatus.queued, JobStatus.running):
        with pytest.raises(ImpossibleTransition):
            move(job_in(start), JobStatus.expired)
        job = job_in(start)
        expire(job)
        assert job.status == "expired"
    assert DEADLINE_ONLY == {(JobStatus.queued, JobStatus.expired),
                             (JobStatus.running, JobStatus.expired)}  # fmt: skip
    with pytest.raises(ImpossibleTransition, match="cannot expire"):
        expire(job_in(JobStatus.succeeded))


def test_a_bulk_move_leaves_rows_whose_status_does_not_allow_it(tenant):
    with session_scope() as session:
        for i, status in enumerate((JobStatus.queued, JobStatus.succeeded)):
            session.add(Job(id=f"bulk-{i}", tenant_id=tenant.tenant_id, task="math_answer",
                            status=status.value, request_hash=f"h{i}", config={},
                            document="-"))  # fmt: skip
    with get_engine().begin() as conn:
        moved = conn.execute(
            bulk_move(Job.tenant_id == tenant.tenant_id, to=JobStatus.cancelled)
        ).rowcount
        statuses = dict(
            conn.execute(
                sa.text("select id, status from jobs where tenant_id = :t"), {"t": tenant.tenant_id}
            ).all()  # fmt: skip
        )
    assert moved == 1
    assert statuses == {"bulk-0": "cancelled", "bulk-1": "succeeded"}


def test_no_other_module_writes_a_jobs_status():
    writes = re.compile(r"\bjob\.status\s*=(?!=)|\bstatus\s*=\s*JobStatus\.\w+\.value")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("ponder", "api", "worker", "tasks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "ponder" / "jobs" / "state.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if writes.search(line)
    ]
    assert found == []
