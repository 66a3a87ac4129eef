"""Fuzz every operation of the app's OpenAPI schema in-process (schemathesis over ASGI, the
real test database, a broker no worker reads): whatever is sent, no answer is a 5xx. With a
key on made-up ids, with a key on the tenant's own resources, and without a key."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from tasks.registry import TASKS
from tests.conftest import TenantKey
from tests.security.conftest import create_resources

# Hypothesis keeps caches under ./.hypothesis, written while tests are collected; not in the repo.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "ponder-hypothesis")
EXAMPLES = 25


@schemathesis.serializer("application/jsonl")
def _jsonl(ctx: Any, value: Any) -> dict[str, Any]:
    """The batch upload's raw JSONL body (a string in the schema) goes out as it is."""
    return {"data": value if isinstance(value, bytes) else str(value).encode()}


def app_schema() -> Any:
    from api.main import app

    config = SchemathesisConfig.from_dict(
        {
            "seed": 20260101,
            "generation": {
                "max-examples": EXAMPLES,
                "database": "none",
                "deterministic": True,
            },
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


schema = app_schema()
# Hypothesis rarely draws these on its own: half of the generated query strings and JSON bodies
# get one of them in place of one of their values.
HOSTILE_STRINGS = ["\x00", "a\x00b", "' OR '1'='1", "../../etc/passwd", "\u202e", "x" * 5000]
# Left to themselves, nearly all generated jobs name an unknown task (or strategy) and stop at
# the first check. Half of them here name a real task and keep only the free-form fields
# (document, metadata, ...), so that fuzzed text goes all the way to the database.
CHECKED_FIRST = ("strategy", "n", "params", "budget_tokens", "webhook_url", "webhook_endpoint_id")


def with_a_hostile_value(values: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    if not values:
        return st.just(values)
    hostile = st.tuples(st.sampled_from(sorted(values)), st.sampled_from(HOSTILE_STRINGS))
    return st.one_of(st.just(values), hostile.map(lambda kv: {**values, kv[0]: kv[1]}))


@schema.hook
def flatmap_query(ctx: Any, query: Any) -> st.SearchStrategy[Any]:
    return with_a_hostile_value(query) if isinstance(query, dict) else st.just(query)


@schema.hook
def flatmap_body(ctx: Any, body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict):
        return st.just(body)
    bodies = st.just(body)
    if "task" in body and "document" in body:
        free_form = {k: v for k, v in body.items() if k not in CHECKED_FIRST}
        real_task = st.sampled_from(sorted(TASKS)).map(lambda task: {**free_form, "task": task})
        bodies = st.one_of(bodies, real_task)
    return bodies.flatmap(with_a_hostile_value)


# Fixtures are set up once per operation, not per example: that is intended.
bounded = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@pytest.fixture(autouse=True)
def quiet(database: None, isolated_broker: Any, limits: Any, monkeypatch: Any) -> None:
    """Jobs go to a broker no worker reads; no rate limit, or long runs would read 429. A live
    stream of a job no worker runs would stay open until ``live.max_stream_s``: a short one
    lets each call return (the client resumes after such a close)."""
    monkeypatch.setenv("PONDER_LIVE__MAX_STREAM_S", "0.5")
    monkeypatch.setenv("PONDER_LIVE__POLL_S", "0.1")
    limits(tenant_rate_per_s=0)


@pytest.fixture
def own_ids(api: Any, tenant: TenantKey) -> dict[str, str]:
    return create_resources(api, tenant)


@schema.parametrize()
@bounded
def test_no_server_error_with_a_key(case: Any, tenant: TenantKey) -> None:
    case.call_and_validate(headers=tenant.headers, checks=[not_a_server_error])


@schema.include(path_regex=r"\{").parametrize()
@bounded
def test_no_server_error_on_the_tenants_own_resources(
    case: Any, tenant: TenantKey, own_ids: dict[str, str]
) -> None:
    case.path_parameters = {name: own_ids[name] for name in case.path_parameters}
    case.call_and_validate(headers=tenant.headers, checks=[not_a_server_error])


@schema.parametrize()
@bounded
def test_no_server_error_without_a_key(case: Any, clean_db: None) -> None:
    case.call_and_validate(checks=[not_a_server_error])
