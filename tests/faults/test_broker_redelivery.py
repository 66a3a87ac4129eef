"""The broker's own redelivery (late acks, Redis visibility timeout), without the reconciler:
a job longer than the visibility timeout is delivered again while it runs and the lease
refuses the second run; a killed worker's job comes back from the broker alone. And a run
whose lease was taken by another claim writes nothing more."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import pytest
import redis
import sqlalchemy as sa

from ponder.db import get_engine
from tests.conftest import SPARE_BROKER, wait_for_status
from tests.faults.test_worker_faults import (
    ENDED,
    NOTE,
    assert_one_signed_delivery,
    job_row,
    submit,
    wait_running_with_engine_work,
)

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

SHORT_VISIBILITY_S = "8"
"""Seconds. Shorter than a best_of_n job with n=16 (15 s to over a minute here); longer than
the lease (6 s) and than a refused claim's countdown (at most the lease plus 1 s): a countdown
that outlives the visibility timeout is itself redelivered, which would multiply the copies.
The worker scans for expired messages every visibility_timeout // 4 s (ponder/queue.py)."""

RUN_JOB_LINE = re.compile(
    r"Task ponder\.run_job\[(?P<task>[0-9a-f-]+)\] (?P<what>received|retry|succeeded)"
    r"(?: in [0-9.]+s: '(?P<outcome>\w+)')?"
)


def written(job_id: str) -> dict[str, object]:
    """What runs have written for the job: trace events, candidates, verdicts, usage."""
    with get_engine().connect() as conn:
        return dict(
            conn.execute(
                sa.text(
                    "select"
                    " (select count(*) from trace_events where job_id = :j) as events,"
                    " (select coalesce(max(seq), 0) from trace_events where job_id = :j) as seq,"
                    " (select count(*) from candidates where job_id = :j) as candidates,"
                    " (select count(*) from verdicts v join candidates c on c.id = v.candidate_id"
                    "   where c.job_id = :j) as verdicts,"
                    " (select count(*) from notifications where job_id = :j) as notifications,"
                    " (select prompt_tokens + completion_tokens from jobs where id = :j) as tokens"
                ),
                {"j": job_id},
            )
            .mappings()
            .one()
        )


def count_events(job_id: str, kind: str) -> int:
    with get_engine().connect() as conn:
        return conn.execute(
            sa.text("select count(*) from trace_events where job_id = :j and kind = :k"),
            {"j": job_id, "k": kind},
        ).scalar_one()


def attempts_written(job_id: str) -> set[int]:
    """The attempt numbers on every trace event and candidate of the job."""
    with get_engine().connect() as conn:
        return set(
            conn.execute(
                sa.text(
                    "select attempt from trace_events where job_id = :j"
                    " union select attempt from candidates where job_id = :j"
                ),
                {"j": job_id},
            ).scalars()
        )


def wait_broker_drained(timeout_s: float = 60) -> None:
    """Until the broker holds no message at all, queued or delivered-but-unacked: every
    redelivered copy has been dealt with."""
    client = redis.Redis.from_url(SPARE_BROKER)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lists = [k for k in client.scan_iter() if client.type(k) == b"list" and client.llen(k)]
        if not lists and not client.hlen("unacked"):
            return
        time.sleep(0.5)
    raise TimeoutError("the broker still holds messages")


@dataclass(frozen=True)
class Sample:
    """The job's ``run_job`` messages that Redis holds as delivered but not acknowledged."""

    running: bool
    """The job was running both before and after the broker was read."""
    unacked: dict[str, dict]
    """Delivery tag (kept across redeliveries) to the message's Celery headers."""


def watch_unacked(job_id: str, timeout_s: float = 300) -> list[Sample]:
    """Sample the broker until the job ends."""
    client = redis.Redis.from_url(SPARE_BROKER)
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout_s
    while True:
        before = job_row(job_id)["status"]
        unacked = {}
        for tag, value in client.hgetall("unacked").items():
            headers = json.loads(value)[0]["headers"]
            if headers.get("task") == "ponder.run_job" and job_id in headers.get("argsrepr", ""):
                unacked[tag.decode()] = headers
        after = job_row(job_id)["status"]
        samples.append(Sample(before == after == "running", unacked))
        if after in ENDED:
            return samples
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.25)


def restored_while_running(samples: list[Sample]) -> bool:
    """Whether the message as the API sent it (not a retry, not yet redelivered) left the
    unacked set while the run it started was still going. The run acknowledges it only when
    it returns, after the job ended: only kombu's visibility-timeout restore takes it out
    earlier (and the redelivered copy, refused, is acknowledged with it)."""
    running = [s for s in samples if s.running]
    return any(
        headers["retries"] == 0
        and not headers.get("redelivered")
        and any(tag not in later.unacked for later in running[i + 1 :])
        for i, sample in enumerate(running)
        for tag, headers in sample.unacked.items()
    )


