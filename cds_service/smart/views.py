"""The Flask blueprint of the SMART app: thin routes over oauth, sessions, fetch and presenter.

Every failure is a ``SmartError`` rendered as an HTML page with its status;
its ``detail`` (what exactly went wrong) goes only to the service log, with
the request id the page shows.  Nothing logs the token or patient data
beyond ids.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from contextlib import contextmanager
from datetime import date

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from ..protocol.discovery import prefetch_templates
from . import oauth
from .cache import ExpiringStore
from .errors import SmartError
from .fetch import fhir_client, read_patient
from .presenter import Page, Words, build_page
from .sessions import AppSession, PendingLaunch, SecretStore
from .timeline import render_svg
from .transport import BoundedHttp

log = logging.getLogger("her2cds.smart")

bp = Blueprint("smart", __name__, url_prefix="/smart")  # templates: cds_service/templates/smart_*.html

CACHE_TTL = 60       # seconds a worker reuses the page it built (page → timeline.svg)
CACHE_ENTRIES = 256  # the per-process page cache holds clinical data: keep it small
CONFIG_FAILURE_TTL = 10  # seconds a failed discovery is remembered (a dripping issuer costs one wait per 10 s)


class SmartPageSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened for the SMART app's own pages (``/smart/...``) only.

    Why: the hooks, discovery, feedback and the probes never read or write the
    session, yet Flask opened it on every request (a signing serializer built,
    the cookies parsed): about 0.03 ms of each warm hook call, which the
    benchmark floor does not pay.  Elsewhere the request gets Flask's null
    session (empty; writing to it raises rather than setting a cookie), and no
    response outside ``/smart`` sets, refreshes or varies on the cookie — as
    before, since nothing there touched it.  The test is on the path because
    Flask opens the session before it matches the URL to a blueprint.
    """

    def open_session(self, app, request):
        path, prefix = request.path, bp.url_prefix
        if path != prefix and not path.startswith(prefix + "/"):
            return None
        return super().open_session(app, request)


@bp.record_once
def _init(state) -> None:
    """Per app: the stores, the bounded HTTP clients, the issuer policy, and the session cookie flags.

    Cookie: always HttpOnly (no script needs it).  Behind HTTPS the app may be
    shown in an EHR iframe, which is a cross-site context: the cookie then
    needs ``SameSite=None`` and, as browsers require for that, ``Secure``.
    Over plain http ``SameSite=None`` is refused by browsers, so ``Lax``
    (the app then opens in its own window/tab).  The ``state`` ↔ browser
    binding, not SameSite, is what stops login CSRF.
    """
    app = state.app
    settings = app.config["SETTINGS"]
    issuers = oauth.IssuerPolicy.from_settings(settings)
    app.extensions["her2cds.smart"] = {
        "secrets": SecretStore(app),
        "cache": ExpiringStore(max_entries=CACHE_ENTRIES),
        "http": BoundedHttp(settings.smart_http_deadline, oauth.MAX_OAUTH_BYTES, issuers.networks),
        "fhir": fhir_client(settings),
        "issuers": issuers,
        # per issuer: its checked SMART configuration, or the page its discovery failed with
        "configurations": ExpiringStore(max_entries=max(16, len(issuers.allowed) * 2)),
        # request threads that may wait on another server at once (the rest stay for hook calls)
        "outbound": threading.BoundedSemaphore(settings.smart_max_concurrent),
    }
    app.session_interface = SmartPageSessions()
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if settings.public_url.strip().lower().startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["SESSION_COOKIE_SAMESITE"] = "None"
    else:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"


def _part(name: str):
    return current_app.extensions["her2cds.smart"][name]


def _settings():
    return current_app.config["SETTINGS"]


def _redirect_uri() -> str:
    settings = _settings()
    if settings.smart_redirect_url:
        return settings.smart_redirect_url
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/smart/callback"
    return url_for("smart.callback", _external=True)


# -- launch -------------------------------------------------------------------------------

@bp.get("/launch")
def launch():
    """EHR launch (iss + launch) or standalone launch (iss only)."""
    iss = _part("issuers").check(request.args.get("iss"))
    launch_token = request.args.get("launch") or None
    if launch_token is not None and len(launch_token) > 2000:
        raise SmartError(400, "Invalid launch", "The 'launch' parameter is too long.")
    return _start_authorization(iss, launch_token, patient_hint=None)


