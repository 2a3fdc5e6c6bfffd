"""The SMART on FHIR app served by the service itself (``/smart/...``).

Why server-side: no front-end build, and the access token never reaches the
browser.  The flow is SMART App Launch 2.x, authorization code with PKCE
(S256), as a *public* client:

1. ``GET /smart/launch?iss=…&launch=…`` (EHR launch) or ``?iss=…`` alone
   (standalone launch, scope ``launch/patient``): read
   ``{iss}/.well-known/smart-configuration``, remember ``state`` → (iss,
   token endpoint, PKCE verifier) server-side, bind ``state`` to this browser
   through the signed cookie session, redirect to the authorize endpoint.
2. ``GET /smart/callback?code=…&state=…``: ``state`` must be known, fresh,
   unused *and* the one this browser started; then exchange the code with
   the verifier.  The token response must name a ``patient``.
3. The token is kept server-side, in the service database (``smart_session``
   table, shared by every worker and instance), encrypted with a key derived
   from the Flask secret key and keyed by a hash of a random session id; only
   that id travels in the (signed) cookie.  Flask's cookie session is
   client-side, so the token must never go into it.
4. ``GET /smart/app`` reads the patient with exactly the discovery prefetch
   queries, runs the same pipeline as the hooks (criteria → advice), and
   renders profile, recommendations, data-quality findings and the timeline
   picture (``GET /smart/timeline.svg``).

``GET /smart/open?iss=…&patient=…`` is the ``absolute`` card-link fallback: it
only starts a standalone launch at ``iss`` (the authorization server decides
which patient the user may see); ``patient`` is a hint that is compared with
the patient the token grants, never used to read data.

Every failure is an HTML page with a clear message and a 4xx/502/503 status;
nothing logs the token or patient data beyond ids.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode, urlsplit

import requests
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session, url_for
from sqlalchemy.exc import SQLAlchemyError

from ..cards import format_value
from ..protocol.discovery import PREFETCH
from ..protocol.prefetch import render_template as render_template_query

log = logging.getLogger("her2cds.smart")

bp = Blueprint("smart", __name__, url_prefix="/smart", template_folder="templates")

STATE_TTL = 600             # seconds a launch may take between /launch and /callback
SESSION_TTL = 3600          # longest a server-side app session lives, whatever the token says
HTTP_TIMEOUT = (3.0, 10.0)  # the app is interactive; the 0.5 s hook budget does not apply
MAX_ENTRIES = 10_000        # bound the live launches/sessions against floods of /launch calls
CACHE_TTL = 60              # seconds a worker reuses the patient data it read (page → timeline.svg)
CACHE_ENTRIES = 256         # the per-process data cache holds clinical data: keep it small

KIND_LAUNCH = "launch"      # smart_session.kind of a pending launch (state → PKCE verifier)
KIND_SESSION = "session"    # smart_session.kind of an app session (sid → access token)
HKDF_INFO = b"her2cds smart_session v1"  # domain separation: this key encrypts only these rows

PATIENT_VIEW = "her2-mbc-patient-view"


class SmartError(Exception):
    """A launch problem the user must see: ``status`` and a plain-language message."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


# -- the server-side store ----------------------------------------------------------

