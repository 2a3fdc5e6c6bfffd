"""Durable records: feedback, issued cards, the JWT replay cache, the audit trail and
the SMART app's short-lived, encrypted launch/session records.

SQLAlchemy Core (not the ORM) so that SQLite and PostgreSQL are a URL apart.
All writes are single short transactions; uniqueness constraints, not
read-then-write, make repeated feedback and replayed ``jti`` values safe across
gunicorn workers and across instances that share a database.

No access token, JWT or clinical data is ever written here in clear text:
issued-card rows carry only the card uuid, rule, rulebook version and service;
the audit row carries ids (patient id, hook instance), never resource content;
``smart_session`` rows hold only ciphertext that the caller encrypted
(``cds_service/smart.py``: Fernet, key derived from the Flask secret key).

Database faults (a read-only file, a full disk, PostgreSQL down or restarted)
are expected, visible and survivable:

- *visible*: ``check_writable`` is what ``/readyz`` asks; it commits a real
  (tiny) write, checks the free space beside a SQLite file, and remembers
  that a real write failed recently, so readiness goes red when the service
  cannot write, not only when it cannot read;
- *survivable*: after an operational error every pooled connection is thrown
  away (``_discard_connections_on_outage``), because a SQLite
  connection opened while the file was read-only stays read-only for life;
  PostgreSQL connections are pre-pinged.  The next call reconnects, so the
  service recovers by itself when the database does;
- *answerable*: ``is_unavailable`` tells a database outage (the caller answers
  503 with ``Retry-After``) from a bug (500);
- *quiet*: the engine hides SQL parameters in its error messages
  (``hide_parameters``), so a failing write does not copy patient ids, hook
  instances or free-text comments into the log.

Text that reaches the audit table is made storable here (``_storable``),
because the audit row of a rejected request carries whatever the caller sent:
a NUL, which PostgreSQL refuses in text columns, would otherwise drop the row
on PostgreSQL and keep it on SQLite.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from typing import Iterable

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

metadata = MetaData()

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(100), nullable=False),
    Column("card_uuid", String(100), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("outcome_timestamp", String(40), nullable=False),
    Column("accepted_suggestions", Text, nullable=False, default="[]"),
    Column("override_system", String(300)),
    Column("override_code", String(100)),
    Column("override_display", String(300)),
    Column("user_comment", Text),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # The JWT issuer of the client that sent it (None with authentication disabled): it must be the
    # client the card was issued to (protocol/feedback.py), and the report joins on it.
    Column("client_iss", String(300)),
    UniqueConstraint("service_id", "card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
)

issued_cards = Table(
    "issued_cards",
    metadata,
    Column("card_uuid", String(100), primary_key=True),
    Column("service_id", String(100), nullable=False),
    Column("hook", String(50), nullable=False),
    Column("rule_id", String(50), nullable=False),
    Column("rulebook_version", String(50), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    # SHA-256 of (who saw it, patient, rule, what the draft orders order): lets order-sign skip a card the
    # clinician saw at order-select (protocol/repeats.py); never the patient id in clear.
    Column("repeat_key", String(64)),
    # The hookInstance of the call that issued the card: a suppression at order-sign names the
    # order-select call that showed the card (log and audit trail, issue 21).
    Column("hook_instance", String(100)),
    # Who received the card (the token's iss and tenant; None with authentication disabled) and the
    # uuids of its suggestions: feedback is accepted only from that client, naming those suggestions.
    Column("client_iss", String(300)),
    Column("client_tenant", String(256)),
    Column("suggestion_ids", Text),
    Index("ix_issued_cards_repeat", "repeat_key", "hook", "issued_at"),
)

jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("issuer", String(300), primary_key=True),
    Column("jti", String(300), primary_key=True),
    Column("expires_at", Integer, nullable=False, index=True),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("service_id", String(100)),
    Column("hook", String(50)),
    Column("hook_instance", String(100)),
    Column("patient_id", String(200)),
    Column("client_iss", String(300)),
    Column("status", Integer, nullable=False),
    Column("outcome", String(100), nullable=False),
    Column("card_count", Integer, nullable=False, default=0),
    Column("rule_ids", Text, nullable=False, default=""),
    Column("duration_ms", Integer, nullable=False, default=0),
    # Cards computed but not repeated at order-sign: "rule@earlier-hookInstance" entries, comma-separated.
    Column("suppressed", Text, nullable=False, default=""),
)


# The SMART app's server-side state (PKCE launches, app sessions) so that /smart/launch,
# /smart/callback and /smart/app may reach any worker or instance sharing this database.
# ``key`` is chosen by the caller (smart.py stores a hash of the random id, never the id);
# ``payload`` is opaque ciphertext (ASCII, a Fernet token); ``expires_at`` is epoch seconds.
smart_session = Table(
    "smart_session",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("expires_at", Integer, nullable=False, index=True),
    Column("payload", Text, nullable=False),
    # Who started a pending launch: a keyed hash of the client address (never the address), so a
    # flood from one address meets its own bound and cannot push out other browsers' launches.
    Column("owner", String(64)),
    Index("ix_smart_session_kind_expires", "kind", "expires_at"),
    Index("ix_smart_session_owner", "kind", "owner"),
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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


def _fit(table: Table, row: dict) -> dict:
    """A row whose text fits ``table``'s columns (see ``_storable``)."""
    return {k: _storable(v, getattr(table.c[k].type, "length", None)) for k, v in row.items()}


def _replay_key(value, column) -> str:
    """A token's ``iss``/``jti`` as ``jwt_replay`` keys it: itself when it fits, else its SHA-256.

    The jti is whatever string the client chose.  One too long for the column,
    or holding a character a database refuses (NUL on PostgreSQL), must still
    be remembered the same way on both databases: stored raw it failed on
    every retry on PostgreSQL ("503 forever") and passed on SQLite.  The digest
    is deterministic, so a replay of such a token is still caught.
    """
    value = value if isinstance(value, str) else json.dumps(value)
    if len(value) <= column.type.length and not _UNSTORABLE.search(value):
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Store:
    """One engine per process; safe to share between threads."""

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
        from .migrations import ensure_schema
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

    # -- feedback -----------------------------------------------------------
    def issued_card(self, card_uuid: str) -> dict | None:
        """What was recorded when a card was issued (service, hook, client, suggestion uuids), or None."""
        q = select(issued_cards.c.card_uuid, issued_cards.c.service_id, issued_cards.c.hook,
                   issued_cards.c.client_iss, issued_cards.c.client_tenant, issued_cards.c.suggestion_ids
                   ).where(issued_cards.c.card_uuid == card_uuid)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        out = dict(row._mapping)
        try:
            out["suggestion_ids"] = json.loads(out["suggestion_ids"]) if out["suggestion_ids"] else []
        except ValueError:
            out["suggestion_ids"] = []
        return out

    def record_feedback(self, service_id: str, item: dict, client_iss: str | None = None) -> bool:
        """Store one feedback entry; False when the same entry was already stored."""
        reason = (item.get("overrideReason") or {}).get("reason") or {}
        row = {
            "service_id": service_id,
            "card_uuid": item["card"],
            "outcome": item["outcome"],
            "outcome_timestamp": item["outcomeTimestamp"],
            "accepted_suggestions": json.dumps(
                [s.get("id") for s in item.get("acceptedSuggestions") or []]
            ),
            "override_system": reason.get("system"),
            "override_code": reason.get("code"),
            "override_display": reason.get("display"),
            "user_comment": (item.get("overrideReason") or {}).get("userComment"),
            "received_at": _utcnow(),
            "client_iss": client_iss,
        }
        try:
            with self.write() as conn:
                conn.execute(insert(feedback).values(**row))
            return True
        except IntegrityError:
            return False

    # -- issued cards -------------------------------------------------------
    def record_issued_cards(self, service_id: str, hook: str, cards: list[tuple[str, str, str]]) -> None:
        """cards: (card_uuid, rule_id, rulebook_version) for each card sent."""
        if not cards:
            return
        now = _utcnow()
        rows = [
            {"card_uuid": u, "service_id": service_id, "hook": hook, "rule_id": r,
             "rulebook_version": v, "issued_at": now}
            for u, r, v in cards
        ]
        with self.write() as conn:
            conn.execute(insert(issued_cards), rows)

    def feedback_report(self) -> list[dict]:
        """Per rule: cards issued, accepted, overridden, and override reasons with counts."""
        with self.engine.connect() as conn:
            issued = {
                (r.rule_id, r.rulebook_version): r.n
                for r in conn.execute(
                    select(issued_cards.c.rule_id, issued_cards.c.rulebook_version,
                           func.count().label("n")).group_by(
                        issued_cards.c.rule_id, issued_cards.c.rulebook_version)
                )
            }
            joined = conn.execute(
                select(
                    issued_cards.c.rule_id,
                    issued_cards.c.rulebook_version,
                    feedback.c.outcome,
                    feedback.c.override_display,
                    feedback.c.override_code,
                    func.count(func.distinct(feedback.c.card_uuid)).label("n"),
                )
                .select_from(feedback.join(issued_cards, and_(
                    feedback.c.card_uuid == issued_cards.c.card_uuid,
                    # only the client the card was issued to speaks for it (rows of either side without an
                    # issuer predate issue 21, or come from an instance with authentication disabled)
                    or_(feedback.c.client_iss == issued_cards.c.client_iss,
                        and_(feedback.c.client_iss.is_(None), issued_cards.c.client_iss.is_(None))))))
                .group_by(issued_cards.c.rule_id, issued_cards.c.rulebook_version, feedback.c.outcome,
                          feedback.c.override_display, feedback.c.override_code)
            ).all()
            unlinked = conn.execute(
                select(func.count()).select_from(feedback).where(
                    ~feedback.c.card_uuid.in_(select(issued_cards.c.card_uuid)))
            ).scalar_one()
        report: dict[tuple, dict] = {}
        for key, n in issued.items():
            report[key] = {"rule_id": key[0], "rulebook_version": key[1], "issued": n,
                           "accepted": 0, "overridden": 0, "override_reasons": {}}
        for r in joined:
            entry = report.setdefault((r.rule_id, r.rulebook_version), {
                "rule_id": r.rule_id, "rulebook_version": r.rulebook_version, "issued": 0,
                "accepted": 0, "overridden": 0, "override_reasons": {}})
            entry[r.outcome] = entry.get(r.outcome, 0) + r.n
            if r.outcome == "overridden":
                label = r.override_display or r.override_code or "(no reason given)"
                entry["override_reasons"][label] = entry["override_reasons"].get(label, 0) + r.n
        rows = sorted(report.values(), key=lambda e: (e["rule_id"], e["rulebook_version"]))
        if unlinked:
            rows.append({"rule_id": "(unknown card)", "rulebook_version": "", "issued": 0,
                         "accepted": None, "overridden": None, "override_reasons": {},
                         "unlinked_feedback": unlinked})
        return rows

    # -- JWT replay cache ---------------------------------------------------
    def remember_jti(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        """Record a token id; False when it was seen before (a replay).

        When the database cannot be written this raises, and the hook call is
        *refused* (``auth.check_request`` answers 503, the app adds
        ``Retry-After``), rather than remembered in a per-worker memory for
        the outage.  Why:

        - replay protection is only as wide as the store that remembers: a
          cache in one worker's memory would accept the same token once on
          every other worker and instance, silently narrowing the protection
          to one process exactly when an attacker can bring the outage about
          (a full disk is how the attack run found this);
        - the same outage keeps the call's audit row and issued-card records
          from being written, so the advice would leave no trail;
        - the refusal is visible, not silent: the client gets 503 with
          ``Retry-After`` and, as CDS Hooks clients do, carries on without
          cards; ``/readyz`` goes red (``check_writable``) so an orchestrator
          routes to a healthy instance; and the engine reconnects by itself,
          so the refusals last only as long as the database outage.
        """
        row = {"issuer": _replay_key(issuer, jwt_replay.c.issuer), "jti": _replay_key(jti, jwt_replay.c.jti),
               "expires_at": expires_at}
        try:
            with self.write() as conn:
                conn.execute(jwt_replay.delete().where(jwt_replay.c.expires_at < now))
                conn.execute(insert(jwt_replay), row)
            return True
        except IntegrityError:
            return False

    # -- SMART app secrets (ciphertext only) -----------------------------------
    def put_secret(self, kind: str, key: str, payload: bytes, ttl: int, now: int | None = None,
                   max_live: int | None = None, owner: str | None = None, max_per_owner: int | None = None,
                   evict: bool = True) -> None:
        """Store an encrypted record for ``ttl`` seconds; expired rows of every kind go first.

        Purging on write keeps the table small without a background job.
        ``max_live`` bounds the live rows of this ``kind`` (a flood cannot fill
        the disk): when reached, the rows closest to expiry are dropped
        (``evict``), or the new record is refused with ``SecretsFull`` (pending
        launches: a flood must not push out sign-ins in progress).
        ``max_per_owner`` bounds the live rows of this kind with this ``owner``
        (``SecretsFull(per_owner=True)``).  Counted and inserted in one write
        transaction, so concurrent writers cannot pass a bound together on SQLite
        (one writer at a time); on PostgreSQL a burst may overshoot by the number
        of concurrent writers, which a bound against floods tolerates.
        """
        now = int(time.time()) if now is None else int(now)
        with self.write() as conn:
            conn.execute(smart_session.delete().where(smart_session.c.expires_at <= now))
            if owner is not None and max_per_owner is not None:
                mine = conn.execute(select(func.count()).select_from(smart_session).where(
                    smart_session.c.kind == kind, smart_session.c.owner == owner)).scalar_one()
                if mine >= max_per_owner:
                    raise SecretsFull(per_owner=True)
            if max_live is not None:
                live = conn.execute(select(func.count()).select_from(smart_session)
                                    .where(smart_session.c.kind == kind)).scalar_one()
                if live >= max_live and not evict:
                    raise SecretsFull(per_owner=False)
                if live >= max_live:
                    oldest = (select(smart_session.c.key).where(smart_session.c.kind == kind)
                              .order_by(smart_session.c.expires_at).limit(live - max_live + 1))
                    conn.execute(smart_session.delete().where(smart_session.c.key.in_(oldest)))
            conn.execute(insert(smart_session).values(key=key, kind=kind, expires_at=now + int(ttl),
                                                      payload=payload.decode("ascii"), owner=owner))

    def get_secret(self, kind: str, key: str, now: int | None = None) -> bytes | None:
        """The payload of a live record, or None (unknown, other kind, or expired)."""
        now = int(time.time()) if now is None else int(now)
        with self.engine.connect() as conn:
            payload = conn.execute(
                select(smart_session.c.payload).where(
                    smart_session.c.key == key, smart_session.c.kind == kind,
                    smart_session.c.expires_at > now)).scalar_one_or_none()
        return None if payload is None else payload.encode("ascii")

    def pop_secret(self, kind: str, key: str, now: int | None = None) -> bytes | None:
        """Get and delete, single-use even under concurrency: None unless *this* call deleted the row.

        Select, then delete and check the rowcount, in one transaction: two
        callers may both read the row, but only one DELETE affects it (SQLite
        serialises writers; PostgreSQL makes the second DELETE wait for the
        first and then find nothing).  Portable where DELETE … RETURNING is not
        (SQLite < 3.35).  An expired row is deleted too, and reported as None.
        """
        now = int(time.time()) if now is None else int(now)
        with self.write() as conn:
            row = conn.execute(
                select(smart_session.c.payload, smart_session.c.expires_at).where(
                    smart_session.c.key == key, smart_session.c.kind == kind)).first()
            if row is None:
                return None
            deleted = conn.execute(smart_session.delete().where(
                smart_session.c.key == key, smart_session.c.kind == kind)).rowcount
        if deleted != 1 or row.expires_at <= now:
            return None
        return row.payload.encode("ascii")

    # -- audit --------------------------------------------------------------
    def earlier_cards(self, keys: Iterable[str], hook: str, since: dt.datetime) -> list[dict]:
        """Cards issued at ``hook`` since ``since`` with one of the repeat ``keys`` (any worker/instance),
        oldest first, each with the feedback given for it (one row per feedback entry, or one with
        ``outcome`` None): ``repeat_key``, ``hook_instance``, ``outcome``, ``override_code``, ``user_comment``.
        ``protocol/repeats.earlier`` decides what they mean."""
        keys = sorted(set(keys))
        if not keys:
            return []
        q = (select(issued_cards.c.repeat_key, issued_cards.c.hook_instance,
                    feedback.c.outcome, feedback.c.override_code, feedback.c.user_comment)
             .select_from(issued_cards.outerjoin(feedback, feedback.c.card_uuid == issued_cards.c.card_uuid))
             .where(issued_cards.c.repeat_key.in_(keys), issued_cards.c.hook == hook,
                    issued_cards.c.issued_at >= since)
             .order_by(issued_cards.c.issued_at))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def record_invocation(self, audit_row: dict, service_id: str, hook: str,
                          cards: list[tuple[str, str, str]], repeat_keys: dict[str, str] | None = None,
                          suggestions: dict[str, list[str]] | None = None, client_tenant: str | None = None) -> None:
        """The audit row and the issued cards of one hook call, in one transaction.

        The audit row describes the request as sent, rejected ones included, so
        its text is made storable first (``_fit``): a NUL in ``hookInstance``
        must not drop the row (and with it the call's trace) on PostgreSQL.
        """
        now = _utcnow()
        audit_row = _fit(audit, audit_row)
        audit_row.setdefault("at", now)
        with self.write() as conn:
            if cards:
                conn.execute(insert(issued_cards), [
                    {"card_uuid": u, "service_id": service_id, "hook": hook, "rule_id": r,
                     "rulebook_version": v, "issued_at": now, "repeat_key": (repeat_keys or {}).get(u),
                     "hook_instance": _storable(audit_row.get("hook_instance"), 100),
                     "client_iss": audit_row.get("client_iss"), "client_tenant": _storable(client_tenant, 256),
                     "suggestion_ids": json.dumps((suggestions or {}).get(u, []))}
                    for u, r, v in cards])
            conn.execute(insert(audit), audit_row)
