"""Database engine and ``session_scope()``: the only place that commits.

Work to do after a commit (sending a Celery message) is registered with ``after_commit`` and
runs only once the transaction is durable; on rollback it is dropped, so a worker never
receives a job id that PostgreSQL does not have.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlmodel import Session

from ponder.config import get_settings

T = TypeVar("T")

logger = logging.getLogger(__name__)

_AFTER_COMMIT = "ponder_after_commit"


@functools.lru_cache(maxsize=4)
def _engine_for(url: str, pool_size: int) -> Engine:
    # Overflow covers a worker's many job threads, each holding a connection only briefly.
    # hide_parameters: a statement's error (and SQL echo) never carries its parameters, which
    # hold documents and metadata; ponder.logs scrubs what reaches a log as well.
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=3 * pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )


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


class DatabaseUnavailable(Exception):
    """PostgreSQL stayed unreachable for ``database.retry_for_s``; the write did not happen."""


def is_transient(exc: BaseException) -> bool:
    """A lost or refused connection (a restart, a failover), not a bad statement."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def with_retries(work: Callable[[bool], T], *, what: str, retry_for_s: float | None = None) -> T:
    """Run ``work(retrying)`` (one whole transaction) again while PostgreSQL is unreachable.

    ``retrying`` is True from the second try on: a commit whose acknowledgement was lost may
    have landed, so the work checks for its own earlier write before writing again. After
    ``retry_for_s`` the last error is raised as ``DatabaseUnavailable``.
    """
    limit = get_settings().database.retry_for_s if retry_for_s is None else retry_for_s
    deadline = time.monotonic() + limit
    delay = 0.2
    retrying = False
    while True:
        try:
            return work(retrying)
        except Exception as exc:
            if not is_transient(exc):
                raise
            if time.monotonic() + delay > deadline:
                message = f"{what}: PostgreSQL unreachable for {limit:.0f}s"
                raise DatabaseUnavailable(message) from exc
            # The class only: the message can quote parameters.
            logger.warning("%s: database unreachable (%s); retrying in %.1fs",
                           what, type(exc).__name__, delay)  # fmt: skip
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            retrying = True