class ExpiringStore:
    """A thread-safe, bounded dict whose entries expire.

    Used only as a per-process *optimisation*: the patient data read for
    ``/smart/app`` is reused by the ``/smart/timeline.svg`` request that the
    page triggers, if it reaches the same worker; any other worker simply
    reads the FHIR server again.  The launches and sessions themselves live in
    the database (``SecretStore``) so that any worker can serve any request.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self._data: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def put(self, key: str, value, ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._purge(now)
            if len(self._data) >= self.max_entries:  # still full: drop the oldest-expiring
                oldest = min(self._data, key=lambda k: self._data[k][0])
                del self._data[oldest]
            self._data[key] = (now + ttl, value)

    def get(self, key: str | None):
        if not key:
            return None
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._data[key]
                return None
            return item[1]

    def pop(self, key: str | None):
        """Get and remove: makes ``state`` single-use."""
        if not key:
            return None
        with self._lock:
            item = self._data.pop(key, None)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def _purge(self, now: float) -> None:
        for k in [k for k, (exp, _) in self._data.items() if exp < now]:
            del self._data[k]

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class PendingLaunch:
    iss: str
    token_endpoint: str
    verifier: str
    redirect_uri: str
    patient_hint: str | None = None


@dataclass
class AppSession:
    iss: str
    patient: str
    access_token: str = field(repr=False)
    scope: str = ""
    patient_hint: str | None = None
    sid: str = field(default="", repr=False, compare=False)  # the cookie's id; keys the data cache

    def __repr__(self) -> str:  # never print the token, even in a debugger dump
        return f"AppSession(iss={self.iss!r}, patient={self.patient!r})"


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


class SecretStore:
    """Launches and sessions in the service database, encrypted, shared by every worker.

    Why the database: ``her2-cds serve`` runs several gunicorn workers and may
    run several instances; ``/smart/launch``, ``/smart/callback`` and
    ``/smart/app`` can each land on any of them.  Why encrypted: the rows hold
    the PKCE verifier and the access token, which must not be readable from a
    database dump or backup.  Each record is JSON (never pickle: a row must not
    be able to run code) wrapped with its kind and row key before encryption,
    so a row's ciphertext cannot be moved onto another row (e.g. a victim's
    session onto an attacker's id) without the key.  Rows are keyed by
    SHA-256 of the random id, so the table does not hold the cookie's id
    either, and a user-supplied ``state`` of any length maps to a fixed-size key.
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

    def put(self, kind: str, ident: str, value: dict, ttl: int) -> None:
        key = self.row_key(kind, ident)
        plain = json.dumps({"kind": kind, "key": key, "value": value}, separators=(",", ":"))
        self.db.put_secret(kind, key, self.fernet().encrypt(plain.encode("utf-8")), int(ttl),
                           now=_now(), max_live=MAX_ENTRIES)

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


def _now() -> int:
    """Wall-clock seconds: expiry must agree across processes and hosts (monotonic clocks do not)."""
    return int(time.time())


@bp.record_once
def _init_stores(state) -> None:
    """Per app: the database-backed store, the small data cache, and the session cookie flags.

    Cookie: always HttpOnly (no script needs it).  Behind HTTPS the app may be
    shown in an EHR iframe, which is a cross-site context: the cookie then
    needs ``SameSite=None`` and, as browsers require for that, ``Secure``.
    Over plain http ``SameSite=None`` is refused by browsers, so ``Lax``
    (the app then opens in its own window/tab).  The ``state`` ↔ browser
    binding, not SameSite, is what stops login CSRF.
    """
    app = state.app
    app.extensions["her2cds.smart.secrets"] = SecretStore(app)
    app.extensions["her2cds.smart.cache"] = ExpiringStore(max_entries=CACHE_ENTRIES)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if app.config["SETTINGS"].public_url.strip().lower().startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["SESSION_COOKIE_SAMESITE"] = "None"
    else:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"


def _secrets() -> SecretStore:
    return current_app.extensions["her2cds.smart.secrets"]


def _cache() -> ExpiringStore:
    return current_app.extensions["her2cds.smart.cache"]


def _db_unavailable(exc: Exception) -> SmartError:
    # the type only: SQLAlchemy's message would carry the statement's parameters
    log.error("smart: session store unavailable", extra={"error": type(exc).__name__})
    return SmartError(503, "Service unavailable",
                      "The service cannot reach its database right now, so the sign-in cannot be "
                      "checked. Try again in a moment.")


# -- PKCE and small helpers -----------------------------------------------------------

