"""The database engine: fault handling, storable text, the write transaction and the readiness probe.

See the package docstring for how database faults are made visible, survivable,
answerable and quiet.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext

from sqlalchemy import Table, create_engine, event, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from .tables import jwt_replay


# -- database faults --------------------------------------------------------------

RETRY_AFTER_SECONDS = 5  # what a 503 caused by the database tells the client to wait

# Below this much free space beside a SQLite file the next write cannot be trusted
# to fit: a one-row WAL commit is a few 4 KiB pages, a checkpoint may grow the file.
MIN_FREE_BYTES = 1024 * 1024

# How long a failed real write keeps readiness red when no write has succeeded since.
WRITE_FAILURE_MEMORY = 15.0

# The readiness probe's rows in ``jwt_replay`` (inserted and deleted in one transaction).
PROBE_ISSUER = "urn:her2cds:readiness-probe"


class SecretsFull(RuntimeError):
    """``put_secret`` refused a record: the live rows of its kind, or of its owner, are at their bound."""

    def __init__(self, per_owner: bool):
        super().__init__("owner bound reached" if per_owner else "table bound reached")
        self.per_owner = per_owner


class StoreUnavailable(RuntimeError):
    """The database cannot take writes now; the message says why, without any row values."""


# DB-API classes that mean "the database cannot serve this now", not "this statement
# is wrong": connection lost, server shutting down, read-only file or transaction,
# disk full, lock timeout.  A plain DatabaseError is sqlite3's "file is not a database".
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.InternalError,
                sa_exc.TimeoutError, sa_exc.DisconnectionError, StoreUnavailable)


def is_unavailable(exc: BaseException) -> bool:
    """Is ``exc`` a database outage (answer 503 with Retry-After) rather than a bug (500)?"""
    return isinstance(exc, _UNAVAILABLE) or type(exc) is sa_exc.DatabaseError


def _discard_connections_on_outage(context) -> None:
    """``handle_error``: treat an outage as a disconnect, so the pool drops every connection.

    Why: SQLite opens a file it may not write *read-only*, without an error,
    and that connection stays read-only after the file is writable again (the
    attack run saw no recovery without a restart).  A full disk or a
    PostgreSQL failover leaves connections in similar states.  Marked as a
    disconnect, the connection is closed and the rest of the pool invalidated;
    the next call opens fresh ones.  Only the failure path pays for it.
    """
    if context.sqlalchemy_exception is not None and is_unavailable(context.sqlalchemy_exception):
        context.is_disconnect = True


# Characters that make text unstorable or unequal across databases: C0/C1 controls
# (PostgreSQL refuses NUL in text) and lone UTF-16 surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _storable(value, length: int | None):
    """``value`` as text SQLite and PostgreSQL store alike: such characters escaped as ``\\uXXXX``,
    then cut to the column's ``length``.  Non-strings pass unchanged."""
    if not isinstance(value, str):
        return value
    if _UNSTORABLE.search(value):
        value = _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return value if length is None else value[:length]


_LENGTHS: dict[Table, dict[str, int | None]] = {}


