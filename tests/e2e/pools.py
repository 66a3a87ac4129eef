"""Worker pools of a model registry for end-to-end tests: each pool a real Celery worker
serving one registry entry (the embedded weights under a name of its own) on its model's
queue, all on a broker of their own — the suite's shared worker (the ``worker`` fixture)
consumes ``reasoning`` on the usual one and would take the pools' jobs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from ponder import config, queue
from ponder.cli.localrun import start_worker, stop
from ponder.jobs.knobs import knobs_store
from tests.conftest import SPARE_BROKER

EMBEDDED = {"kind": "vllm", "model": "", "dtype": "float32", "max_model_len": 2048}


def _clear() -> None:
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    knobs_store.cache_clear()


@contextlib.contextmanager
def registry(models: list[dict[str, Any]], **env: str) -> Iterator[None]:
    """The models for this process (the API) and the pools it starts, the first the default
    (it serves notify), with ``env`` (``PONDER_…`` settings) on top."""
    redis.Redis.from_url(SPARE_BROKER).flushdb()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PONDER_BROKER__URL", SPARE_BROKER)
        patch.setenv("PONDER_MODELS", json.dumps(models))
        patch.setenv("PONDER_DEFAULT_MODEL", str(models[0]["name"]))
        patch.setenv("PONDER_ENGINE__KV_CACHE_GIB", "1")
        for name, value in env.items():
            patch.setenv(name, value)
        _clear()
        yield
    _clear()
    redis.Redis.from_url(SPARE_BROKER).flushdb()


@dataclass
class Pool:
    model: str
    log: Path
    default: bool = False
    """The default model's pool also serves notify and default."""
    proc: Any = None

    def start(self) -> Pool:
        queues = "reasoning,notify,default" if self.default else f"reasoning.{self.model}"
        handle = open(self.log, "ab")  # noqa: SIM115 - the child holds it
        start = self.log.stat().st_size if self.log.exists() else 0
        self.proc = start_worker(
            {"PONDER_WORKER__MODEL": self.model}, handle, queues=queues, concurrency=2,
            name=self.model,
        )  # fmt: skip
        handle.close()
        deadline = time.monotonic() + 180
        while b"ready." not in self.log.read_bytes()[start:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.model} pool did not start; see {self.log}")
            time.sleep(0.3)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout_s=30)
            self.proc = None

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def runs(self, job_id: str) -> int:
        """Runs of the job this pool claimed (the runner logs each claim)."""
        return self.log.read_bytes().count(f"job {job_id} attempt".encode())

    def claimed(self, job_id: str) -> bool:
        return self.runs(job_id) > 0


@contextlib.contextmanager
def two_pools(tmp_path: Path) -> Iterator[dict[str, Pool]]:
    """``small`` (the default) and ``large``, started by the test; stopped after it."""
    made = {
        "small": Pool("small", tmp_path / "small.log", default=True),
        "large": Pool("large", tmp_path / "large.log"),
    }
    try:
        yield made
    finally:
        for pool in made.values():
            pool.stop()
