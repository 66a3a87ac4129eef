"""The Alembic migrations build the schema the models describe: a column added to a model
without its migration (or the other way round) fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import ponder.models  # noqa: F401 - registers the tables
from ponder.db import get_engine


def test_the_migrated_database_matches_the_models(database):
    with get_engine().connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