def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636: 43+ chars of base64url without padding."""
    verifier = secrets.token_urlsafe(48)
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _settings():
    return current_app.config["SETTINGS"]


def _is_http_url(value: str | None) -> bool:
    if not value or len(value) > 2000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.username


def _check_iss(iss: str | None) -> str:
    """The FHIR base the launch names, if it is a plain http(s) URL we may talk to.

    Why an allow-list: the service fetches ``{iss}/.well-known/...`` for any
    visitor, so an open deployment could be used to probe internal hosts.
    ``HER2CDS_SMART_ALLOWED_ISSUERS`` (comma list of FHIR base URLs) closes that.
    """
    if not iss:
        raise SmartError(400, "Missing iss", "The launch URL needs an 'iss' parameter: the FHIR server's base URL.")
    iss = iss.strip().rstrip("/")
    if not _is_http_url(iss):
        raise SmartError(400, "Invalid iss", "The 'iss' parameter must be an http(s) URL of a FHIR server.")
    allowed = [a.strip().rstrip("/") for a in _settings().smart_allowed_issuers.split(",")
               if a.strip()]
    if allowed and iss not in allowed:
        raise SmartError(403, "FHIR server not allowed",
                         "This service is not configured to launch against that FHIR server.")
    return iss


def _redirect_uri() -> str:
    settings = _settings()
    if settings.smart_redirect_url:
        return settings.smart_redirect_url
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/smart/callback"
    return url_for("smart.callback", _external=True)


def _scopes(standalone: bool) -> str:
    """The configured scopes; a standalone launch asks for ``launch/patient`` instead of ``launch``."""
    scopes = _settings().smart_scopes.split()
    if standalone:
        scopes = ["launch/patient" if s == "launch" else s for s in scopes]
        if "launch/patient" not in scopes:
            scopes.insert(0, "launch/patient")
    elif "launch" not in scopes:
        scopes.insert(0, "launch")
    return " ".join(scopes)


def smart_configuration(iss: str) -> dict:
    """Read ``{iss}/.well-known/smart-configuration`` and check the two endpoints we need."""
    url = iss + "/.well-known/smart-configuration"
    try:
        resp = requests.get(url, headers={"Accept": "application/json"}, timeout=HTTP_TIMEOUT,
                            allow_redirects=False)
    except requests.RequestException as exc:
        raise SmartError(502, "FHIR server unreachable",
                         f"Could not read the SMART configuration of {iss} ({type(exc).__name__}).") from None
    if resp.status_code != 200:
        raise SmartError(502, "No SMART configuration",
                         f"{iss} does not publish a SMART configuration (HTTP {resp.status_code} for "
                         "/.well-known/smart-configuration).")
    try:
        conf = resp.json()
    except ValueError:
        conf = None
    if not isinstance(conf, dict):
        raise SmartError(502, "Bad SMART configuration", f"The SMART configuration of {iss} is not a JSON object.")
    for key in ("authorization_endpoint", "token_endpoint"):
        if not _is_http_url(conf.get(key)):
            raise SmartError(502, "Bad SMART configuration",
                             f"The SMART configuration of {iss} has no usable {key}.")
    methods = conf.get("code_challenge_methods_supported")
    if isinstance(methods, list) and methods and "S256" not in methods:
        raise SmartError(502, "PKCE not supported",
                         f"The authorization server of {iss} does not support PKCE S256, which this app requires.")
    return conf


# -- routes -------------------------------------------------------------------------------

@bp.get("/launch")
def launch():
    """EHR launch (iss + launch) or standalone launch (iss only)."""
    iss = _check_iss(request.args.get("iss"))
    launch_token = request.args.get("launch") or None
    if launch_token is not None and len(launch_token) > 2000:
        raise SmartError(400, "Invalid launch", "The 'launch' parameter is too long.")
    return _start_authorization(iss, launch_token, patient_hint=None)


@bp.get("/open")
def open_absolute():
    """The ``absolute`` card-link fallback: a standalone launch at ``iss``; ``patient`` is only a hint."""
    iss = _check_iss(request.args.get("iss"))
    hint = request.args.get("patient") or None
    if hint is not None and len(hint) > 64:
        raise SmartError(400, "Invalid patient", "The 'patient' parameter is not a FHIR id.")
    return _start_authorization(iss, None, patient_hint=hint)


def _start_authorization(iss: str, launch_token: str | None, patient_hint: str | None):
    conf = smart_configuration(iss)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    redirect_uri = _redirect_uri()
    pending = PendingLaunch(iss, conf["token_endpoint"], verifier, redirect_uri, patient_hint)
    try:
        _secrets().put(KIND_LAUNCH, state, dataclasses.asdict(pending), STATE_TTL)
    except SQLAlchemyError as exc:
        raise _db_unavailable(exc) from None
    session["smart_state"] = state
    params = {
        "response_type": "code",
        "client_id": _settings().smart_client_id,
        "redirect_uri": redirect_uri,
        "scope": _scopes(standalone=launch_token is None),
        "state": state,
        "aud": iss,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if launch_token is not None:
        params["launch"] = launch_token
    endpoint = conf["authorization_endpoint"]
    sep = "&" if urlsplit(endpoint).query else "?"
    log.info("smart launch started", extra={"iss": iss, "ehr_launch": launch_token is not None})
    return redirect(endpoint + sep + urlencode(params), code=302)


@bp.get("/callback")
def callback():
    """The authorization server's redirect: check state, exchange the code, start the app session."""
    state = request.args.get("state")
    if not state and request.args.get("error"):
        _raise_authorization_error()
    if not state:
        raise SmartError(400, "Missing state", "The authorization response has no 'state'; start the app again.")
    browser_state = session.pop("smart_state", None)
    pending = _pop_pending(state)
    if pending is None and browser_state == state:
        # this browser did start the launch, but the database has no live record of it
        raise SmartError(400, "Launch expired",
                         "This sign-in took too long, or the service lost it (its instances do not share "
                         "one database, or the database was reset; see docs/smart-app.md). "
                         "Launch the app again.")
    if pending is None:
        raise SmartError(400, "Unknown or expired launch",
                         "This sign-in was not started here, was already used, or took too long. "
                         "Launch the app again from the EHR.")
    if browser_state != state:
        raise SmartError(400, "Launch started in another browser",
                         "The sign-in response does not belong to the launch this browser started "
                         "(state mismatch). Launch the app again.")
    if request.args.get("error"):
        _raise_authorization_error()
    code = request.args.get("code")
    if not code:
        raise SmartError(400, "Missing code", "The authorization response has neither 'code' nor 'error'.")
    token = _exchange_code(pending, code)
    sid = secrets.token_urlsafe(32)
    ttl = SESSION_TTL
    if isinstance(token.get("expires_in"), int) and token["expires_in"] > 0:
        ttl = min(ttl, token["expires_in"])
    entry = AppSession(pending.iss, token["patient"], token["access_token"], str(token.get("scope", "")),
                       pending.patient_hint)
    try:
        _secrets().put(KIND_SESSION, sid, {k: v for k, v in dataclasses.asdict(entry).items() if k != "sid"},
                       ttl)
    except SQLAlchemyError as exc:
        raise _db_unavailable(exc) from None
    session["smart_sid"] = sid
    log.info("smart session started", extra={"iss": pending.iss, "patient_id": token["patient"]})
    return redirect(url_for("smart.app_page"), code=302)


