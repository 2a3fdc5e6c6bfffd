"""The SMART app's short-lived records: ciphertext only, bounded per kind and per owner."""

from __future__ import annotations

import time

from sqlalchemy import func, insert, select

from .tables import smart_session
from .engine import SecretsFull


class Secrets:
    """The SMART app's short-lived records: ciphertext only, bounded per kind and per owner, over ``StoreEngine``'s engine."""

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
