"""Idempotent creation, shared by job and batch submission: an ``Idempotency-Key`` sent again
with the same request returns what the first request created; with a different request, a
409 naming the conflict. Keys are per tenant (the caller's lookup is tenant-scoped)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel.sql.expression import SelectOfScalar

from ponder.errors import Conflict
from ponder.models import Batch, Job

Keyed = TypeVar("Keyed", Job, Batch)


def create_once(
    *,
    session: Session,
    key: str | None,
    fingerprint: str,
    same_key: SelectOfScalar[Keyed],
    create: Callable[[], Keyed],
    what: str,
) -> tuple[Keyed, bool]:
    """Returns (row, created). ``create`` adds the new row to the session; it is stamped with
    the key and the request's ``fingerprint``. ``same_key`` finds the tenant's row with this
    key; ``what`` names the request in the 409 ("a different {what}")."""
    if not key:
        return _stamped(create(), None, fingerprint), True
    existing = session.exec(same_key).first()
    if existing is not None:
        return _same_request(existing, fingerprint, what), False
    try:
        with session.begin_nested():  # a concurrent twin with the same key loses cleanly
            row = _stamped(create(), key, fingerprint)
    except IntegrityError:
        existing = session.exec(same_key).first()
        if existing is None:
            raise
        return _same_request(existing, fingerprint, what), False
    return row, True


def _stamped(row: Keyed, key: str | None, fingerprint: str) -> Keyed:
    row.idempotency_key, row.request_hash = key, fingerprint
    return row


def _same_request(existing: Keyed, fingerprint: str, what: str) -> Keyed:
    if existing.request_hash != fingerprint:
        raise Conflict(f"Idempotency-Key was already used for a different {what}; use a new key")
    return existing
