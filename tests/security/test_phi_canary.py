"""No document text reaches a log, whatever fails. A canary string is put in the document (and
metadata) and sent through every write path that can fail, against a live API server whose
loggers all propagate at DEBUG (uvicorn's, SQLAlchemy's engine logger, ours); everything
logged (caplog) and everything written to the process's stdout/stderr (capfd) is searched."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ponder import config
from ponder.cli.devservers import free_port
from ponder.db import get_engine, session_scope
from ponder.models import Job
from tests.conftest import TenantKey

LOGGERS = ("", "sqlalchemy.engine", "sqlalchemy.pool", "uvicorn", "uvicorn.error",
           "uvicorn.access", "ponder", "api", "celery")  # fmt: skip


@pytest.fixture
def canary() -> str:
    return f"PHI-CANARY-{uuid.uuid4()}"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """Everything logged from here on, at every level, and everything the process printed."""
    for client in ("httpx", "httpcore"):  # this test's own client, which logs its URLs
        caplog.set_level(logging.WARNING, logger=client)
    for name in LOGGERS:  # last: set_level also sets the capturing handler's level
        caplog.set_level(logging.DEBUG, logger=name or None)
    return lambda: caplog.text + "".join(capfd.readouterr())


@pytest.fixture
def live_api(database: None) -> Iterator[str]:
    """The app under a real uvicorn server (in a thread), logging at debug through the root
    logger, so the server's own error and access logs are captured too."""
    import uvicorn

    from api.main import app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="debug", log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def job_body(canary: str, metadata: str) -> bytes:
    """A raw JSON job: json.dumps would refuse or rewrite the bad metadata."""
    return (
        '{"task": "medrec_extraction", "strategy": "single", '
        f'"document": "Aspirin 81 mg. {canary}", "metadata": {metadata}}}'
    ).encode()


def batch_body(canary: str, bad_line: bytes) -> bytes:
    good = [
        json.dumps({"custom_id": f"c{i}", "task": "medrec_extraction",
                    "document": f"Aspirin 81 mg. {canary}", "metadata": {"note": canary}})
        for i in range(3)
    ]  # fmt: skip
    return ("\n".join(good) + "\n").encode() + bad_line + b"\n"


def post(url: str, tenant: TenantKey, path: str, body: bytes, ctype: str) -> httpx.Response:
    headers = {**tenant.headers, "content-type": ctype}
    return httpx.post(url + path, content=body, headers=headers, timeout=30)


JSON, JSONL = "application/json", "application/jsonl"


@pytest.mark.parametrize(
    ("path", "ctype", "make_body"),
    [
        ("/v1/jobs", JSON, lambda c: job_body(c, f'{{"note": "{c}", "score": NaN}}')),
        ("/v1/jobs", JSON, lambda c: job_body(c, f'{{"note": "{c}", "score": 1e400}}')),
        ("/v1/jobs", JSON, lambda c: job_body(c, f'{{"note": "{c}", "\\ud800": 1}}')),
        (
            "/v1/batches",
            JSONL,
            lambda c: batch_body(
                c,
                (
                    '{"custom_id": "bad", "task": "medrec_extraction", "document": "x", '
                    f'"metadata": {{"note": "{c}", "v": NaN}}}}'
                ).encode(),
            ),
        ),
        (
            "/v1/batches",
            JSONL,
            lambda c: batch_body(
                c,
                (
                    '{"custom_id": "bad", "task": "medrec_extraction", '
                    f'"document": "{c} \\udc00"}}'
                ).encode(),
            ),
        ),
    ],  # fmt: skip
    ids=["nan-metadata", "1e400-metadata", "surrogate-key", "bad-batch-line", "surrogate-line"],
)
def test_a_refused_write_logs_no_document(
    live_api, tenant, isolated_broker, canary, logs, path, ctype, make_body
):
    response = post(live_api, tenant, path, make_body(canary), ctype)
    assert 400 <= response.status_code < 500, response.text
    assert canary not in response.text
    assert canary not in logs()


