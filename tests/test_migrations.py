"""Alembic migrations: the baseline is today's tables exactly; a pre-migration database is
upgraded with its rows intact; the service creates an empty database and refuses an
out-of-date or newer one.  On SQLite and on PostgreSQL (each test in a schema of its own)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import make_url

from cds_service import create_app, migrations
from cds_service.cli import cli
from cds_service.config import ConfigError
from cds_service.storage import Store, feedback, metadata

POSTGRES_ENV = "HER2CDS_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    """An empty database: a new SQLite file, or a new PostgreSQL schema first on the search path."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.fail(f"{POSTGRES_ENV} is not set (or deselect with -m 'not postgres').")
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE}),
                                    metadata)
    finally:
        engine.dispose()


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_migrations_create_exactly_the_storage_tables(empty_url):
    result = _run("db", "upgrade", "--database-url", empty_url)
    assert result.exit_code == 0, result.output
    assert "upgraded from none to" in result.output
    assert _diff(empty_url) == []  # autogenerate finds nothing between migrations and storage.py
    engine = create_engine(empty_url)
    assert set(inspect(engine).get_table_names()) == migrations.BASELINE_TABLES | {migrations.VERSION_TABLE}
    assert migrations.current(engine) == migrations.head()
    engine.dispose()
    again = _run("db", "upgrade", "--database-url", empty_url)
    assert again.exit_code == 0 and "already at revision" in again.output


def test_an_empty_database_is_created_at_start_up(empty_url):
    store = Store(empty_url)
    try:
        assert migrations.current(store.engine) == migrations.head()
        assert store.record_feedback("s", {"card": "c1", "outcome": "overridden",
                                           "outcomeTimestamp": "2026-01-01T00:00:00Z"})
    finally:
        store.dispose()
    assert _diff(empty_url) == []


def _previous_release_schema(engine) -> None:
    migrations.upgrade(engine, migrations.BASELINE)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))


def test_previous_release_database_is_refused_then_upgraded_with_its_rows(empty_url):
    # The previous release created its tables with create_all, and recorded no revision:
    # exactly the baseline's tables (later migrations add to them), without a version table.
    engine = create_engine(empty_url)
    _previous_release_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(feedback).values(
            service_id="her2-mbc-order-sign", card_uuid="old-card", outcome="accepted",
            outcome_timestamp="2025-12-31T23:00:00Z", accepted_suggestions="[]",
            received_at=dt.datetime(2025, 12, 31, tzinfo=dt.timezone.utc)))
    assert migrations.current(engine) is None

    with pytest.raises(ConfigError, match="her2-cds db upgrade"):
        Store(empty_url)
    status = _run("db", "current", "--database-url", empty_url)
    assert status.exit_code == 1 and "database: none" in status.output

    result = _run("db", "upgrade", "--database-url", empty_url)
    assert result.exit_code == 0, result.output
    assert migrations.current(engine) == migrations.head()
    with engine.connect() as conn:
        assert conn.execute(select(feedback.c.card_uuid)).scalars().all() == ["old-card"]
    engine.dispose()
    assert _diff(empty_url) == []
    Store(empty_url).dispose()  # starts now


@pytest.mark.integration  # starts a real her2-cds serve
def test_serve_refuses_an_out_of_date_database_with_one_line(empty_url, tmp_path):
    engine = create_engine(empty_url)
    metadata.create_all(engine)
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HER2CDS_")}
    env.update(HER2CDS_DATABASE_URL=empty_url, HER2CDS_AUTH="disabled", HER2CDS_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot start" in done.stderr and "her2-cds db upgrade" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_database_from_a_newer_release_is_refused(empty_url):
    Store(empty_url).dispose()
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'f00d'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="newer than this release"):
        create_app(auth="disabled", database_url=empty_url)


def test_a_database_with_only_some_tables_is_not_adopted(empty_url):
    engine = create_engine(empty_url)
    metadata.tables["feedback"].create(engine)
    engine.dispose()
    result = _run("db", "upgrade", "--database-url", empty_url)
    assert result.exit_code == 1 and "not created by her2-cds" in result.stderr
