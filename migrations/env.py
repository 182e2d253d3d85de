"""Alembic environment.

The connection comes from debate.store (cfg.attributes['connection'], already holding the
migration lock) or its engine (cfg.attributes['engine']); for the alembic command line it
comes from sqlalchemy.url / $DEBATE_DB."""

from alembic import context
from sqlalchemy import Connection, create_engine

from debate.store.db import resolve_url
from debate.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or resolve_url(None))
    with engine.connect() as connection:
        run_on(connection)
        connection.commit()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or resolve_url(None),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