def wait_for_log(proc, pattern: str, timeout_s: float = 180) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while not (found := re.search(pattern, proc.log_path.read_text(errors="replace"))):
        assert time.monotonic() < deadline, f"no log line matching {pattern!r}"
        time.sleep(0.3)
    return found


def test_a_job_longer_than_the_visibility_timeout_is_redelivered_but_runs_once(
    api, tenant, workers, webhook_receiver
):
    worker = workers.start(PONDER_BROKER__VISIBILITY_TIMEOUT_S=SHORT_VISIBILITY_S)
    warm_up = {"task": "medrec_extraction", "document": NOTE, "strategy": "single"}
    warm_id = api.post("/v1/jobs", json=warm_up, headers=tenant.headers).json()["id"]
    wait_for_status(warm_id, ENDED)  # the engine is loaded: the next job is claimed at once
    job_id = submit(api, tenant, webhook_receiver, n=16)  # runs well past the timeout
    samples = watch_unacked(job_id)
    wait_broker_drained()
    row = job_row(job_id)
    assert row["status"] in {"succeeded", "needs_review"}

    # The broker put the message back (visibility timeout) while the run held the lease ...
    assert restored_while_running(samples)
    task_ids = {h["id"] for s in samples for h in s.unacked.values()}
    assert len(task_ids) == 1
    task_id = task_ids.pop()
    # ... and the second claim was refused: Celery logs the countdown retry of a busy claim,
    # after the run had claimed the job and before it ended.
    lines = worker.log_path.read_text(errors="replace").splitlines()
    claimed = next(i for i, line in enumerate(lines) if f"job {job_id} attempt 1 claimed" in line)
    mine = [(i, m) for i, line in enumerate(lines)
            if (m := RUN_JOB_LINE.search(line)) and m["task"] == task_id]  # fmt: skip
    ended = next(i for i, m in mine if m["outcome"] == row["status"])
    assert sum(m["what"] == "received" for _, m in mine) >= 2
    assert [i for i, m in mine if m["what"] == "retry" and claimed < i < ended]
    assert not any("engine unavailable" in line for line in lines)  # the only other retry

    # The job ran once.
    assert row["attempts"] == 1
    assert count_events(job_id, "started") == 1
    assert attempts_written(job_id) == {1}
    assert count_events(job_id, "selection") == 1
    assert written(job_id)["notifications"] == 1
    assert_one_signed_delivery(webhook_receiver, tenant, job_id, row["status"])


def test_a_run_whose_lease_was_taken_writes_nothing_more(api, tenant, workers, webhook_receiver):
    worker = workers.start()
    job_id = submit(api, tenant, webhook_receiver, n=4)
    wait_running_with_engine_work(job_id)
    with get_engine().begin() as conn:  # another worker's claim, as jobs.claim writes it
        conn.execute(
            sa.text(
                "update jobs set attempts = attempts + 1, lease_token = lease_token + 1,"
                " lease_owner = 'intruder', lease_expires_at = now() + interval '1 hour'"
                " where id = :j"
            ),
            {"j": job_id},
        )
    taken = job_row(job_id)
    before = written(job_id)  # after the claim committed: anything later is the old run's
    ended = wait_for_log(
        worker, r"Task ponder\.run_job\[[0-9a-f-]+\] succeeded in [0-9.]+s: '(\w+)'"
    )
    assert ended[1] == "lease_lost"  # the run stopped at its next write
    assert re.search(rf"job {job_id}: lease lost", worker.log_path.read_text(errors="replace"))

    assert written(job_id) == before
    row = job_row(job_id)
    assert row["status"] == "running" and row["finished_at"] is None
    assert row["result"] is None and row["selected_candidate_id"] is None
    assert (row["lease_token"], row["lease_owner"]) == (taken["lease_token"], "intruder")
    assert row["lease_expires_at"] == taken["lease_expires_at"]  # the old run renewed nothing
    assert not [r for r in webhook_receiver.received if job_id.encode() in r.body]


def test_a_killed_workers_job_is_redelivered_by_the_broker_alone(
    api, tenant, workers, webhook_receiver
):
    first = workers.start(PONDER_BROKER__VISIBILITY_TIMEOUT_S=SHORT_VISIBILITY_S)
    job_id = submit(api, tenant, webhook_receiver)
    wait_running_with_engine_work(job_id)
    workers.kill9(first)
    # No reconciler here: only the unacked message in Redis can bring the job back.
    workers.start(PONDER_BROKER__VISIBILITY_TIMEOUT_S=SHORT_VISIBILITY_S)
    row = wait_for_status(job_id, ENDED, timeout_s=240)
    assert row["status"] in {"succeeded", "needs_review"}
    assert row["attempts"] == 2
    assert count_events(job_id, "started") == 2
    assert count_events(job_id, "selection") == 1
    assert written(job_id)["notifications"] == 1
    assert_one_signed_delivery(webhook_receiver, tenant, job_id, row["status"])
