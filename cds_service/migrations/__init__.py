"""Database schema migrations (Alembic), shipped inside the package.

Why Alembic: the tables in ``storage/tables.py`` live in operators' SQLite files and
PostgreSQL databases, so a schema change must be an ordered, recorded,
repeatable step, not ``create_all`` (which never alters an existing table).
The scripts live here, beside the code, and are run through a
programmatically built ``Config``: no ``alembic.ini`` is needed in the
working directory.

Policy (README "Migrations"):

* an **empty** database is created by running the migrations at start-up
  (the first run just works);
* a database **at the newest revision** is used as it is;
* a database **behind** it (including one created before migrations
  existed, by ``create_all``) makes the service refuse to start with one
  line saying to run ``her2-cds db upgrade``: changing a shared production
  schema is an operator's decision, taken once, not a side effect of
  whichever instance restarts first;
* a database **ahead** of this code (a newer release migrated it) is
  refused too, rather than written to by code that does not know its tables.

``her2-cds db upgrade`` adopts a pre-migration database (all baseline tables
present, no revision record) by stamping the baseline, then upgrades.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from ..config import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent
BASELINE = "0001"
#: The tables of the release before migrations (``create_all`` of storage.metadata then).
BASELINE_TABLES = frozenset({"feedback", "issued_cards", "jwt_replay", "audit", "smart_session"})
#: Named for the service, so a database shared with another Alembic-managed application
#: keeps the two revision records apart.
VERSION_TABLE = "her2cds_alembic_version"


class SchemaError(ConfigError):
    """The database schema is not the one this code needs; the message says what to run.

    A ``ConfigError``: the configured database cannot be used as it is, so
    ``serve`` reports it as one "cannot start" line, like a bad setting."""


def config(engine: Engine) -> Config:
    """An Alembic Config for this package's scripts, bound to ``engine`` (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS_DIR))


def head() -> str:
    """The newest revision this code knows."""
    return _script().get_current_head()


def current(engine: Engine) -> str | None:
    """The database's revision (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate to ``revision``; returns (revision before, revision after).

    A database created by the pre-migration release (every baseline table,
    no version table) is stamped at the baseline first: its tables are
    exactly what the baseline migration creates (tests/test_migrations.py).
    """
    before = current(engine)
    tables = _tables(engine)
    cfg = config(engine)
    if before is None and tables & BASELINE_TABLES:
        missing = BASELINE_TABLES - tables
        if missing:
            raise SchemaError(f"the database has some of the service's tables but not {sorted(missing)}, "
                              "and no migration record; it was not created by her2-cds: fix it by hand")
        command.stamp(cfg, BASELINE)
    command.upgrade(cfg, revision)
    return before, current(engine)


def ensure_schema(engine: Engine) -> None:
    """At start-up: create an empty database, accept one at head, refuse any other (see the module doc)."""
    revision = current(engine)
    newest = head()
    if revision == newest:
        return
    if revision is None and not (_tables(engine) & BASELINE_TABLES):
        upgrade(engine)
        return
    known = {s.revision for s in _script().walk_revisions()}
    url = engine.url.render_as_string(hide_password=True)
    if revision is not None and revision not in known:
        raise SchemaError(f"database {url} is at schema revision {revision}, newer than this release "
                          f"knows (newest {newest}): run the release that migrated it")
    raise SchemaError(f"database {url} has an out-of-date schema (revision {revision or 'none, pre-migration'}, "
                      f"needs {newest}): run `her2-cds db upgrade` first")
