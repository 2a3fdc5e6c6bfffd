"""Database faults (issue 13, items 4 and 6): visible to readiness, survivable, quiet in the log.

The attack run made the SQLite file read-only and restarted the service,
filled the disk, and restarted PostgreSQL.  ``/readyz`` said "database ok"
while every call got 503, feedback got 500, and only a restart brought the
service back.  Here each fault is made the way the service meets it:

- *read-only SQLite*: connections opened while the fault is on get
  ``PRAGMA query_only``, which fails writes exactly like a file SQLite had to
  open read-only ("attempt to write a readonly database"), and like that
  file's connections they stay read-only when the fault clears.  (``chmod``
  would not do: the tests run as root, who may write any file.)
- *full disk*: ``PRAGMA max_page_count`` caps the file at its current size,
  so SQLite answers "database or disk is full" as soon as a write needs a
  new page; ``os.statvfs`` reports almost no free space.
- *PostgreSQL down and back*: the service reaches PostgreSQL through a TCP
  forwarder the test stops (connections cut, port refused) and restarts.
- *read-only PostgreSQL* (a standby after a failover):
  ``default_transaction_read_only`` on the test database.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
import sqlite3
import threading
import uuid
from collections import namedtuple
from pathlib import Path

import pytest
from sqlalchemy import event, make_url, text
from sqlalchemy.pool import Pool

from cds_service import create_app
from cds_service import storage
from cds_service.auth.jwt_tokens import mint_token
from cds_service.logs import JsonFormatter

from conftest import issue_card
from trusted_client import ISS, KID, issuer_file, signing_key  # noqa: F401 (fixtures)
from store_rows import feedback_rows, audit_rows

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "her2-mbc-patient-view"
HOOK_URL = f"/cds-services/{SERVICE}"
FEEDBACK_URL = f"/cds-services/{SERVICE}/feedback"
REQUEST = json.loads((ROOT / "fixtures" / "requests" / "p01-de-novo-thp-patient-view.json").read_text())


def call_hook(client, pem, body=None):
    token = mint_token(pem, KID, ISS, f"http://localhost{HOOK_URL}")
    return client.post(HOOK_URL, json=body or REQUEST, headers={"Authorization": f"Bearer {token}"})


def post_feedback(client, pem, card="card-1", comment="discussed"):
    token = mint_token(pem, KID, ISS, f"http://localhost{FEEDBACK_URL}")
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T08:01:00Z",
            "overrideReason": {"reason": {"code": "patient-declined", "display": "Patient declined"},
                               "userComment": comment}}
    return client.post(FEEDBACK_URL, json={"feedback": [item]}, headers={"Authorization": f"Bearer {token}"})


def assert_retry_later(resp):
    """503, a JSON OperationOutcome, and a Retry-After the client can act on."""
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.get_json()["resourceType"] == "OperationOutcome"
    assert int(resp.headers["Retry-After"]) > 0


def readiness(client):
    resp = client.get("/readyz")
    return resp.status_code, resp.get_json()["checks"]["database"]


# -- SQLite: read-only file -----------------------------------------------------------------------

@pytest.fixture
def sqlite_fault():
    """Toggles faults on every SQLite connection opened while they are on (see the module docstring)."""
    fault = {"read_only": False, "max_pages": False}

    def on_connect(dbapi_conn, _record):
        if not isinstance(dbapi_conn, sqlite3.Connection):
            return
        if fault["read_only"]:
            dbapi_conn.execute("PRAGMA query_only=ON")
        if fault["max_pages"]:
            pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
            dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    event.listen(Pool, "connect", on_connect)
    yield fault
    event.remove(Pool, "connect", on_connect)


def test_read_only_sqlite_after_a_restart_is_not_ready_and_recovers_without_a_restart(
        tmp_path, sqlite_fault, issuer_file, signing_key):
    pem = signing_key[0]
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    first = create_app(readyz_probe_cache_seconds=0, auth="required", database_url=url, trusted_issuers=issuer_file)
    assert call_hook(first.test_client(), pem).status_code == 200
    issue_card(first.extensions["her2cds.store"], "card-1", SERVICE, iss=ISS)
    first.extensions["her2cds.store"].dispose()

    sqlite_fault["read_only"] = True
    app = create_app(readyz_probe_cache_seconds=0, auth="required", database_url=url, trusted_issuers=issuer_file)  # the restart
    client = app.test_client()
    status, database = readiness(client)
    assert status == 503 and database.startswith("unavailable"), database
    assert_retry_later(call_hook(client, pem))  # the replay cache cannot be written: refused, visibly
    assert_retry_later(post_feedback(client, pem))

    sqlite_fault["read_only"] = False  # the file is writable again; the service is not restarted
    assert call_hook(client, pem).status_code == 200
    assert post_feedback(client, pem).status_code == 200
    assert readiness(client) == (200, "ok")
    store = app.extensions["her2cds.store"]
    assert [r["status"] for r in audit_rows(store)] == [200, 200]  # the refused calls left no audit row
    assert [r["user_comment"] for r in feedback_rows(store)] == ["discussed"]


def test_readiness_recovers_with_the_probe_alone(tmp_path, sqlite_fault, issuer_file):
    """No traffic needed: once the remembered failure expires, a good probe makes the instance ready."""
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    create_app(readyz_probe_cache_seconds=0, auth="required", database_url=url, trusted_issuers=issuer_file).extensions["her2cds.store"].dispose()
    sqlite_fault["read_only"] = True
    app = create_app(readyz_probe_cache_seconds=0, auth="required", database_url=url, trusted_issuers=issuer_file)
    store = app.extensions["her2cds.store"]
    with pytest.raises(Exception):
        store.remember_jti(ISS, "j1", 2**31, 0)
    assert readiness(app.test_client())[0] == 503
    sqlite_fault["read_only"] = False
    status, database = readiness(app.test_client())
    assert status == 503 and "a write failed" in database  # a real write failed and none succeeded since
    failed_at, error = store._write_failed
    store._write_failed = (failed_at - storage.WRITE_FAILURE_MEMORY, error)  # as if that was long ago
    assert readiness(app.test_client()) == (200, "ok")


# -- SQLite: full disk -----------------------------------------------------------------------------

def test_full_disk_feedback_is_503_with_retry_after_and_readiness_sees_it(
        tmp_path, sqlite_fault, issuer_file, signing_key):
    pem = signing_key[0]
    url = f"sqlite:///{tmp_path / 'full.db'}"
    store = create_app(readyz_probe_cache_seconds=0, auth="required", database_url=url, trusted_issuers=issuer_file).extensions["her2cds.store"]
    for card in ("card-1", "card-2"):
        issue_card(store, card, SERVICE, iss=ISS)
    store.dispose()
    sqlite_fault["max_pages"] = True
    app = create_app(readyz_probe_cache_seconds=0, auth="required", database_url=url, trusted_issuers=issuer_file)
    client = app.test_client()
    assert readiness(client) == (200, "ok")  # small writes still fit in the pages the file has

    # A comment that needs new pages: SQLite answers "database or disk is full".
    assert_retry_later(post_feedback(client, pem, comment="x" * 3900 + "\n" + "y" * 90))
    status, database = readiness(client)
    assert status == 503 and "a write failed" in database, database

    sqlite_fault["max_pages"] = False  # space freed; the pool reconnects by itself
    assert post_feedback(client, pem, card="card-2", comment="x" * 3900).status_code == 200
    assert readiness(client) == (200, "ok")


def test_readiness_fails_when_the_disk_beside_the_sqlite_file_is_full(migrated_db_url, monkeypatch):
    client = create_app(readyz_probe_cache_seconds=0, auth="disabled", database_url=migrated_db_url).test_client()
    real = os.statvfs
    Fs = namedtuple("Fs", "f_bavail f_bfree f_frsize")
    monkeypatch.setattr(os, "statvfs", lambda path: Fs(3, 3, 4096))
    status, database = readiness(client)
    assert status == 503 and "disk nearly full" in database
    monkeypatch.setattr(os, "statvfs", real)
    assert readiness(client) == (200, "ok")


# -- no SQL parameter values in the log -------------------------------------------------------------

class Captured(logging.Handler):
    """Every her2cds log line, formatted as the service writes it (tracebacks included)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[tuple[int, str]] = []

    def emit(self, record):
        self.lines.append((record.levelno, self.format(record)))


