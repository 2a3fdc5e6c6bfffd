"""``her2-cds db``: the database schema (Alembic migrations shipped in the package).

Why a command: the service creates an empty database itself but refuses to
start on an out-of-date one (``cds_service/migrations``), so upgrading a
shared production schema is one explicit step the operator runs once per
release, before starting the new version.
"""

from __future__ import annotations

import sys

import click
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from .. import migrations
from ..config import from_env

_URL_HELP = "Database URL (default: HER2CDS_DATABASE_URL, else the SQLite file in the data directory)."


def _engine(database_url: str | None):
    return create_engine(database_url or from_env().resolved_database_url())


@click.group("db")
def command() -> None:
    """Database schema: show the revision, upgrade."""


@command.command("upgrade")
@click.option("--database-url", default=None, help=_URL_HELP)
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(database_url: str | None, revision: str) -> None:
    """Create or upgrade the schema (adopts a database made before migrations existed)."""
    engine = _engine(database_url)
    try:
        before, after = migrations.upgrade(engine, revision)
    except (SQLAlchemyError, migrations.SchemaError) as exc:
        click.echo(f"her2-cds db upgrade: {exc}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"schema already at revision {after}")
    else:
        click.echo(f"schema upgraded from {before or 'none'} to {after}")


@command.command("current")
@click.option("--database-url", default=None, help=_URL_HELP)
def current(database_url: str | None) -> None:
    """Print the database's revision and this release's newest; exit 1 when they differ."""
    engine = _engine(database_url)
    try:
        revision = migrations.current(engine)
    except SQLAlchemyError as exc:
        click.echo(f"her2-cds db current: {exc}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()
    head = migrations.head()
    click.echo(f"database: {revision or 'none'}\nthis release: {head}")
    if revision != head:
        sys.exit(1)
