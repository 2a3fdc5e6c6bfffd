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
(``cds_service/smart/sessions.py``: Fernet, key derived from the Flask secret key).

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

from .audit import AuditTrail
from .engine import (
    MIN_FREE_BYTES, PROBE_ISSUER, RETRY_AFTER_SECONDS, WRITE_FAILURE_MEMORY, SecretsFull, StoreEngine,
    StoreUnavailable, is_unavailable,
)
from .feedback import FeedbackRecords
from .issued import IssuedCards
from .replay import ReplayCache
from .secrets import Secrets
from .tables import audit, feedback, issued_cards, jwt_replay, metadata, smart_session


class Store(StoreEngine, FeedbackRecords, IssuedCards, ReplayCache, Secrets, AuditTrail):
    """The service's durable records: one engine (``StoreEngine``), one class per table family."""


__all__ = [
    "MIN_FREE_BYTES", "PROBE_ISSUER", "RETRY_AFTER_SECONDS", "WRITE_FAILURE_MEMORY", "SecretsFull", "Store",
    "StoreEngine", "StoreUnavailable", "audit", "feedback", "is_unavailable", "issued_cards", "jwt_replay",
    "metadata", "smart_session",
]
