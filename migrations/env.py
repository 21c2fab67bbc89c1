"""Alembic environment: the only way the schema changes."""
from __future__ import annotations

from dataclasses import replace

from alembic import context
from sqlalchemy import pool

from engine import models  # registers every table on Base.metadata
from engine.db import Base, DatabaseLimits, make_engine
from engine.settings import default_database_url

config = context.config
target_metadata = Base.metadata


def render_item(type_, obj, autogen_context):
    """Migrations never import our models: an instant column is rendered as plain DateTime."""
    if type_ == "type" and isinstance(obj, models.UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or default_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # An index built on a province's table may run for minutes, and a data migration may
    # compute long between two statements: no statement or idle limit here, the lock limit
    # kept (a migration must not queue for ever behind a stuck transaction).
    limits = replace(DatabaseLimits.from_environment(), statement_timeout=0, idle_in_transaction_timeout=0)
    engine = make_engine(config.get_main_option("sqlalchemy.url") or default_database_url(), limits=limits)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
