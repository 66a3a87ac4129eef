"""Listing batches: a page's summaries (counts per state) come from one grouped query, so the
statements a page costs do not grow with its size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from ponder.db import get_engine
from ponder.models import JobStatus
from tests.api.test_batches import end_item, item, item_ids, submit
from tests.conftest import TenantKey


@contextmanager
def counted_statements() -> Iterator[list[str]]:
    """The SQL statements sent on the engine's connections while the block runs."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = get_engine()
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def list_page(api: Any, tenant: TenantKey, limit: int) -> tuple[list[dict[str, Any]], int]:
    with counted_statements() as statements:
        response = api.get("/v1/batches", params={"limit": limit}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"], len(statements)


def test_a_page_of_batches_costs_the_same_statements_whatever_its_size(
    api: Any, tenant: TenantKey, isolated_broker: Any
) -> None:
    for i in range(6):
        assert submit(api, tenant, [item(i), item(i + 100)]).status_code == 201
    list_page(api, tenant, 1)  # the key is authenticated and cached once, before counting

    small, small_cost = list_page(api, tenant, 2)
    large, large_cost = list_page(api, tenant, 6)

    assert (len(small), len(large)) == (2, 6)
    assert large_cost == small_cost


def test_each_listed_batch_has_its_own_counts(
    api: Any, tenant: TenantKey, isolated_broker: Any
) -> None:
    one = submit(api, tenant, [item(1)]).json()["id"]
    three = submit(api, tenant, [item(1), item(2), item(3)]).json()["id"]
    end_item(item_ids(three)[0], JobStatus.failed, error="engine down")

    listed, _ = list_page(api, tenant, 10)

    by_id = {b["id"]: b for b in listed}
    assert (by_id[one]["total"], by_id[one]["counts"]["queued"]) == (1, 1)
    assert by_id[three]["total"] == 3
    assert (by_id[three]["counts"]["failed"], by_id[three]["counts"]["queued"]) == (1, 2)
    assert by_id[three]["started_at"] is not None and by_id[one]["started_at"] is None
