"""PostgreSQL restarted under a running job: the run retries its writes until the database
is back, and the job ends once, with one result and one notification.

The restart is done on a PostgreSQL cluster of our own (initdb on a free port), so the
server other tests and programs use is never touched."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ponder import config, queue
from ponder.cli.dbadmin import create_database, migrate
from ponder.cli.devservers import free_port
from ponder.db import get_engine
from tests.conftest import make_tenant, wait_for_status
from tests.faults.test_worker_faults import (
    ENDED,
    assert_one_signed_delivery,
    submit,
    wait_running_with_engine_work,
)

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.fail(f"{name} not found: this test runs a PostgreSQL server of its own")
    return found


class PrivatePostgres:
    """A throwaway cluster on 127.0.0.1 with trust auth, owned by the postgres user when the
    tests run as root (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ponder-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/ponder"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                  "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres(database, workers, monkeypatch) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.init()
    monkeypatch.setenv("PONDER_DATABASE__URL", server.url)
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    create_database(server.url)
    migrate()
    yield server
    get_engine().dispose()
    monkeypatch.undo()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    server.remove()


def wait_for_log(path: Path, needle: bytes, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in path.read_bytes():
            return True
        time.sleep(0.2)
    return False


def test_postgres_restart_during_a_run_loses_and_doubles_nothing(
    api, private_postgres, workers, webhook_receiver
):
    tenant = make_tenant("tenant-a")
    worker = workers.start(
        PONDER_DATABASE__URL=private_postgres.url,
        PONDER_WORKER__LEASE_TTL_S="60",  # the outage is not a dead worker
        PONDER_DATABASE__RETRY_FOR_S="300",
    )
    job_id = submit(api, tenant, webhook_receiver)
    wait_running_with_engine_work(job_id)
    private_postgres.stop()
    # Down until the run has tried to write and is retrying, so the outage is known to fall
    # on a write of the run and not only between them.
    retried = wait_for_log(worker.log_path, b"database unreachable", timeout_s=240)
    private_postgres.start()
    assert retried, "the run never wrote while PostgreSQL was down"
    get_engine().dispose()  # this process's pooled connections died with the server
    row = wait_for_status(job_id, ENDED, timeout_s=300)
    assert row["status"] in {"succeeded", "needs_review"}
    assert row["attempts"] == 1  # the same run carried on; nothing re-ran it
    with get_engine().connect() as conn:
        counts = conn.execute(
            sa.text(
                "select"
                " (select count(*) from trace_events where job_id = :j and kind = 'selection'),"
                " (select count(*) from trace_events where job_id = :j and kind = 'started'),"
                " (select count(*) from notifications where job_id = :j),"
                " (select count(*) from candidates where job_id = :j)"
            ),
            {"j": job_id},
        ).one()
    selections, starts, notifications, candidates = counts
    assert (selections, starts, notifications) == (1, 1, 1)
    assert candidates == 8  # n = 8, none written twice
    assert_one_signed_delivery(webhook_receiver, tenant, job_id, row["status"])