def _pop_pending(state: str) -> PendingLaunch | None:
    """The launch ``state`` names, consumed (single-use), or None; unreadable rows are a clear error."""
    try:
        value = _secrets().pop(KIND_LAUNCH, state)
        return None if value is None else PendingLaunch(**value)
    except SQLAlchemyError as exc:
        raise _db_unavailable(exc) from None
    except (UnreadableSecret, TypeError):
        raise SmartError(400, "Launch unreadable",
                         "This sign-in was started with another secret key than this service instance has "
                         "(HER2CDS_SECRET_KEY differs between instances, or changed on restart). "
                         "Launch the app again.") from None


def _raise_authorization_error() -> None:
    """The authorization server's ``error`` redirect, shown (escaped by the template) and never trusted."""
    error = request.args.get("error", "")[:100]
    detail = request.args.get("error_description", "")[:300]
    raise SmartError(400, "Authorization refused",
                     f"The authorization server answered '{error}'" + (f": {detail}" if detail else "."))


def _exchange_code(pending: PendingLaunch, code: str) -> dict:
    """POST the code and the PKCE verifier to the token endpoint; return the checked token response."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": pending.redirect_uri,
        "client_id": _settings().smart_client_id,
        "code_verifier": pending.verifier,
    }
    try:
        resp = requests.post(pending.token_endpoint, data=form, headers={"Accept": "application/json"},
                             timeout=HTTP_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        raise SmartError(502, "Authorization server unreachable",
                         f"The token request failed ({type(exc).__name__}).") from None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if 400 <= resp.status_code < 500:
        error = body.get("error") if isinstance(body, dict) else None
        raise SmartError(400, "Sign-in refused",
                         f"The authorization server refused the code ({resp.status_code}"
                         + (f", {str(error)[:100]}" if error else "") + "). Launch the app again.")
    if resp.status_code != 200 or not isinstance(body, dict):
        raise SmartError(502, "Bad token response",
                         f"The authorization server's token endpoint answered HTTP {resp.status_code} "
                         "without a JSON token.")
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise SmartError(502, "Bad token response", "The token response has no access_token.")
    token_type = str(body.get("token_type", "bearer")).lower()
    if token_type != "bearer":
        raise SmartError(502, "Bad token response", f"Unsupported token_type '{token_type[:20]}'.")
    patient = body.get("patient")
    if not isinstance(patient, str) or not patient or len(patient) > 64:
        raise SmartError(400, "No patient selected",
                         "The authorization server granted access without a patient in context. "
                         "Launch the app from a patient's chart (or pick a patient when asked).")
    return body


def _current_session() -> AppSession:
    sid = session.get("smart_sid")
    try:
        value = _secrets().get(KIND_SESSION, sid)
        entry = None if value is None else AppSession(**value, sid=sid)
    except SQLAlchemyError as exc:
        raise _db_unavailable(exc) from None
    except (UnreadableSecret, TypeError):
        raise SmartError(401, "Session unreadable",
                         "This browser's session was started with another secret key than this service "
                         "instance has (HER2CDS_SECRET_KEY differs between instances, or changed on restart). "
                         "Launch the app again from the EHR.") from None
    if entry is None:
        raise SmartError(401, "Session expired",
                         "There is no active session for this browser (it expired, or the service restarted "
                         "without a fixed HER2CDS_SECRET_KEY). Launch the app again from the EHR.")
    return entry


@bp.get("/app")
def app_page():
    """The patient's HER2 MBC page."""
    entry = _current_session()
    data = _patient_data(entry)
    return render_template(
        "smart_app.html",
        patient_id=entry.patient,
        iss=entry.iss,
        hint_mismatch=bool(entry.patient_hint and entry.patient_hint != entry.patient),
        patient=data["patient"],
        facts=data["facts"],
        profile_error=data["profile_error"],
        cards=data["cards"],
        cards_error=data["cards_error"],
        findings=data["findings"],
        timeline_url=url_for("smart.timeline_svg"),
        today=data["today"].isoformat(),
    )


