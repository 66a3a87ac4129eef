"""Fault injection on real processes: workers we start, kill and restart ourselves."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ponder import config, queue
from ponder.cli.localrun import start_quarantine_worker, start_worker, stop
from tests.conftest import SPARE_BROKER

FAULT_ENV = {
    "PONDER_BROKER__URL": SPARE_BROKER,
    "PONDER_WORKER__LEASE_TTL_S": "6",
    "PONDER_WORKER__HEARTBEAT_S": "2",
    "PONDER_WORKER__MAX_ATTEMPTS": "3",
}


IN_PROCESS = {"PONDER_ENGINE__KIND": "vllm", "PONDER_ENGINE__MODEL": ""}
"""Overrides for a worker that loads the embedded model itself (the default deployment)."""


class Workers:
    """Start, kill and stop worker processes; every log is kept for the PHI checks.

    Workers use the session's vLLM server (``vllm_server``) as their engine unless a test
    asks for ``PONDER_ENGINE__KIND="vllm"``: a worker then starts in seconds instead of
    loading a model, and the faults hit the worker process all the same. The scenarios that
    are about the default deployment (kill -9 mid-generation, the PHI canary, the soak) run
    the in-process engine."""

    def __init__(self, logdir: Path, engine_url: str | None = None) -> None:
        self.logdir = logdir
        self.procs: list = []
        self.engine_env = (
            {"PONDER_ENGINE__KIND": "openai", "PONDER_ENGINE__MODEL": "smollm2",
             "PONDER_ENGINE__BASE_URL": engine_url}
            if engine_url else {}
        )  # fmt: skip

    def start(self, *, concurrency: int = 4, quarantine: bool = False, **env: str) -> object:
        """A worker of the reasoning, notify and default queues, or (``quarantine``) of the
        quarantine queue, one job at a time."""
        index = len(self.procs)
        log = open(self.logdir / f"worker-{index}.log", "wb")  # noqa: SIM115
        overrides = {**FAULT_ENV, **self.engine_env, **env}
        if quarantine:
            proc = start_quarantine_worker(overrides, log, name=f"quarantine{index}")
        else:
            proc = start_worker(overrides, log, name=f"fault{index}", concurrency=concurrency)
        proc.log_path = self.logdir / f"worker-{index}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        deadline = time.monotonic() + 90
        while b"ready." not in proc.log_path.read_bytes():  # type: ignore[attr-defined]
            assert proc.poll() is None and time.monotonic() < deadline, "worker did not start"
            time.sleep(0.3)
        return proc

    def kill9(self, proc) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logdir.glob("*.log"))

    def stop_all(self) -> None:
        for proc in self.procs:
            stop(proc)


@pytest.fixture
def workers(database, vllm_server, tmp_path, monkeypatch) -> Iterator[Workers]:
    redis.Redis.from_url(SPARE_BROKER).flushdb()
    for key, value in FAULT_ENV.items():
        monkeypatch.setenv(key, value)
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    pool = Workers(tmp_path, engine_url=vllm_server)
    yield pool
    pool.stop_all()
    monkeypatch.undo()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
