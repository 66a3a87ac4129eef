"""Alembic environment: the URL and metadata come from ponder itself."""

from logging.config import fileConfig

from alembic import context
from sqlmodel import SQLModel

import ponder.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from ponder.db import get_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    with get_engine().connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