@bp.get("/timeline.svg")
def timeline_svg():
    """The treatment timeline of the session's patient, drawn server-side."""
    from .timeline import render_svg

    entry = _current_session()
    data = _patient_data(entry)
    svg = render_svg(data["profile"], data["resources"], data["today"])
    resp = Response(svg, mimetype="image/svg+xml")
    # the SVG carries EHR text: no scripts, no external loads, even if opened directly
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.errorhandler(SmartError)
def _smart_error(err: SmartError):
    log.info("smart error", extra={"status": err.status, "title": err.title})
    return render_template("smart_error.html", title=err.title, message=err.message,
                           request_id=g.get("request_id", "")), err.status


# -- reading the patient and running the pipeline --------------------------------------

def prefetch_queries(patient_id: str) -> dict[str, str]:
    """The discovery prefetch templates with the patient id filled in: the app reads what the hooks read."""
    context = {"patientId": patient_id}
    return {key: render_template_query(template, context) for key, template in PREFETCH.items()}


def _fetch(entry: AppSession) -> tuple[list[dict], list[str]]:
    """All resources of the patient (deduplicated) and the queries that failed, as safe messages."""
    from ..fhir.client import FhirClient

    client = current_app.extensions.get("her2cds.smart.fhir")
    if client is None:
        relaxed = _settings().replace(fhir_connect_timeout=HTTP_TIMEOUT[0], fhir_read_timeout=HTTP_TIMEOUT[1])
        client = current_app.extensions["her2cds.smart.fhir"] = FhirClient(relaxed)
    deadline = time.monotonic() + 30
    results = client.fetch_all(entry.iss, entry.access_token, prefetch_queries(entry.patient), deadline)
    resources, seen, errors = [], set(), []
    for key in PREFETCH:
        result = results.get(key)
        if result is None:
            continue
        if result.error:
            errors.append(f"{key}: {result.error}")
        for res in result.resources:
            ident = (res.get("resourceType"), res.get("id"))
            if ident[1] is not None and ident in seen:
                continue
            seen.add(ident)
            resources.append(res)
    return resources, errors


