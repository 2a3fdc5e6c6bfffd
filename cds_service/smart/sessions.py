"""The SMART app's server-side state: pending launches and app sessions, encrypted in the database.

Why the database (``storage.smart_session``): ``her2-cds serve`` runs several
gunicorn workers and may run several instances; ``/smart/launch``,
``/smart/callback`` and ``/smart/app`` can each land on any of them.  Why
encrypted: the rows hold the PKCE verifier and the access token, which must
not be readable from a database dump or backup.  Flask's cookie session is
client-side, so only a random id travels in the (signed) cookie.

Every failure here becomes a ``SmartError`` page: an unreachable database is
a 503, a row this instance cannot decrypt is a "launch again" page, never a 500.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.exc import SQLAlchemyError

from ..storage import SecretsFull
from .errors import SmartError

log = logging.getLogger("her2cds.smart")

STATE_TTL = 600             # seconds a launch may take between /launch and /callback
SESSION_TTL = 3600          # longest a server-side app session lives, whatever the token says
MAX_ENTRIES = 10_000        # bound the live launches/sessions against floods of /launch calls
MAX_LAUNCHES_PER_ADDRESS = 20  # pending launches one client address may have (a browser needs one or two)

KIND_LAUNCH = "launch"      # smart_session.kind of a pending launch (state → PKCE verifier)
KIND_SESSION = "session"    # smart_session.kind of an app session (sid → access token)
HKDF_INFO = b"her2cds smart_session v1"  # domain separation: this key encrypts only these rows


@dataclass
class PendingLaunch:
    iss: str
    token_endpoint: str
    verifier: str = field(repr=False)
    redirect_uri: str
    patient_hint: str | None = None


@dataclass
class AppSession:
    iss: str
    patient: str
    access_token: str = field(repr=False)
    scope: str = ""
    patient_hint: str | None = None
    sid: str = field(default="", repr=False, compare=False)  # the cookie's id; keys the page cache

    def __repr__(self) -> str:  # never print the token, even in a debugger dump
        return f"AppSession(iss={self.iss!r}, patient={self.patient!r})"

    def record(self) -> dict:
        """What is stored: everything but the cookie's id (the row key is its hash)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "sid"}


class UnreadableSecret(Exception):
    """A record exists but cannot be decrypted or parsed (another secret key, or tampering)."""


def derive_fernet_key(secret_key: str | bytes) -> bytes:
    """The Fernet key for ``smart_session`` rows: HKDF-SHA256(secret key, info=HKDF_INFO), base64url.

    Why derived, not the secret key itself: the Flask key signs cookies; a
    separate, domain-separated key for encryption means neither use can be
    turned against the other.  Why from the secret key at all: every worker
    forked from a ``--preload``-ed app shares it, and instances that set the
    same ``HER2CDS_SECRET_KEY`` share it, so any of them can read any row —
    and a database dump alone reveals no token.
    """
    if isinstance(secret_key, str):
        secret_key = secret_key.encode("utf-8")
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret_key)
    return base64.urlsafe_b64encode(raw)


def _now() -> int:
    """Wall-clock seconds: expiry must agree across processes and hosts (monotonic clocks do not)."""
    return int(time.time())


