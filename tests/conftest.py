"""Fixtures on real services: PostgreSQL (a ``ponder_test`` database, recreated per run),
Redis (databases 13-15), a real Celery worker subprocess with the real CPU engine, a real
vLLM OpenAI-compatible server, a real SMTP server and a real HTTP webhook receiver on
127.0.0.1.

Two runs can share the machine when each sets ``PONDER_TEST_DATABASE`` (a database name) and
``PONDER_TEST_REDIS_BASE`` (the first of three Redis databases) to its own values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ponder.cli.devservers import SmtpSink, WebhookReceiver, free_port

# Settings are read from the environment once; set them before anything imports them.
TEST_DB = os.environ.get("PONDER_TEST_DATABASE", "ponder_test")
REDIS_BASE = int(os.environ.get("PONDER_TEST_REDIS_BASE", "13"))
TEST_DB_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{TEST_DB}"
ISOLATED_BROKER = f"redis://127.0.0.1:6379/{REDIS_BASE}"
SPARE_BROKER = f"redis://127.0.0.1:6379/{REDIS_BASE + 1}"
WORKER_BROKER = f"redis://127.0.0.1:6379/{REDIS_BASE + 2}"
SMTP_PORT = free_port()
WORKER_METRICS_PORT = free_port()
os.environ.update(
    {
        "PONDER_ENVIRONMENT": "test",
        "PONDER_DATABASE__URL": TEST_DB_URL,
        "PONDER_BROKER__URL": WORKER_BROKER,
        "PONDER_NOTIFY__WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]',
        "PONDER_NOTIFY__SMTP_PORT": str(SMTP_PORT),
        "PONDER_NOTIFY__WEBHOOK_RETRY_SCHEDULE_S": "[0.3, 0.3, 0.3]",
        "PONDER_WORKER__HEARTBEAT_S": "2",
        # Answers are short JSON; a sample that loops would run to the 1536-token default and
        # hold its job for a minute on CPU. Tests that need another limit set their own.
        "PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE": "256",
        # Many tests submit the same document again to make the engine work again; the cache's
        # own tests ask for `use` per job, and test_cache.py checks the product default.
        "PONDER_RESULT_CACHE": "off",
        "OMP_NUM_THREADS": "1",
    }
)

from ponder import config, queue  # noqa: E402
from ponder.cli.dbadmin import migrate, recreate_database  # noqa: E402
from ponder.db import get_engine, session_scope  # noqa: E402
from ponder.tenants import issue_key  # noqa: E402

TABLES = (
    "reviews, reviewers, delivery_attempts, notifications, trace_events, verdicts, candidates, "
    "jobs, inbox_files, "
    "batches, webhook_endpoints, api_keys, tenants, metric_deltas, metric_totals"
)
"""Emptied before each test. Not ``audit_events``: it is append-only (its trigger refuses
TRUNCATE), so audit tests scope their assertions to the test's own tenant."""


def _reset_database() -> None:
    recreate_database(TEST_DB_URL)
    migrate()


@pytest.fixture(scope="session")
def database() -> Iterator[None]:
    _reset_database()
    yield
    get_engine().dispose()


@pytest.fixture
def clean_db(database: None) -> None:
    import sqlalchemy as sa

    with get_engine().begin() as conn:
        conn.execute(sa.text(f"truncate {TABLES} cascade"))


@dataclass(frozen=True)
class TenantKey:
    key: str
    tenant_id: str
    webhook_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant(name: str) -> TenantKey:
    with session_scope() as session:
        issued = issue_key(session=session, tenant_name=name)
        return TenantKey(issued.key, issued.tenant.id, issued.tenant.webhook_secret)


@pytest.fixture
def tenant(clean_db: None) -> TenantKey:
    return make_tenant("tenant-a")


@pytest.fixture
def other_tenant(clean_db: None) -> TenantKey:
    return make_tenant("tenant-b")


@pytest.fixture
def api(database: None) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from api.main import app

    with TestClient(app) as client:
        yield client


@pytest.fixture
def isolated_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """A broker database no worker listens on, empty, so a test can see what was queued."""
    url = ISOLATED_BROKER
    client = redis.Redis.from_url(url)
    client.flushdb()
    monkeypatch.setenv("PONDER_BROKER__URL", url)
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    yield client
    client.flushdb()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()


def queued_messages(client: redis.Redis) -> int:
    """Messages waiting in any queue (priority sub-queues included) of this broker db."""
    total = 0
    for key in client.scan_iter():
        if client.type(key) == b"list":
            total += int(client.llen(key))
    return total


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=SMTP_PORT).start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def worker(database: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real Celery worker process with the real in-process vLLM engine on CPU."""
    from ponder.cli.localrun import start_worker, stop

    redis.Redis.from_url(WORKER_BROKER).flushdb()
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = start_worker(
        {"PONDER_WORKER__METRICS_PORT": str(WORKER_METRICS_PORT)}, log, concurrency=16
    )
    deadline = time.monotonic() + 120
    while b"ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start; see {log_path}")
        time.sleep(0.3)
    yield log_path
    stop(proc)
    log.close()


def serve_vllm(
    model: str, name: str, log_path: Path, *, max_model_len: int, args: Sequence[str] = ()
) -> Iterator[str]:
    """A real vLLM OpenAI-compatible server of ``model`` served as ``name``, while the
    generator is open: its ``/v1`` base URL (a fixture's body: ``yield from``)."""
    import httpx

    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
         "--model", model, "--served-model-name", name,
         "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
         "--max-model-len", str(max_model_len), "--enforce-eager", *args,
         "--structured-outputs-config",
         json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})],
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"vLLM server did not start; see {log_path}")
        time.sleep(1)
    yield f"{base}/v1"
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM OpenAI-compatible server with the embedded model, served as ``smollm2``:
    its ``/v1`` base URL. One per session: it takes about a minute to start on CPU."""
    yield from serve_vllm(
        config.get_settings().model_path,
        "smollm2",
        tmp_path_factory.mktemp("vllm") / "server.log",
        max_model_len=2048,
        args=("--enable-prefix-caching", "--scheduling-policy", "priority"),
    )


def wait_for_status(job_id: str, statuses: set[str], timeout_s: float = 600) -> dict:
    from ponder.models import Job

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is not None and job.status in statuses:
                return job.model_dump()
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not reach {statuses} in {timeout_s}s")
