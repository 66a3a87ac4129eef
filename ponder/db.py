"""Database engine and ``session_scope()``: the only place that commits.

Work to do after a commit (sending a Celery message) is registered with ``after_commit`` and
runs only once the transaction is durable; on rollback it is dropped, so a worker never
receives a job id that PostgreSQL does not have.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlmodel import Session

from ponder.config import get_settings

logger = logging.getLogger(__name__)

_AFTER_COMMIT = "ponder_after_commit"


@functools.lru_cache(maxsize=4)
def _engine_for(url: str, pool_size: int) -> Engine:
    # Overflow covers a worker's many job threads, each holding a connection only briefly.
    return create_engine(url, pool_size=pool_size, max_overflow=3 * pool_size, pool_pre_ping=True)


def get_engine() -> Engine:
    settings = get_settings()
    return _engine_for(settings.database.url, settings.database.pool_size)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def run_after_commit(session: Session) -> None:
    callbacks = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The row is committed; the reconciler re-sends what did not reach the broker.
            logger.exception("post-commit callback failed; the reconciler will retry it")


def discard_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


@contextmanager
def session_scope() -> Iterator[Session]:
    session = Session(get_engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        discard_after_commit(session)
        raise
    finally:
        session.close()
    run_after_commit(session)