class SecretStore:
    """Records in ``storage.Store``'s ``smart_session`` table, encrypted, shared by every worker.

    Each record is JSON (never pickle: a row must not be able to run code)
    wrapped with its kind and row key before encryption, so a row's
    ciphertext cannot be moved onto another row (e.g. a victim's session onto
    an attacker's id) without the key.  Rows are keyed by SHA-256 of the
    random id, so the table does not hold the cookie's id either, and a
    user-supplied ``state`` of any length maps to a fixed-size key.
    """

    def __init__(self, app):
        self.app = app
        self._fernet: tuple[object, Fernet] | None = None

    @property
    def db(self):
        return self.app.extensions["her2cds.store"]

    def fernet(self) -> Fernet:
        secret = self.app.config["SECRET_KEY"]
        if self._fernet is None or self._fernet[0] != secret:  # derived once per key, not per request
            self._fernet = (secret, Fernet(derive_fernet_key(secret)))
        return self._fernet[1]

    @staticmethod
    def row_key(kind: str, ident: str) -> str:
        return hashlib.sha256(f"{kind}:{ident}".encode("utf-8")).hexdigest()

    def put(self, kind: str, ident: str, value: dict, ttl: int, owner: str | None = None) -> None:
        """Encrypt and store; a pending launch (``owner`` set) is refused, never evicting another, when
        its owner or the table is at its bound (``SecretsFull``)."""
        key = self.row_key(kind, ident)
        plain = json.dumps({"kind": kind, "key": key, "value": value}, separators=(",", ":"))
        bounded = {"owner": owner, "max_per_owner": MAX_LAUNCHES_PER_ADDRESS, "evict": False} if owner else {}
        self.db.put_secret(kind, key, self.fernet().encrypt(plain.encode("utf-8")), int(ttl),
                           now=_now(), max_live=MAX_ENTRIES, **bounded)

    def owner_of(self, address: str | None) -> str:
        """The ``owner`` of a launch from ``address``: HMAC-SHA256 under the secret key (no address stored)."""
        secret = self.app.config["SECRET_KEY"]
        secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        return hmac.new(secret, f"smart-launch-owner:{address or '?'}".encode("utf-8"), hashlib.sha256).hexdigest()

    def get(self, kind: str, ident: str | None) -> dict | None:
        if not ident:
            return None
        key = self.row_key(kind, ident)
        return self._open(kind, key, self.db.get_secret(kind, key, now=_now()))

    def pop(self, kind: str, ident: str | None) -> dict | None:
        """Get and delete: a ``state`` is usable once, whichever worker sees it first."""
        if not ident:
            return None
        key = self.row_key(kind, ident)
        return self._open(kind, key, self.db.pop_secret(kind, key, now=_now()))

    def _open(self, kind: str, key: str, token: bytes | None) -> dict | None:
        if token is None:
            return None
        try:
            record = json.loads(self.fernet().decrypt(token))
        except (InvalidToken, ValueError):
            raise UnreadableSecret(kind) from None
        if (not isinstance(record, dict) or record.get("kind") != kind or record.get("key") != key
                or not isinstance(record.get("value"), dict)):
            raise UnreadableSecret(kind)
        return record["value"]

    # -- the app's use of it: launches and sessions, failures as pages ---------------------

    def save_launch(self, state: str, pending: PendingLaunch, address: str | None = None) -> None:
        """Remember a pending launch for ``STATE_TTL``; bounded per client ``address`` and in total.

        A flood meets the bound (429 for that address, 503 when the table is
        full) instead of pushing out launches other browsers have in progress.
        """
        try:
            self._write(KIND_LAUNCH, state, dataclasses.asdict(pending), STATE_TTL, owner=self.owner_of(address))
        except SecretsFull as full:
            if full.per_owner:
                raise SmartError(429, "Too many sign-ins in progress",
                                 "This address has started many sign-ins that have not finished. Finish one, "
                                 f"or wait {STATE_TTL // 60} minutes, then launch the app again.",
                                 detail="pending launches per address at their bound") from None
            raise SmartError(503, "Service busy",
                             "The service has too many sign-ins in progress right now. Try again in a few minutes.",
                             detail="pending launches at their bound") from None

    def pop_launch(self, state: str) -> PendingLaunch | None:
        """The launch ``state`` names, consumed (single-use), or None; unreadable rows are a clear error."""
        return self._record(lambda: self.pop(KIND_LAUNCH, state), lambda value: PendingLaunch(**value),
                            SmartError(400, "Launch unreadable",
                                       "This sign-in was started with another secret key than this service "
                                       "instance has. Launch the app again.",
                                       detail="launch row not readable with this instance's key: "
                                              "HER2CDS_SECRET_KEY differs between instances, or changed on restart"))

    def save_session(self, sid: str, entry: AppSession, expires_in) -> None:
        """Keep the session until the token expires (``expires_in``), at most ``SESSION_TTL``."""
        ttl = SESSION_TTL
        if isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0:
            ttl = min(ttl, expires_in)
        self._write(KIND_SESSION, sid, entry.record(), ttl)

    def load_session(self, sid: str | None) -> AppSession:
        """The browser's live session, or a 401 page saying why there is none."""
        entry = self._record(lambda: self.get(KIND_SESSION, sid), lambda value: AppSession(**value, sid=sid),
                             SmartError(401, "Session unreadable",
                                        "This browser's session was started with another secret key than this "
                                        "service instance has. Launch the app again from the EHR.",
                                        detail="session row not readable with this instance's key: "
                                               "HER2CDS_SECRET_KEY differs between instances, or changed on restart"))
        if entry is None:
            # The setting is the integrator's business: the log names it, the page a clinician reads does not.
            raise SmartError(401, "Session expired",
                             "There is no active session for this browser (it expired, or the service "
                             "restarted). Launch the app again from the EHR.",
                             detail="no session for this browser; if sessions end at every restart, "
                                    "HER2CDS_SECRET_KEY is not set to a fixed value")
        return entry

    @staticmethod
    def _record(read, build, unreadable: SmartError):
        """``build(read())`` (None stays None); the database down → 503, a row not ours → ``unreadable``."""
        try:
            value = read()
            return None if value is None else build(value)
        except SQLAlchemyError as exc:
            raise _db_unavailable(exc) from None
        except (UnreadableSecret, TypeError):
            raise unreadable from None

    def _write(self, kind: str, ident: str, value: dict, ttl: int, owner: str | None = None) -> None:
        try:
            self.put(kind, ident, value, ttl, owner)
        except SQLAlchemyError as exc:
            raise _db_unavailable(exc) from None


def _db_unavailable(exc: Exception) -> SmartError:
    # the type only: SQLAlchemy's message would carry the statement's parameters
    log.error("smart: session store unavailable", extra={"error": type(exc).__name__})
    return SmartError(503, "Service unavailable",
                      "The service cannot reach its database right now, so the sign-in cannot be "
                      "checked. Try again in a moment.")
