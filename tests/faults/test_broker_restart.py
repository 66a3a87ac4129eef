"""Redis restarted without persistence, with jobs queued and running: PostgreSQL still has
them, the reconciler sends them again, the worker reconnects, every job completes once."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa

from ponder import config, queue
from ponder.cli.devservers import free_port
from ponder.db import get_engine
from tests.faults.conftest import Workers
from tests.faults.test_worker_faults import ENDED, job_row, reconcile_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

NOTE = "Medications: metoprolol 50 mg by mouth twice daily; lisinopril 10 mg daily."


class PrivateRedis:
    """A Redis of our own on a free port, so restarting it disturbs nothing else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=self.port).ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def private_redis(database, monkeypatch) -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    monkeypatch.setenv("PONDER_BROKER__URL", server.url)
    monkeypatch.setenv("PONDER_WORKER__REQUEUE_AFTER_S", "2")
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    yield server
    server.kill()
    monkeypatch.undo()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()


def supervise(workers: Workers, broker_url: str, timeout_s: float = 120) -> None:
    """What a process supervisor (Kubernetes, compose's restart policy) does: kombu 5.7 ends
    the worker with "Unrecoverable error" when Redis goes away under it (after its running
    job finishes and is written); a new worker takes over."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(p.poll() is not None for p in workers.procs):
            workers.start(PONDER_BROKER__URL=broker_url)
            return
        if workers.procs[-1].log_path.read_bytes().count(b"Connected to redis") > 1:
            return  # it reconnected by itself
        time.sleep(0.5)


def test_redis_restart_loses_no_job(api, tenant, private_redis, vllm_server, tmp_path):
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "single"}
    queued = [
        api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"] for _ in range(2)
    ]
    private_redis.kill()  # the messages are gone with it
    private_redis.start()
    workers = Workers(tmp_path, engine_url=vllm_server)
    try:
        workers.start(PONDER_BROKER__URL=private_redis.url)
        running = api.post("/v1/jobs", json={**body, "strategy": "best_of_n", "n": 6},
                           headers=tenant.headers).json()["id"]  # fmt: skip
        deadline = time.monotonic() + 120
        while job_row(running)["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        private_redis.kill()  # restarted under a running job
        private_redis.start()
        supervise(workers, private_redis.url)
        rows = [reconcile_until(job_id, ENDED, timeout_s=240) for job_id in [*queued, running]]
    finally:
        workers.stop_all()
    assert all(r["status"] in {"succeeded", "needs_review"} for r in rows)
    with get_engine().connect() as conn:
        for job_id in [*queued, running]:
            selections = conn.execute(
                sa.text(
                    "select count(*) from trace_events where job_id = :j and kind = 'selection'"
                ),
                {"j": job_id},
            ).scalar_one()
            assert selections == 1, job_id
    assert all(r["attempts"] == 1 for r in rows[:2])  # the lost messages ran once each
