"""Keyset pages for lists shown newest first (jobs, batches): a cursor is the (created_at, id)
of the last row of the previous page, so pages stay stable while rows are added."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col
from sqlmodel.sql.expression import SelectOfScalar

from ponder.errors import InvalidRequest
from ponder.models import AuditEvent, Batch, Job
from ponder.validation import check_value

Row = TypeVar("Row", Job, Batch, AuditEvent)


def encode_cursor(row: Job | Batch | AuditEvent) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        # A NUL would reach PostgreSQL as a parameter it refuses (a 500), not as a bad cursor.
        check_value("cursor", raw)
        created, row_id = raw.split("|", 1)
        return datetime.fromisoformat(created), row_id
    except (ValueError, UnicodeError) as exc:
        raise InvalidRequest("cursor is not valid: pass next_cursor from a previous page") from exc


def newest_first(
    session: Session,
    query: SelectOfScalar[Row],
    model: Any,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Row], str | None]:
    """One page of ``query`` (rows of ``model``), newest first, and the next page's cursor
    (None on the last page)."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(sa.tuple_(model.created_at, model.id) < sa.tuple_(created, row_id))
    query = query.order_by(col(model.created_at).desc(), col(model.id).desc()).limit(limit + 1)
    rows = list(session.exec(query).all())
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor
