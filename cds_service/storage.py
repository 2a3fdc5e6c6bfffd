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
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import threading
from contextlib import contextmanager, nullcontext
import time

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
    create_engine,
    event,
    func,
    insert,
    select,
)
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
    Index("ix_smart_session_kind_expires", "kind", "expires_at"),
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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
        kwargs = {"future": True, "pool_pre_ping": not sqlite}
        if sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        self.url = url
        self.engine: Engine = create_engine(url, **kwargs)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._create_lock = threading.Lock()
        self._write_lock = threading.Lock() if sqlite else nullcontext()
        database = self.engine.url.database if sqlite else None
        self._lock_path = f"{database}-writelock" if database and database != ":memory:" else None
        self._lock_file: tuple[int, object] | None = None
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
        """
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
        with self._create_lock:
            try:
                metadata.create_all(self.engine)
            except IntegrityError:
                # Another worker created the tables at the same moment (PostgreSQL
                # catalog race); what we wanted exists now.
                metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None and self._lock_file[0] == os.getpid():
            self._lock_file[1].close()
        self._lock_file = None

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(select(1))
        return True

    # -- feedback -----------------------------------------------------------
    def record_feedback(self, service_id: str, item: dict) -> bool:
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
        }
        try:
            with self.write() as conn:
                conn.execute(insert(feedback).values(**row))
            return True
        except IntegrityError:
            return False

    def feedback_rows(self, service_id: str | None = None) -> list[dict]:
        q = select(feedback).order_by(feedback.c.id)
        if service_id:
            q = q.where(feedback.c.service_id == service_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

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
                .select_from(feedback.join(issued_cards, feedback.c.card_uuid == issued_cards.c.card_uuid))
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
        """Record a token id; False when it was seen before (a replay)."""
        try:
            with self.write() as conn:
                conn.execute(jwt_replay.delete().where(jwt_replay.c.expires_at < now))
                conn.execute(insert(jwt_replay), {"issuer": issuer, "jti": jti, "expires_at": expires_at})
            return True
        except IntegrityError:
            return False

    # -- SMART app secrets (ciphertext only) -----------------------------------
    def put_secret(self, kind: str, key: str, payload: bytes, ttl: int, now: int | None = None,
                   max_live: int | None = None) -> None:
        """Store an encrypted record for ``ttl`` seconds; expired rows of every kind go first.

        Purging on write keeps the table small without a background job.
        ``max_live`` bounds the live rows of this ``kind`` (a flood of launches
        cannot fill the disk): when reached, the rows closest to expiry are dropped.
        """
        now = int(time.time()) if now is None else int(now)
        with self.write() as conn:
            conn.execute(smart_session.delete().where(smart_session.c.expires_at <= now))
            if max_live is not None:
                live = conn.execute(select(func.count()).select_from(smart_session)
                                    .where(smart_session.c.kind == kind)).scalar_one()
                if live >= max_live:
                    oldest = (select(smart_session.c.key).where(smart_session.c.kind == kind)
                              .order_by(smart_session.c.expires_at).limit(live - max_live + 1))
                    conn.execute(smart_session.delete().where(smart_session.c.key.in_(oldest)))
            conn.execute(insert(smart_session).values(key=key, kind=kind, expires_at=now + int(ttl),
                                                      payload=payload.decode("ascii")))

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
    def record_invocation(self, audit_row: dict, service_id: str, hook: str,
                          cards: list[tuple[str, str, str]]) -> None:
        """The audit row and the issued cards of one hook call, in one transaction."""
        now = _utcnow()
        audit_row = dict(audit_row)
        audit_row.setdefault("at", now)
        with self.write() as conn:
            if cards:
                conn.execute(insert(issued_cards), [
                    {"card_uuid": u, "service_id": service_id, "hook": hook, "rule_id": r,
                     "rulebook_version": v, "issued_at": now} for u, r, v in cards])
            conn.execute(insert(audit), audit_row)

    def audit_rows(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(audit).order_by(audit.c.id))]
