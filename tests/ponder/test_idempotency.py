"""Idempotent creation (``ponder.idempotency.create_once``), the rule job and batch submission
share: the same key and request give back the first row; the same key with another request
is a 409; a twin that wins the race to insert is returned rather than a unique-key error."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col

from ponder.db import session_scope
from ponder.errors import Conflict
from ponder.idempotency import create_once
from ponder.models import Batch
from ponder.scoping import readable_batches
from tests.conftest import TenantKey


def submit(
    session: Session, tenant_id: str, key: str | None, fingerprint: str, before_insert=None
) -> tuple[Batch, bool]:
    def add_batch() -> Batch:
        if before_insert is not None:
            before_insert()
        batch = Batch(tenant_id=tenant_id)
        session.add(batch)
        return batch

    return create_once(
        session=session,
        key=key,
        fingerprint=fingerprint,
        same_key=readable_batches(tenant_id).where(col(Batch.idempotency_key) == key),
        create=add_batch,
        what="batch",
    )


def test_same_key_and_request_return_the_first_row(tenant: TenantKey) -> None:
    with session_scope() as session:
        first, created = submit(session, tenant.tenant_id, "k", "hash-1")
        assert created and (first.idempotency_key, first.request_hash) == ("k", "hash-1")
    with session_scope() as session:
        again, created = submit(session, tenant.tenant_id, "k", "hash-1")
        assert not created and again.id == first.id


def test_same_key_with_another_request_is_a_conflict_naming_it(tenant: TenantKey) -> None:
    with session_scope() as session:
        submit(session, tenant.tenant_id, "k", "hash-1")
    with session_scope() as session, pytest.raises(Conflict, match="for a different batch"):
        submit(session, tenant.tenant_id, "k", "hash-2")


def test_without_a_key_every_request_creates(tenant: TenantKey) -> None:
    with session_scope() as session:
        a, a_created = submit(session, tenant.tenant_id, None, "hash-1")
        b, b_created = submit(session, tenant.tenant_id, None, "hash-1")
        assert a_created and b_created and a.id != b.id
        assert a.request_hash == "hash-1" and a.idempotency_key is None


def test_keys_are_per_tenant(tenant: TenantKey, other_tenant: TenantKey) -> None:
    with session_scope() as session:
        mine, _ = submit(session, tenant.tenant_id, "k", "hash-1")
        theirs, created = submit(session, other_tenant.tenant_id, "k", "hash-2")
        assert created and theirs.id != mine.id


def test_a_twin_that_inserted_first_is_returned(tenant: TenantKey) -> None:
    twin_ids: list[str] = []

    def twin_commits_first() -> None:
        # Another request with the same key commits between this one's lookup and its insert.
        with session_scope() as other:
            twin, _ = submit(other, tenant.tenant_id, "k", "hash-1")
            twin_ids.append(twin.id)

    with session_scope() as session:
        found, created = submit(session, tenant.tenant_id, "k", "hash-1", twin_commits_first)
        assert not created and found.id == twin_ids[0]
