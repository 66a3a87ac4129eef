"""The official ``openai`` client against the API served over real HTTP (uvicorn on
127.0.0.1), its ``base_url`` at ``/openai/v1`` and a tenant's Ponder key as its API key."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from ponder.cli.devservers import free_port
from ponder.db import get_engine
from tests.conftest import TenantKey


def wait_until(predicate: Callable[[], Any], *, timeout_s: float, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every_s)
    return value


@pytest.fixture(scope="session")
def server(database: None) -> Iterator[str]:
    """The API served over real HTTP, in a thread of the test process (so settings a test
    changes reach it)."""
    import uvicorn

    from api.main import app

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_until(lambda: srv.started, timeout_s=30)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def client_for(server: str, key: TenantKey) -> openai.OpenAI:
    # No retries: a test sees the first answer, and a 409 or 5xx is not hidden.
    return openai.OpenAI(base_url=f"{server}/openai/v1", api_key=key.key, max_retries=0)


@pytest.fixture
def client(server: str, tenant: TenantKey) -> Iterator[openai.OpenAI]:
    with client_for(server, tenant) as c:
        yield c


@pytest.fixture
def other_client(server: str, other_tenant: TenantKey) -> Iterator[openai.OpenAI]:
    with client_for(server, other_tenant) as c:
        yield c


def rows(table: str) -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