def _fit(table: Table, row: dict) -> dict:
    """A row whose text fits ``table``'s columns (see ``_storable``).

    The column lengths are read from the table once (an audit row is fitted on every hook call).
    """
    lengths = _LENGTHS.get(table)
    if lengths is None:
        lengths = _LENGTHS[table] = {c.name: getattr(c.type, "length", None) for c in table.c}
    return {k: _storable(v, lengths[k]) for k, v in row.items()}


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class StoreEngine:
    """One engine per process; safe to share between threads.

    The engine, its write discipline (one short transaction, one writer on
    SQLite), the schema and the readiness probe.  Each table family adds its
    own methods over this engine (``feedback``, ``issued``, ``replay``,
    ``secrets``, ``audit``); ``Store`` is all of them.
    """

    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        # A pre-ping is a round trip before every transaction; it pays off only
        # for server databases, whose connections can die while pooled.
        # hide_parameters: error messages name the statement, never its values
        # (patient ids, hook instances, free-text comments stay out of the log).
        kwargs = {"pool_pre_ping": not sqlite, "hide_parameters": True}
        if sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        self.url = url
        self.engine: Engine = create_engine(url, **kwargs)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        event.listen(self.engine, "handle_error", _discard_connections_on_outage)
        self._create_lock = threading.Lock()
        self._write_lock = threading.Lock() if sqlite else nullcontext()
        database = self.engine.url.database if sqlite else None
        self._db_path = database if database and database != ":memory:" else None
        self._lock_path = f"{database}-writelock" if self._db_path else None
        self._lock_file: tuple[int, object] | None = None
        # (time.monotonic(), error type) of the last real write that failed for an
        # outage, None once a write succeeds; read by check_writable.
        self._write_failed: tuple[float, str] | None = None
        self.create_schema()

    @contextmanager
    def write(self):
        """One short write transaction.

        SQLite allows one writer at a time and makes the others wait in its
        busy handler, whose back-off sleeps grow to 100 ms: with 8 request
        threads per worker that was the whole HTTP latency tail
        (docs/performance.md).  Threads of one process therefore take turns
        on a lock first, so at most one writer per process reaches SQLite.
        Between processes (gunicorn workers) an ``flock`` on a file beside the
        database does the same: the kernel wakes the waiting worker the moment
        the lock is free, where SQLite's busy handler would sleep 1, 2, 5, 10 …
        ms.  Server databases handle concurrent writers themselves.

        An outage (``is_unavailable``) is remembered for ``check_writable``
        and re-raised; the next successful write forgets it.
        """
        try:
            with self._transaction() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            if is_unavailable(exc):
                self._write_failed = (time.monotonic(), type(exc).__name__)
            raise
        self._write_failed = None

    @contextmanager
    def _transaction(self):
        """The locks and the transaction of ``write``, without its bookkeeping."""
        with self._write_lock:
            lock = self._process_lock_file()
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with self.engine.begin() as conn:
                    yield conn
            finally:
                if lock is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _process_lock_file(self):
        """This process's own handle on the SQLite write-lock file (None without one).

        Opened per process: a handle inherited across ``fork`` shares its lock
        with the parent, so it would not keep the workers apart.  Called under
        ``_write_lock``.
        """
        if self._lock_path is None:
            return None
        if self._lock_file is None or self._lock_file[0] != os.getpid():
            try:
                handle = open(self._lock_path, "a+b")  # noqa: SIM115 - lives as long as the process
            except OSError:
                self._lock_path = None  # a read-only directory: SQLite's own locking still holds
                return None
            self._lock_file = (os.getpid(), handle)
        return self._lock_file[1]

    def create_schema(self) -> None:
        """An empty database gets the tables from the migrations; an out-of-date one is refused.

        See ``cds_service/migrations`` (``her2-cds db upgrade``).  The SQLite
        write lock keeps two processes starting on one new file from both
        creating it; PostgreSQL takes an advisory lock in the migration itself.
        """
        from ..migrations import ensure_schema
        with self._create_lock, self._write_lock:
            lock = self._process_lock_file()
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                ensure_schema(self.engine)
            finally:
                if lock is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None and self._lock_file[0] == os.getpid():
            self._lock_file[1].close()
        self._lock_file = None

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(select(1))
        return True

    def check_writable(self) -> None:
        """Raise ``StoreUnavailable`` unless the database can take a write now (``/readyz``).

        Three checks, because none sees every fault:

        - free space beside a SQLite file: a small committed write fits in
          pages SQLite already has (the WAL is reused after each checkpoint),
          so on a full disk it succeeds while real inserts fail;
        - a committed write: a probe row inserted into and deleted from
          ``jwt_replay``, the table every authenticated call writes.  It sees a
          read-only file or connection, PostgreSQL down, and a read-only
          transaction (a standby after a failover).  A rolled-back write would
          not reach the disk;
        - a real write that failed for an outage within the last
          ``WRITE_FAILURE_MEMORY`` seconds, none succeeding since: what a
          probe cannot provoke (a PostgreSQL table that cannot grow).  It
          expires so that an instance taken out of rotation is tried again.
        """
        free = self._free_bytes()
        if free is not None and free < MIN_FREE_BYTES:
            raise StoreUnavailable(f"disk nearly full ({free // 1024} KiB free beside the database)")
        probe = uuid.uuid4().hex
        try:
            with self._transaction() as conn:
                conn.execute(insert(jwt_replay), {"issuer": PROBE_ISSUER, "jti": probe, "expires_at": 0})
                conn.execute(jwt_replay.delete().where(jwt_replay.c.issuer == PROBE_ISSUER,
                                                       jwt_replay.c.jti == probe))
        except sa_exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"a test write failed ({type(exc).__name__})") from None
        failed = self._write_failed
        if failed is not None:
            age = time.monotonic() - failed[0]
            if age < WRITE_FAILURE_MEMORY:
                raise StoreUnavailable(f"a write failed {int(age)} s ago ({failed[1]}) and none succeeded since")

    def _free_bytes(self) -> int | None:
        """Bytes this process may still write beside the SQLite file; None for server databases."""
        if self._db_path is None:
            return None
        try:
            fs = os.statvfs(self._db_path)
        except OSError:  # no file: the test write will say what is wrong
            return None
        return (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize
