"""The JWT replay cache: each token id remembered until it expires."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from .tables import jwt_replay
from .engine import _UNSTORABLE


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


class ReplayCache:
    """The JWT replay cache: each token id remembered until it expires, over ``StoreEngine``'s engine."""

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