@pytest.fixture
def captured_log():
    handler = Captured()
    logger = logging.getLogger("her2cds")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_failing_writes_log_no_patient_id_hook_instance_or_comment(tmp_path, sqlite_fault, captured_log):
    url = f"sqlite:///{tmp_path / 'quiet.db'}"
    store = create_app(readyz_probe_cache_seconds=0, auth="disabled", database_url=url).extensions["her2cds.store"]
    issue_card(store, "card-SECRET-9", SERVICE)
    store.dispose()
    sqlite_fault["read_only"] = True
    client = create_app(readyz_probe_cache_seconds=0, auth="disabled", database_url=url).test_client()

    body = copy.deepcopy(REQUEST)
    body["hookInstance"] = "hook-instance-SECRET-7c1f"
    body["context"]["patientId"] = "patient-SECRET-42"
    body["prefetch"]["patient"]["id"] = "patient-SECRET-42"
    resp = client.post(HOOK_URL, json=body)
    assert resp.status_code == 200  # authentication is off: the cards still go out, the lost audit is logged
    feedback = {"feedback": [{"card": "card-SECRET-9", "outcome": "overridden",
                              "outcomeTimestamp": "2026-11-21T08:01:00Z",
                              "overrideReason": {"userComment": "comment-SECRET-about-the-patient"}}]}
    assert_retry_later(client.post(FEEDBACK_URL, json=feedback))

    errors = [line for level, line in captured_log.lines if level >= logging.WARNING]
    assert any("audit" in line for line in errors), errors  # the lost audit row is not silent
    assert any("OperationalError" in line for line in errors), errors
    for secret in ("patient-SECRET-42", "hook-instance-SECRET-7c1f", "card-SECRET-9",
                   "comment-SECRET-about-the-patient"):
        assert not any(secret in line for line in errors), (secret, errors)
    every_line = "\n".join(line for _, line in captured_log.lines)
    assert "comment-SECRET" not in every_line and "patient-SECRET" not in every_line