def test_a_write_while_the_database_is_down_logs_no_document(
    live_api, tenant, isolated_broker, canary, logs, monkeypatch
):
    body = job_body(canary, f'{{"note": "{canary}"}}')
    assert post(live_api, tenant, "/v1/jobs", body, JSON).status_code == 201  # key now cached
    monkeypatch.setenv("PONDER_DATABASE__URL", f"postgresql+psycopg://x@127.0.0.1:{free_port()}/x")
    config.get_settings.cache_clear()
    try:
        response = post(live_api, tenant, "/v1/jobs", body, JSON)
        batch = post(live_api, tenant, "/v1/batches", batch_body(canary, b""), JSONL)
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
    assert response.status_code >= 500 and batch.status_code >= 500
    assert canary not in logs()


def test_the_access_log_keeps_no_query_string(live_api, tenant, isolated_broker, canary, logs):
    line = json.dumps({"custom_id": "a", "task": "medrec_extraction", "document": "x"})
    httpx.post(
        f"{live_api}/v1/batches",
        params={"metadata": json.dumps({"note": canary})},
        content=line.encode(),
        headers={**tenant.headers, "content-type": JSONL},
        timeout=30,
    )
    text = logs()
    assert "/v1/batches?" in text, "the access line was logged"
    assert canary not in text


def test_a_database_error_logged_with_its_exception_carries_no_document(tenant, canary, logs):
    """Bypassing every validation: what PostgreSQL refuses, and says why quoting the data
    (its CONTEXT line), is logged without the data."""
    log = logging.getLogger("ponder.test")
    try:
        with session_scope() as session:
            session.add(
                Job(tenant_id=tenant.tenant_id, task="medrec_extraction", priority=5,
                    request_hash="x", config={}, document=f"Aspirin. {canary}",
                    metadata_={"note": canary, "score": float("nan")})
            )  # fmt: skip
    except Exception as exc:
        log.exception("insert failed: %s", exc)
    else:
        pytest.fail("PostgreSQL accepted NaN in jsonb")
    text = logs()
    assert "insert failed" in text and "redacted" in text
    assert canary not in text


def test_sql_logging_at_debug_shows_no_parameters_or_rows(
    api, tenant, isolated_broker, canary, logs
):
    body = {
        "task": "medrec_extraction",
        "document": f"Aspirin. {canary}",
        "metadata": {"n": canary},
    }
    job = api.post("/v1/jobs", json=body, headers=tenant.headers).json()
    assert api.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).status_code == 200
    with get_engine().connect() as conn:
        conn.exec_driver_sql("select document from jobs where id = %s", (job["id"],)).all()
    text = logs()
    assert "INSERT INTO jobs" in text, "the engine logger was on"
    assert canary not in text


def test_a_handler_added_after_configuration_gets_redacted_records(canary):
    """As Celery's worker does: it replaces the root logger's handlers after our setup."""
    from ponder.logs import configure_logging

    configure_logging()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    late = logging.getLogger(f"late.{uuid.uuid4().hex}")
    late.addHandler(handler)
    late.propagate = False
    error = RuntimeError(
        f"(psycopg.errors.X) bad\nDETAIL:  Key (k)=({canary}) already exists.\n"
        f'CONTEXT:  JSON data, line 1: {{"note": "{canary}\n'
        f"[SQL: INSERT INTO jobs (document) VALUES (%(document)s)]\n"
        f"[parameters: {{'document': '{canary}'}}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/9h9h)"
    )
    try:
        raise error
    except RuntimeError as exc:
        late.exception("write failed: %s", exc)
    assert "write failed" in stream.getvalue() and "INSERT INTO jobs" in stream.getvalue()
    assert canary not in stream.getvalue()


def test_a_run_whose_answer_cannot_be_stored_logs_no_document(
    api, tenant: TenantKey, isolated_broker, canary, logs: Callable[[], str]
):
    """The worker's path: a model answer holding a NUL, written through the trace."""
    from ponder.config import get_settings
    from ponder.jobs.runner import run_job
    from tests.ponder.strategies.medrec import ASPIRIN
    from tests.ponder.strategies.scripted import ScriptedEngine

    document = f"Aspirin 81 mg by mouth daily. {canary}"
    job = api.post(
        "/v1/jobs",
        json={"task": "medrec_extraction", "document": document, "strategy": "single"},
        headers=tenant.headers,
    ).json()
    answer = json.dumps({"medications": [{**ASPIRIN, "name": f"Aspirin\x00{canary}"}]})
    run_job(job_id=job["id"], engine=ScriptedEngine([answer]), settings=get_settings(), owner="t")
    text: Any = logs()
    assert job["id"] in text, "the run logged"
    assert canary not in text