def _patient_data(entry: AppSession) -> dict:
    """Fetch and run criteria + advice; reused for a minute by this worker (page, then timeline.svg)."""
    cached = _cache().get(entry.sid)
    if cached is not None:
        return cached
    resources, fetch_errors = _fetch(entry)
    if not resources and fetch_errors:
        if all("401" in e for e in fetch_errors):
            raise SmartError(401, "Access expired",
                             "The FHIR server no longer accepts this session's access token. Launch the app again.")
        raise SmartError(502, "FHIR server unavailable",
                         "Nothing could be read from the FHIR server: " + fetch_errors[0])
    today = date.today()
    context = {"patientId": entry.patient, "userId": "Practitioner/smart-app"}
    profile, profile_error = _build_profile(resources, context, today)
    cards, cards_error = _advise(context, resources)
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    data = {
        "resources": resources,
        "patient": _patient_summary(patient),
        "profile": profile,
        "facts": describe_facts(profile, resources),
        "profile_error": profile_error,
        "cards": [c for c in cards if isinstance(c, dict)],
        "cards_error": cards_error,
        "findings": fetch_errors + _profile_findings(profile),
        "today": today,
    }
    if entry.sid:
        _cache().put(entry.sid, data, CACHE_TTL)
    return data


def _knowledge():
    return current_app.extensions.get("her2cds.knowledge")


def _build_profile(resources: list[dict], context: dict, today: date):
    """(profile, None) or (None, why not): the page still renders while criteria is unfinished."""
    try:
        from .. import criteria
        build = criteria.build_profile
    except (ImportError, AttributeError):
        return None, "The patient profile is unavailable: the criteria module is not part of this build."
    knowledge = _knowledge()
    try:
        return build(resources, context, getattr(knowledge, "terminology", None), today), None
    except NotImplementedError:
        return None, "The patient profile is unavailable in this build."
    except Exception:
        log.exception("smart: build_profile failed", extra={"patient_id": context.get("patientId")})
        return None, "The patient profile could not be built from this record (see the service log)."