# -- PostgreSQL: down and back, read-only ----------------------------------------------------------

class TcpForwarder:
    """127.0.0.1:<port> → PostgreSQL; ``stop`` is a server going down (connections cut, port refused)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the other thread
            except OSError:
                pass
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def postgres_url() -> str:
    url = os.environ.get("HER2CDS_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("HER2CDS_TEST_POSTGRES_URL is not set (deselect with -m 'not postgres').")
    return url


@pytest.fixture
def postgres_forwarder():
    url = make_url(postgres_url())
    forwarder = TcpForwarder((url.host or "127.0.0.1", url.port or 5432))
    forwarder.start()
    yield forwarder, url.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False)
    forwarder.stop()


@pytest.mark.postgres
def test_postgres_down_is_not_ready_503_and_recovers_when_it_is_back(postgres_forwarder, issuer_file, signing_key):
    pem = signing_key[0]
    forwarder, url = postgres_forwarder
    app = create_app(readyz_probe_cache_seconds=0, auth="required", database_url=url, trusted_issuers=issuer_file)
    client = app.test_client()
    assert call_hook(client, pem).status_code == 200
    assert readiness(client) == (200, "ok")

    forwarder.stop()  # PostgreSQL goes away: pooled connections cut, new ones refused
    status, database = readiness(client)
    assert status == 503 and database.startswith("unavailable"), database
    assert_retry_later(call_hook(client, pem))
    assert_retry_later(post_feedback(client, pem, card="card-pg-down"))

    forwarder.start()  # back, on the same address: no restart of the service
    assert call_hook(client, pem).status_code == 200
    card = f"card-pg-back-{uuid.uuid4().hex}"  # the PostgreSQL test database outlives a run: a fresh id each time
    issue_card(app.extensions["her2cds.store"], card, SERVICE, iss=ISS)
    assert post_feedback(client, pem, card=card).status_code == 200
    assert readiness(client) == (200, "ok")
    app.extensions["her2cds.store"].dispose()


@pytest.mark.postgres
def test_read_only_postgres_is_not_ready_and_recovers(issuer_file, signing_key):
    pem = signing_key[0]
    url = postgres_url()
    database = make_url(url).database
    admin = storage.Store(url)
    alter = f'ALTER DATABASE "{database}" SET default_transaction_read_only = '
    try:
        with admin.engine.begin() as conn:
            conn.execute(text(alter + "on"))
        app = create_app(readyz_probe_cache_seconds=0, auth="required", database_url=url, trusted_issuers=issuer_file)
        client = app.test_client()
        status, why = readiness(client)
        assert status == 503 and "InternalError" in why, why  # ReadOnlySqlTransaction
        assert_retry_later(call_hook(client, pem))
        assert_retry_later(post_feedback(client, pem, card="card-pg-ro"))
    finally:
        with admin.engine.begin() as conn:
            conn.execute(text("SET TRANSACTION READ WRITE"))
            conn.execute(text(alter + "off"))
        admin.dispose()
    assert call_hook(client, pem).status_code == 200  # pooled read-only sessions were dropped
    assert readiness(client) == (200, "ok")
    app.extensions["her2cds.store"].dispose()


def test_a_flood_of_readiness_probes_costs_one_test_write_per_interval(migrated_db_url, monkeypatch):
    """/readyz is anonymous (issue 21: 1,059 probes/s raised hook p50 fourfold): a worker reuses the verdict
    of its write probe for ``readyz_probe_cache_seconds``; with 0 every call probes."""
    app = create_app(auth="disabled", database_url=migrated_db_url, readyz_probe_cache_seconds=60)
    store = app.extensions["her2cds.store"]
    writes = []
    real = store.check_writable
    monkeypatch.setattr(store, "check_writable", lambda: writes.append(1) or real())
    client = app.test_client()
    assert all(client.get("/readyz").status_code == 200 for _ in range(50))
    assert len(writes) == 1
    eager = create_app(auth="disabled", database_url=migrated_db_url, readyz_probe_cache_seconds=0)
    probes = []
    monkeypatch.setattr(eager.extensions["her2cds.store"], "check_writable", lambda: probes.append(1))
    for _ in range(3):
        eager.test_client().get("/readyz")
    assert len(probes) == 3