@bp.get("/open")
def open_absolute():
    """The ``absolute`` card-link fallback: a standalone launch at ``iss``; ``patient`` is only a hint.

    The authorization server decides which patient the user may see;
    ``patient`` is compared with the patient the token grants, never used to
    read data.
    """
    iss = _part("issuers").check(request.args.get("iss"))
    hint = request.args.get("patient") or None
    if hint is not None and len(hint) > 64:
        raise SmartError(400, "Invalid patient", "The 'patient' parameter is not a FHIR id.")
    return _start_authorization(iss, None, patient_hint=hint)


@contextmanager
def _outbound():
    """A slot for waiting on another server; none free → a 503 page at once, not a queued thread.

    Why: each exchange may take up to ``smart_http_deadline``; 16 anonymous
    launches against a dripping allowed issuer once held every worker thread,
    and a hook call took 8.6 s instead of 10 ms.  At most
    ``smart_max_concurrent`` request threads per worker wait for the SMART app.
    """
    slots = _part("outbound")
    if not slots.acquire(blocking=False):
        raise SmartError(503, "Service busy",
                         "The service is waiting on the EHR's servers for other sign-ins right now. "
                         "Try again in a moment.", detail="SMART outbound slots all in use")
    try:
        yield
    finally:
        slots.release()


def _configuration(iss: str) -> dict:
    """``iss``'s SMART configuration: from this worker's cache (``smart_config_ttl``), else discovered.

    A failed discovery is remembered for ``CONFIG_FAILURE_TTL`` seconds, so a
    flood of launches against a failing issuer costs one outbound wait, not one each.
    """
    cache = _part("configurations")
    cached = cache.get(iss)
    if isinstance(cached, SmartError):
        raise cached
    if cached is not None:
        return cached
    try:
        with _outbound():
            conf = oauth.discover(_part("http"), iss, _part("issuers"))
    except SmartError as err:
        if err.status == 502:
            cache.put(iss, err, min(CONFIG_FAILURE_TTL, _settings().smart_config_ttl))
        raise
    if _settings().smart_config_ttl > 0:
        cache.put(iss, conf, _settings().smart_config_ttl)
    return conf


def _start_authorization(iss: str, launch_token: str | None, patient_hint: str | None):
    """Discover the endpoints, remember state → PKCE verifier server-side, bind state to this browser."""
    conf = _configuration(iss)
    verifier, challenge = oauth.pkce_pair()
    state = secrets.token_urlsafe(24)
    redirect_uri = _redirect_uri()
    _part("secrets").save_launch(state, PendingLaunch(iss, conf["token_endpoint"], verifier, redirect_uri,
                                                      patient_hint), request.remote_addr)
    session["smart_state"] = state
    params = {
        "response_type": "code",
        "client_id": _settings().smart_client_id,
        "redirect_uri": redirect_uri,
        "scope": oauth.scopes(_settings().smart_scopes, standalone=launch_token is None),
        "state": state,
        "aud": iss,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if launch_token is not None:
        params["launch"] = launch_token
    log.info("smart launch started", extra={"iss": iss, "ehr_launch": launch_token is not None})
    return redirect(oauth.authorize_url(conf["authorization_endpoint"], params), code=302)


# -- callback -----------------------------------------------------------------------------

@bp.get("/callback")
def callback():
    """The authorization server's redirect: check state, exchange the code, start the app session.

    ``state`` must be known, fresh, unused *and* the one this browser started.
    """
    state = request.args.get("state")
    if not state and request.args.get("error"):
        raise _authorization_error()
    if not state:
        raise SmartError(400, "Missing state", "The authorization response has no 'state'; start the app again.")
    browser_state = session.get("smart_state")
    if browser_state != state:
        # checked before the launch is consumed: a foreign browser presenting a victim's state must not
        # use it up (the victim's own callback still works)
        raise SmartError(400, "Unknown or expired launch",
                         "This sign-in was not started in this browser (state mismatch), was already used, "
                         "or took too long. Launch the app again from the EHR.")
    session.pop("smart_state", None)
    pending = _part("secrets").pop_launch(state)
    if pending is None:
        # this browser did start the launch, but the database has no live record of it
        raise SmartError(400, "Launch expired",
                         "This sign-in took too long, or the service lost it (its instances do not share "
                         "one database, or the database was reset; see docs/smart-app.md). "
                         "Launch the app again.")
    if request.args.get("error"):
        raise _authorization_error()
    code = request.args.get("code")
    if not code:
        raise SmartError(400, "Missing code", "The authorization response has neither 'code' nor 'error'.")
    with _outbound():
        token = oauth.exchange_code(_part("http"), pending.token_endpoint, {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "client_id": _settings().smart_client_id,
            "code_verifier": pending.verifier,
        }, _part("issuers"))
    sid = secrets.token_urlsafe(32)
    app_context = read_app_context(token.get("appContext"))
    entry = AppSession(pending.iss, token["patient"], token["access_token"], str(token.get("scope", "")),
                       pending.patient_hint or app_context.get("patient"))
    if app_context.get("rule"):
        session["smart_focus_rule"] = app_context["rule"]
    else:
        session.pop("smart_focus_rule", None)
    _part("secrets").save_session(sid, entry, token.get("expires_in"))
    session["smart_sid"] = sid
    log.info("smart session started", extra={"iss": pending.iss})  # no patient id in the SMART app's log
    return redirect(url_for("smart.app_page"), code=302)


def read_app_context(value) -> dict:
    """The card link's ``appContext`` as the EHR passed it back: ``{"patient": id, "rule": id}``, or {}.

    It is only ever a hint (which card to show first, which patient the card
    was about); anything else or anything oversized is ignored.
    """
    if not isinstance(value, str) or len(value) > 500:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: data[k] for k in ("patient", "rule") if isinstance(data.get(k), str) and 0 < len(data[k]) <= 64}


