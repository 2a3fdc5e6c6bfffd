"""Alembic environment: run the migrations on the engine the caller put in ``config.attributes``.

No ``alembic.ini``: ``cds_service.migrations.config(engine)`` builds the
Config.  For the ``alembic`` command line (writing a new revision), set
``HER2CDS_DATABASE_URL`` and use ``-c`` with an ini whose
``script_location`` is this folder, or call ``alembic.command`` with
``migrations.config(engine)``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from cds_service.migrations import VERSION_TABLE
from cds_service.storage import metadata

config = context.config


def _engine():
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    from cds_service.config import from_env
    return create_engine(from_env().resolved_database_url())


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            # Instances starting together on one empty database take turns: the
            # second waits here, then finds the schema at head and does nothing.
            connection.execute(text("SELECT pg_advisory_lock(472637001)"))
            connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                              render_as_batch=connection.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if postgres:
                connection.execute(text("SELECT pg_advisory_unlock(472637001)"))
                connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against the database")
run_migrations_online()