def _advise(context: dict, resources: list[dict]) -> tuple[list[dict], str | None]:
    """The patient-view cards, exactly as the hook would answer; links back to this app are dropped."""
    try:
        from ..advice import advise
        cards = advise("patient-view", PATIENT_VIEW, context, resources, [], knowledge=_knowledge())
    except NotImplementedError:
        return [], "Recommendations are unavailable in this build."
    except Exception:
        log.exception("smart: advise failed", extra={"patient_id": context.get("patientId")})
        return [], "Recommendations are unavailable: the rules could not be evaluated (see the service log)."
    return list(cards or []), None


# Facts shown first, in this order; the rest follow alphabetically.
KEY_FACTS = [
    "her2.status", "her2.ihc", "her2.ish_group", "hr.status", "er.status", "pr.status", "pik3ca",
    "metastatic", "metastatic.date", "metastatic.sites", "brain_mets", "brain_mets.activity",
    "therapy.line", "taxane.cycles", "meds.active.ingredients", "meds.past.ingredients",
    "disease.progression", "lvef.value", "lvef.days_ago", "lvef.drop", "ecog", "ild",
    "patient.age", "patient.menopausal",
]


def describe_facts(profile, resources: list[dict]) -> list[dict]:
    """Facts as rows: name, value, and each source with its date and what it is."""
    facts = getattr(profile, "facts", None)
    if not facts:
        return []
    index = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources}
    names = [n for n in KEY_FACTS if n in facts] + sorted(n for n in facts if n not in KEY_FACTS)
    rows = []
    for name in names:
        fact = facts[name]
        value = getattr(fact, "value", None)
        sources = []
        for ref in getattr(fact, "refs", ()) or ():
            res = index.get(ref)
            sources.append({"ref": ref, "date": _resource_date(res) if res else "",
                            "what": _resource_label(res) if res else ""})
        rows.append({"name": name, "value": format_value(value, missing="—"), "note": getattr(fact, "note", None) or "",
                     "sources": sources, "key": name in KEY_FACTS})
    return rows


def _resource_date(res: dict) -> str:
    for key in ("effectiveDateTime", "onsetDateTime", "authoredOn", "recordedDate", "issued", "dateAsserted"):
        if isinstance(res.get(key), str):
            return res[key][:10]
    for key in ("effectivePeriod", "onsetPeriod"):
        if isinstance(res.get(key), dict) and isinstance(res[key].get("start"), str):
            return res[key]["start"][:10]
    return ""


def _resource_label(res: dict) -> str:
    for key in ("code", "medicationCodeableConcept"):
        concept = res.get(key)
        if isinstance(concept, dict):
            if concept.get("text"):
                return str(concept["text"])
            for c in concept.get("coding") or []:
                if isinstance(c, dict) and (c.get("display") or c.get("code")):
                    return str(c.get("display") or c.get("code"))
    return str(res.get("resourceType", ""))


def _profile_findings(profile) -> list[str]:
    """The criteria's data-quality findings as 'code: message' lines."""
    out = []
    for f in getattr(profile, "findings", ()) or ():
        code, message = getattr(f, "code", None), getattr(f, "message", None)
        refs = ", ".join(getattr(f, "refs", ()) or ())
        if code:
            out.append(f"{code}: {message or ''}" + (f" ({refs})" if refs else ""))
    return out


def _patient_summary(patient: dict | None) -> dict:
    if not isinstance(patient, dict):
        return {"name": "(Patient resource not readable)", "birth_date": "", "gender": ""}
    name = ""
    for n in patient.get("name") or []:
        if isinstance(n, dict):
            name = n.get("text") or " ".join([*(n.get("given") or []), n.get("family") or ""]).strip()
            if name:
                break
    return {"name": name or f"Patient/{patient.get('id')}", "birth_date": str(patient.get("birthDate", "")),
            "gender": str(patient.get("gender", ""))}