def _authorization_error() -> SmartError:
    """The authorization server's ``error`` redirect, shown (escaped by the template) and never trusted."""
    error = request.args.get("error", "")[:100]
    detail = request.args.get("error_description", "")[:300]
    return SmartError(400, "Authorization refused",
                      f"The authorization server answered '{error}'" + (f": {detail}" if detail else "."))


# -- the page -------------------------------------------------------------------------------

@bp.get("/app")
def app_page():
    """The patient's HER2 MBC page."""
    page = _page(_part("secrets").load_session(session.get("smart_sid")))
    return render_template("smart_app.html", page=page, timeline_url=url_for("smart.timeline_svg"))


@bp.get("/timeline.svg")
def timeline_svg():
    """The treatment timeline of the session's patient, drawn server-side from the page's profile."""
    page = _page(_part("secrets").load_session(session.get("smart_sid")))
    words = Words(current_app.extensions["her2cds.knowledge"])
    resp = Response(render_svg(page.profile, page.today, words=words), mimetype="image/svg+xml")
    # the SVG carries EHR text: no scripts, no external loads, even if opened directly
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _page(entry: AppSession) -> Page:
    """Read, assess and present once; reused for a minute by this worker (page, then timeline.svg)."""
    cache = _part("cache")
    page = cache.get(entry.sid)
    if page is not None:
        return page
    knowledge = current_app.extensions["her2cds.knowledge"]
    with _outbound():
        record = read_patient(_part("fhir"), entry, _settings().smart_fetch_budget,
                              prefetch_templates(knowledge), _part("issuers").networks)
    if record.failures:
        log.warning("smart: FHIR reads incomplete", extra={
            "request_id": g.get("request_id"), "iss": entry.iss,
            "error": "; ".join(f"{k}: {v}" for k, v in record.failures.items())})
    page = build_page(record.resources, patient_id=entry.patient, iss=entry.iss,
                      knowledge=knowledge, today=date.today(),
                      patient_hint=entry.patient_hint, read_findings=record.findings,
                      empty_queries=record.empty, focus_rule=session.get("smart_focus_rule"))
    if entry.sid:
        cache.put(entry.sid, page, CACHE_TTL)
    return page


@bp.after_request
def _headers(resp):
    """Every /smart/* response: no script, no framing except by the configured EHR origins, no sniffing."""
    ancestors = _settings().smart_frame_ancestors.strip() or "'none'"
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'none'; "
                            f"base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}")
    if ancestors == "'none'":
        resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    return resp


@bp.errorhandler(SmartError)
def _smart_error(err: SmartError):
    level = logging.WARNING if err.status >= 500 else logging.INFO
    log.log(level, "smart error", extra={"status": err.status, "title": err.title, "error": err.detail,
                                         "request_id": g.get("request_id", "")})
    resp = Response(render_template("smart_error.html", title=err.title, message=err.message,
                                    request_id=g.get("request_id", "")), status=err.status, mimetype="text/html")
    if err.status in (429, 503):
        resp.headers["Retry-After"] = "60" if err.status == 429 else "5"
    return resp
