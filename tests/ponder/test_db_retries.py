"""``with_retries``: a transaction is run again while PostgreSQL is unreachable, and only
then; the retries say so, so the work can look for its own landed write."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from ponder.cli.devservers import free_port
from ponder.db import DatabaseUnavailable, with_retries


def unreachable() -> sa.Engine:
    return sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")


def test_a_transaction_is_retried_until_the_database_answers():
    dead = unreachable()
    calls: list[bool] = []

    def work(retrying: bool) -> str:
        calls.append(retrying)
        if len(calls) < 3:
            with dead.connect():  # a real refused connection
                pass
        return "written"

    assert with_retries(work, what="test", retry_for_s=30) == "written"
    assert calls == [False, True, True]


def test_an_unreachable_database_ends_in_database_unavailable_after_the_window():
    dead = unreachable()

    def work(retrying: bool) -> None:
        with dead.connect():
            pass

    with pytest.raises(DatabaseUnavailable) as raised:
        with_retries(work, what="job x: save step", retry_for_s=1)
    assert isinstance(raised.value.__cause__, OperationalError)
    assert "job x: save step" in str(raised.value)


def test_a_statement_error_is_not_retried():
    calls: list[bool] = []

    def work(retrying: bool) -> None:
        calls.append(retrying)
        raise IntegrityError("insert", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        with_retries(work, what="test", retry_for_s=30)
    assert calls == [False]
