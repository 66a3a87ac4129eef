"""Start the api and a worker as real processes on 127.0.0.1 (for the demo and the tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[2]


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"})
    env.update(overrides)
    return env


def start_api(
    env: Mapping[str, str], port: int, log: IO[bytes], *, workers: int = 1
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--workers", str(workers)]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=child_env(env), stdout=log, stderr=subprocess.STDOUT
    )


def start_worker(
    env: Mapping[str, str],
    log: IO[bytes],
    *,
    queues: str = "reasoning,notify,default",
    concurrency: int | None = None,
    name: str = "worker",
) -> subprocess.Popen[bytes]:
    """Concurrency defaults to the settings' ``worker.jobs_in_flight``."""
    command = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", queues,
               "-P", "threads", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
               "-l", "INFO"]  # fmt: skip
    if concurrency is not None:
        command += ["-c", str(concurrency)]
    return subprocess.Popen(
        command, cwd=ROOT, env=child_env(env), stdout=log, stderr=subprocess.STDOUT
    )


def start_quarantine_worker(
    env: Mapping[str, str], log: IO[bytes], *, name: str = "quarantine"
) -> subprocess.Popen[bytes]:
    """The worker of the ``quarantine`` queue: one job at a time, so that a job that died with
    its worker in crowds is convicted (or cleared) by a run of its own (ponder/jobs/deaths.py).
    Without one, quarantined jobs wait (logged as an error after
    ``worker.quarantine_wait_alert_s``; ``ponder_queue_depth{queue="quarantine"}``)."""
    return start_worker(env, log, queues="quarantine", concurrency=1, name=name)


def wait_ready(base_url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"api at {base_url} not ready after {timeout_s}s")


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
