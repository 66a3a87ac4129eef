"""The access audit: who (which key, from which address) read or changed which job or batch,
and when. Rows are only ever inserted (a trigger refuses UPDATE, DELETE and TRUNCATE); they
hold ids, never content. Written in the transaction of the access itself, so a refused or
failed request leaves no row and a recorded access did happen."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from ponder.models import AuditEvent, new_id, utcnow
from ponder.pages import newest_first
from ponder.scoping import readable_audit_events


@dataclass(frozen=True)
class Actor:
    """Who acts: the tenant, the key (None for the system) and the client's address."""

    tenant_id: str
    key_id: str | None
    address: str | None


SYSTEM_RETENTION = "retention"


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    job_id: str | None = None,
    batch_id: str | None = None,
    target_id: str | None = None,
) -> None:
    session.add(
        AuditEvent(
            tenant_id=actor.tenant_id,
            key_id=actor.key_id,
            action=action,
            job_id=job_id,
            batch_id=batch_id,
            target_id=target_id,
            address=actor.address,
        )
    )


def record_jobs(session: Session, actor: Actor, action: str, job_ids: Iterable[str]) -> None:
    """One row per job in one statement: a page of a list is an access to every job on it."""
    _record_each(session, actor, action, "job_id", job_ids)


def record_batches(session: Session, actor: Actor, action: str, batch_ids: Iterable[str]) -> None:
    """One row per batch in one statement, like ``record_jobs``."""
    _record_each(session, actor, action, "batch_id", batch_ids)


def _record_each(
    session: Session, actor: Actor, action: str, column: str, ids: Iterable[str]
) -> None:
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "tenant_id": actor.tenant_id,
            "key_id": actor.key_id,
            "action": action,
            column: row_id,
            "address": actor.address,
            "created_at": now,
        }
        for row_id in ids
    ]
    if rows:
        session.execute(sa.insert(AuditEvent), rows)


def list_events(
    *,
    session: Session,
    tenant_id: str,
    limit: int,
    cursor: str | None,
    job_id: str | None = None,
    batch_id: str | None = None,
    action: str | None = None,
) -> tuple[list[AuditEvent], str | None]:
    """The tenant's events, newest first, optionally for one job, batch or action."""
    query = readable_audit_events(tenant_id)
    if job_id:
        query = query.where(AuditEvent.job_id == job_id)
    if batch_id:
        query = query.where(AuditEvent.batch_id == batch_id)
    if action:
        query = query.where(AuditEvent.action == action)
    return newest_first(session, query, AuditEvent, limit=limit, cursor=cursor)
