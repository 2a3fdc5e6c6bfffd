"""The SMART app at HTTP level: launch redirects, PKCE, state, token errors, the page.

A fake authorization server + FHIR server (pytest-httpserver) stands in for
the EHR; the app is driven through Flask's test client, so every redirect
and cookie is visible.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import re
import select
import socket
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug import Response

from cds_service import create_app
from cds_service.smart import cache, oauth, presenter, sessions
from cds_service.smart.errors import SmartError

from shipped import PREFETCH

PATIENT_ID = "smart-p1"
ACCESS_TOKEN = "secret-access-token-4711"

#: The fake EHR listens on loopback, which the SMART app (like the hooks) refuses unless allowed explicitly.
LOOPBACK = {"fhir_allowed_networks": "127.0.0.0/8,::1/128"}


def _patient():
    return {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female", "birthDate": "1968-03-01",
            "name": [{"given": ["Ada"], "family": "Testpatient"}]}


def _her2_obs():
    return {"resourceType": "Observation", "id": "her2-ihc-1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85319-2"}]},
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "effectiveDateTime": "2023-02-01",
            "valueCodeableConcept": {"text": "3+"}}


def _med():
    return {"resourceType": "MedicationStatement", "id": "ms-1", "status": "active",
            "medicationCodeableConcept": {"text": "trastuzumab"},
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "effectivePeriod": {"start": "2023-03-01"}}


def _searchset(*resources):
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r} for r in resources]}


class FakeEhr:
    """Authorization server + FHIR server on one pytest-httpserver; records what the app sent."""

    def __init__(self, httpserver, token_response=None, token_status=200, patient_in_token=True,
                 token_endpoint=None, failing_paths=()):
        self.server = httpserver
        self.iss = httpserver.url_for("/fhir").rstrip("/")
        self.token_requests: list[dict] = []
        self.fhir_auth_headers: list[str | None] = []
        self.challenge: str | None = None
        self.token_status = token_status
        self.token_response = token_response
        self.patient_in_token = patient_in_token
        self.revoked = False
        self.failing_paths = set(failing_paths)
        httpserver.expect_request("/fhir/.well-known/smart-configuration").respond_with_json({
            "authorization_endpoint": httpserver.url_for("/authorize"),
            "token_endpoint": token_endpoint or httpserver.url_for("/token"),
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "launch-standalone", "client-public"],
        })
        httpserver.expect_request("/token", method="POST").respond_with_handler(self._token)
        httpserver.expect_request(re.compile(r"^/fhir/.*")).respond_with_handler(self._fhir)

    def _token(self, request):
        form = request.form.to_dict()
        self.token_requests.append(form)
        if self.token_response is not None:
            return Response(json.dumps(self.token_response), status=self.token_status,
                            content_type="application/json")
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != self.challenge:
            return Response(json.dumps({"error": "invalid_grant", "error_description": "PKCE verification failed"}),
                            status=400, content_type="application/json")
        body = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600,
                "scope": "launch patient/*.read"}
        if self.patient_in_token:
            body["patient"] = PATIENT_ID
        return Response(json.dumps(body), content_type="application/json")

    def _fhir(self, request):
        self.fhir_auth_headers.append(request.headers.get("Authorization"))
        if self.revoked or request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return Response(json.dumps({"resourceType": "OperationOutcome"}), status=401)
        path = request.path
        if path in self.failing_paths:
            return Response("boom", status=500)
        if path == f"/fhir/Patient/{PATIENT_ID}":
            body = _patient()
        elif path == "/fhir/Observation" and "85319-2" in request.query_string.decode():
            body = _searchset(_her2_obs())
        elif path == "/fhir/MedicationStatement":
            body = _searchset(_med())
        else:
            body = _searchset()
        return Response(json.dumps(body), content_type="application/fhir+json")

    def remember_challenge(self, authorize_location: str) -> dict:
        params = {k: v[0] for k, v in parse_qs(urlsplit(authorize_location).query).items()}
        self.challenge = params.get("code_challenge")
        return params


@pytest.fixture
def ehr(httpserver):
    return FakeEhr(httpserver)


def _allowed(httpserver) -> str:
    """The fake EHR's FHIR bases, as the administrator would list them."""
    return ",".join(httpserver.url_for(p).rstrip("/") for p in ("/fhir", "/nosmart", "/plain"))


@pytest.fixture
def app(migrated_db_url, httpserver):
    """The service allowing the fake EHR (the default, no allowed issuers, refuses every launch)."""
    return create_app(auth="disabled", database_url=migrated_db_url, smart_allowed_issuers=_allowed(httpserver),
                      **LOOPBACK)


def _error_text(resp) -> str:
    """The error page's title and message, without the request id (which differs per request)."""
    html = resp.get_data(as_text=True)
    section = html.split('<section class="error" id="error">', 1)[1].split("</section>", 1)[0]
    return re.sub(r"<p class=\"muted\">Request id: [^<]*</p>", "", section).strip()


@pytest.fixture
def smart_log(caplog):
    """The service's log records (its ``her2cds`` logger does not propagate to pytest's root handler)."""
    logger = logging.getLogger("her2cds")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)


def _logged_errors(smart_log) -> str:
    """The ``error`` details the SMART app logged (what the pages leave out)."""
    assert smart_log.records, "no log record captured"
    return " | ".join(str(getattr(r, "error", "")) for r in smart_log.records if r.name == "her2cds.smart")


def _launch(client, ehr, launch="launch-123"):
    query = {"iss": ehr.iss}
    if launch is not None:
        query["launch"] = launch
    resp = client.get("/smart/launch", query_string=query)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    params = ehr.remember_challenge(resp.headers["Location"])
    return resp, params


def _full_flow(client, ehr):
    _, params = _launch(client, ehr)
    resp = client.get("/smart/callback", query_string={"code": "code-1", "state": params["state"]})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert resp.headers["Location"].endswith("/smart/app")
    return params


# -- launch ----------------------------------------------------------------------------

def test_ehr_launch_redirects_to_authorize_with_smart_parameters(client, ehr, httpserver):
    resp, params = _launch(client, ehr, launch="launch-123")
    location = urlsplit(resp.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == httpserver.url_for("/authorize")
    assert params["response_type"] == "code"
    assert params["client_id"] == "her2-cds"
    assert params["redirect_uri"] == "http://localhost/smart/callback"
    assert params["launch"] == "launch-123"
    assert params["aud"] == ehr.iss
    assert "launch" in params["scope"].split()
    assert "patient/Observation.read" in params["scope"].split()
    assert params["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["code_challenge"])
    assert len(params["state"]) >= 22


def test_each_launch_gets_fresh_state_and_challenge(client, ehr):
    _, first = _launch(client, ehr)
    _, second = _launch(client, ehr)
    assert first["state"] != second["state"]
    assert first["code_challenge"] != second["code_challenge"]


def test_standalone_launch_asks_for_launch_patient_scope(client, ehr):
    _, params = _launch(client, ehr, launch=None)
    scopes = params["scope"].split()
    assert "launch/patient" in scopes
    assert "launch" not in scopes
    assert "launch" not in params


def test_configured_client_id_scopes_and_redirect_are_used(migrated_db_url, ehr):
    app = create_app(auth="disabled", database_url=migrated_db_url, smart_client_id="my-app", smart_allowed_issuers=ehr.iss,
                     **LOOPBACK,
                     smart_scopes="launch patient/*.read", smart_redirect_url="https://cds.example.org/smart/callback")
    _, params = _launch(app.test_client(), ehr)
    assert params["client_id"] == "my-app"
    assert params["scope"] == "launch patient/*.read"
    assert params["redirect_uri"] == "https://cds.example.org/smart/callback"


@pytest.mark.parametrize("query, status, text", [
    ({}, 400, "needs an &#39;iss&#39; parameter"),
    ({"iss": "javascript:alert(1)"}, 400, "must be an http(s) URL"),
    ({"iss": "ftp://example.org/fhir"}, 400, "must be an http(s) URL"),
])
def test_launch_rejects_bad_iss_with_html_page(client, query, status, text):
    resp = client.get("/smart/launch", query_string=query)
    assert resp.status_code == status
    assert resp.mimetype == "text/html"
    assert text in resp.get_data(as_text=True)


def test_launch_against_server_without_smart_configuration_is_502_page(client, httpserver, smart_log):
    httpserver.expect_request("/nosmart/.well-known/smart-configuration").respond_with_data("nope", status=404)
    resp = client.get("/smart/launch", query_string={"iss": httpserver.url_for("/nosmart")})
    assert resp.status_code == 502
    assert "could not read a usable SMART configuration" in resp.get_data(as_text=True)
    assert "404" not in _error_text(resp)  # the detail is for the log only
    assert "HTTP 404" in _logged_errors(smart_log)


def test_launch_against_server_without_s256_is_refused(client, httpserver, smart_log):
    httpserver.expect_request("/plain/.well-known/smart-configuration").respond_with_json({
        "authorization_endpoint": httpserver.url_for("/a"), "token_endpoint": httpserver.url_for("/t"),
        "code_challenge_methods_supported": ["plain"]})
    resp = client.get("/smart/launch", query_string={"iss": httpserver.url_for("/plain")})
    assert resp.status_code == 502
    assert "could not read a usable SMART configuration" in resp.get_data(as_text=True)
    assert "PKCE S256 not supported" in _logged_errors(smart_log)


def test_allowed_issuers_setting_blocks_other_servers(migrated_db_url, ehr):
    app = create_app(auth="disabled", database_url=migrated_db_url, **LOOPBACK,
                     smart_allowed_issuers=f"https://ehr.example.org/fhir, {ehr.iss}/")
    client = app.test_client()
    resp = client.get("/smart/launch", query_string={"iss": "http://10.0.0.1/fhir", "launch": "x"})
    assert resp.status_code == 403
    assert "not configured to launch against that FHIR server" in resp.get_data(as_text=True)
    assert client.get("/smart/launch", query_string={"iss": ehr.iss, "launch": "x"}).status_code == 302


# -- callback: state and token ------------------------------------------------------------

def test_full_flow_sends_pkce_verifier_and_renders_the_patient_page(client, ehr):
    params = _full_flow(client, ehr)
    [form] = ehr.token_requests
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "code-1"
    assert form["client_id"] == "her2-cds"
    assert form["redirect_uri"] == params["redirect_uri"]
    assert oauth.pkce_challenge(form["code_verifier"]) == params["code_challenge"]
    assert 43 <= len(form["code_verifier"]) <= 128

    page = client.get("/smart/app")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Ada Testpatient" in html
    assert f'<code id="patient-id">{PATIENT_ID}</code>' in html
    assert 'id="timeline-img"' in html
    assert ACCESS_TOKEN not in html
    # the FHIR server was read with the bearer token, with the discovery prefetch queries
    assert ehr.fhir_auth_headers and set(ehr.fhir_auth_headers) == {f"Bearer {ACCESS_TOKEN}"}


def test_timeline_svg_is_served_for_the_session(client, ehr):
    _full_flow(client, ehr)
    resp = client.get("/smart/timeline.svg")
    assert resp.status_code == 200
    assert resp.mimetype == "image/svg+xml"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    root = ET.fromstring(resp.get_data())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = resp.get_data(as_text=True)
    assert "trastuzumab" in text and "HER2 IHC 3+" in text  # the clinical short name (issue 22)


def test_access_token_is_not_in_the_cookie_nor_the_logs(client, ehr, app, smart_log):
    smart_log.set_level(logging.DEBUG)
    _full_flow(client, ehr)
    client.get("/smart/app")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert ACCESS_TOKEN not in cookie.value
    content = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert ACCESS_TOKEN not in json.dumps(content)
    assert set(content) <= {"smart_sid", "smart_state", "smart_focus_rule"}
    assert any(r.getMessage() == "smart session started" for r in smart_log.records)  # the log was seen
    for record in smart_log.records:
        assert ACCESS_TOKEN not in record.getMessage()
        assert ACCESS_TOKEN not in json.dumps(record.__dict__, default=str)


def test_callback_without_state_is_400(client, ehr):
    _launch(client, ehr)
    resp = client.get("/smart/callback", query_string={"code": "c"})
    assert resp.status_code == 400
    assert "Missing state" in resp.get_data(as_text=True)
    assert ehr.token_requests == []


def test_callback_with_unknown_state_is_400_and_no_token_request(client, ehr):
    _launch(client, ehr)
    resp = client.get("/smart/callback", query_string={"code": "c", "state": "forged"})
    assert resp.status_code == 400
    assert "Unknown or expired launch" in resp.get_data(as_text=True)
    assert ehr.token_requests == []


def test_state_is_single_use(client, ehr):
    params = _full_flow(client, ehr)
    again = client.get("/smart/callback", query_string={"code": "code-1", "state": params["state"]})
    assert again.status_code == 400
    assert len(ehr.token_requests) == 1


def test_state_from_another_browser_is_rejected(app, ehr):
    victim, attacker = app.test_client(), app.test_client()
    _, params = _launch(attacker, ehr)
    resp = victim.get("/smart/callback", query_string={"code": "attacker-code", "state": params["state"]})
    assert resp.status_code == 400
    assert "state mismatch" in resp.get_data(as_text=True)
    assert ehr.token_requests == []


def test_expired_state_is_rejected(client, ehr, app, monkeypatch):
    _, params = _launch(client, ehr)
    real = sessions._now
    monkeypatch.setattr(sessions, "_now", lambda: real() + sessions.STATE_TTL + 1)
    resp = client.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    assert resp.status_code == 400
    assert "took too long" in resp.get_data(as_text=True)


def test_authorization_error_is_shown(client, ehr):
    _, params = _launch(client, ehr)
    resp = client.get("/smart/callback", query_string={
        "state": params["state"], "error": "access_denied", "error_description": "<b>user said no</b>"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "access_denied" in html
    assert "<b>user said no</b>" not in html and "&lt;b&gt;user said no&lt;/b&gt;" in html


def test_wrong_pkce_verifier_is_refused_by_token_endpoint_and_reported(client, ehr):
    _, params = _launch(client, ehr)
    ehr.challenge = "something-else"  # the server now expects another verifier
    resp = client.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    assert resp.status_code == 400
    assert "invalid_grant" in resp.get_data(as_text=True)
    assert client.get("/smart/app").status_code == 401


@pytest.mark.parametrize("token_response, status, text", [
    ({"token_type": "Bearer", "patient": PATIENT_ID}, 502, "no access_token"),
    ({"access_token": "t", "token_type": "MAC", "patient": PATIENT_ID}, 502, "Unsupported token_type"),
    ({"access_token": "t", "token_type": "Bearer"}, 400, "without a patient in context"),
    ({"access_token": "t", "token_type": "Bearer", "patient": ".."}, 502, "not a valid FHIR id"),
    ({"access_token": "t", "token_type": "Bearer", "patient": "../../admin"}, 502, "not a valid FHIR id"),
    ({"access_token": "t", "token_type": "Bearer", "patient": 5}, 502, "not a valid FHIR id"),
    (["not", "an", "object"], 502, "token endpoint could not be used"),
])
def test_bad_token_responses_give_clear_pages(client, httpserver, token_response, status, text):
    ehr = FakeEhr(httpserver, token_response=token_response)
    _, params = _launch(client, ehr)
    resp = client.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    assert resp.status_code == status
    assert resp.mimetype == "text/html"
    assert text in resp.get_data(as_text=True)


def test_token_endpoint_server_error_is_502(client, httpserver, smart_log):
    ehr = FakeEhr(httpserver, token_response={"error": "server_error"}, token_status=500)
    _, params = _launch(client, ehr)
    resp = client.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    assert resp.status_code == 502
    assert "token endpoint could not be used" in resp.get_data(as_text=True)
    assert "500" not in _error_text(resp)
    assert "token endpoint answered HTTP 500" in _logged_errors(smart_log)


# -- the app without a session and the absolute fallback ---------------------------------

@pytest.mark.parametrize("path", ["/smart/app", "/smart/timeline.svg"])
def test_app_without_session_is_401_page(client, path):
    resp = client.get(path)
    assert resp.status_code == 401
    assert resp.mimetype == "text/html"
    assert "Launch the app again" in resp.get_data(as_text=True)


def test_open_starts_a_standalone_launch_and_flags_a_different_patient(client, ehr):
    resp = client.get("/smart/open", query_string={"iss": ehr.iss, "patient": "someone-else"})
    assert resp.status_code == 302
    params = ehr.remember_challenge(resp.headers["Location"])
    assert "launch/patient" in params["scope"].split()
    client.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    html = client.get("/smart/app").get_data(as_text=True)
    assert 'id="hint-mismatch"' in html


def test_open_with_matching_patient_shows_no_warning(client, ehr):
    resp = client.get("/smart/open", query_string={"iss": ehr.iss, "patient": PATIENT_ID})
    params = ehr.remember_challenge(resp.headers["Location"])
    client.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    html = client.get("/smart/app").get_data(as_text=True)
    assert 'id="hint-mismatch"' not in html
    assert "Ada Testpatient" in html


def test_expiring_store_bounds_its_size():
    store = cache.ExpiringStore(max_entries=3)
    for i in range(10):
        store.put(f"k{i}", i, ttl=60)
    assert len(store) == 3
    assert store.get("k9") == 9


def test_launch_lost_by_the_service_says_why(client, ehr, tmp_path):
    """As if the callback reached an instance on another database (misconfigured) or the database was reset."""
    _, params = _launch(client, ehr)
    other = create_app(auth="disabled", database_url=f"sqlite:///{tmp_path / 'other.db'}", **LOOPBACK,
                       secret_key=client.application.secret_key)
    stranger = other.test_client()
    _move_cookie(client, stranger)
    resp = stranger.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "Launch expired" in html and "share" in html and "one database" in html
    assert ehr.token_requests == []


def test_authorization_error_without_state_is_still_explained(client):
    resp = client.get("/smart/callback", query_string={"error": "invalid_client"})
    assert resp.status_code == 400
    assert "invalid_client" in resp.get_data(as_text=True)


def test_fhir_server_rejecting_the_token_ends_the_session_page(client, ehr):
    _full_flow(client, ehr)
    ehr.revoked = True
    resp = client.get("/smart/app")
    assert resp.status_code == 401
    assert "no longer accepts" in resp.get_data(as_text=True)


def test_fhir_server_down_is_a_502_page(client, ehr, httpserver):
    _full_flow(client, ehr)
    httpserver.handlers.clear()
    httpserver.expect_request(re.compile(r"^/fhir/.*")).respond_with_data("boom", status=500)
    resp = client.get("/smart/app")
    assert resp.status_code == 502
    assert "Nothing could be read from the FHIR server" in resp.get_data(as_text=True)


# -- the database-backed store: any worker, any instance ------------------------------------

SECRET = "test-secret-key-shared-by-all-workers"


def _worker(ehr, migrated_db_url, secret_key=SECRET, **settings):
    """One gunicorn worker (or instance): its own app object on the shared database, allowing the fake EHR."""
    settings.setdefault("smart_allowed_issuers", ehr.iss)
    return create_app(auth="disabled", database_url=migrated_db_url, secret_key=secret_key, **{**LOOPBACK, **settings})


def _move_cookie(src, dst, value=None):
    """The browser's cookie, sent to whichever worker the load balancer picks next."""
    dst.set_cookie("session", value if value is not None else src.get_cookie("session").value)


def _rows(app, kind=None):
    from sqlalchemy import select

    from cds_service.storage import smart_session

    query = select(smart_session)
    if kind:
        query = query.where(smart_session.c.kind == kind)
    with app.extensions["her2cds.store"].engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def test_launch_started_on_one_worker_completes_on_another(migrated_db_url, ehr):
    first, second = _worker(ehr, migrated_db_url), _worker(ehr, migrated_db_url)
    browser1, browser2 = first.test_client(), second.test_client()
    _, params = _launch(browser1, ehr)
    _move_cookie(browser1, browser2)
    resp = browser2.get("/smart/callback", query_string={"code": "code-1", "state": params["state"]})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert resp.headers["Location"].endswith("/smart/app")
    [form] = ehr.token_requests
    assert oauth.pkce_challenge(form["code_verifier"]) == params["code_challenge"]

    _move_cookie(browser2, browser1)
    page = browser1.get("/smart/app")
    assert page.status_code == 200, page.get_data(as_text=True)
    assert "Ada Testpatient" in page.get_data(as_text=True)
    svg = browser2.get("/smart/timeline.svg")  # the picture on the other worker: re-read, not cached there
    assert svg.status_code == 200 and "trastuzumab" in svg.get_data(as_text=True)
    assert set(ehr.fhir_auth_headers) == {f"Bearer {ACCESS_TOKEN}"}


def test_state_cannot_be_replayed_on_another_worker(migrated_db_url, ehr):
    first, second = _worker(ehr, migrated_db_url), _worker(ehr, migrated_db_url)
    browser1, browser2 = first.test_client(), second.test_client()
    _, params = _launch(browser1, ehr)
    started = browser1.get_cookie("session").value  # the cookie as it was before the callback
    assert browser1.get("/smart/callback", query_string={"code": "c", "state": params["state"]}).status_code == 302
    _move_cookie(browser1, browser2, started)  # replay the callback URL with the pre-callback cookie
    again = browser2.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    assert again.status_code == 400
    assert "Launch expired" in again.get_data(as_text=True)
    assert len(ehr.token_requests) == 1


def test_concurrent_callbacks_with_one_state_exchange_the_code_once(migrated_db_url, ehr):
    from concurrent.futures import ThreadPoolExecutor

    workers = [_worker(ehr, migrated_db_url) for _ in range(2)]
    browsers = [w.test_client() for w in workers]
    _, params = _launch(browsers[0], ehr)
    _move_cookie(browsers[0], browsers[1])
    barrier = threading.Barrier(2)

    def call(browser):
        barrier.wait()
        return browser.get("/smart/callback", query_string={"code": "c", "state": params["state"]}).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(call, browsers))
    assert statuses == [302, 400]
    assert len(ehr.token_requests) == 1


def test_pop_secret_is_single_use_under_concurrency(backend_url):
    """Single-use must hold on SQLite and PostgreSQL (see test_durability.py for the server)."""
    from concurrent.futures import ThreadPoolExecutor

    from cds_service.storage import Store

    stores = [Store(backend_url) for _ in range(4)]  # separate engines, as in separate processes
    key = uuid.uuid4().hex
    stores[0].put_secret("launch", key, b"ciphertext", 60)
    barrier = threading.Barrier(8)

    def pop(i):
        barrier.wait()
        return stores[i % 4].pop_secret("launch", key)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(pop, range(8)))
    assert results.count(b"ciphertext") == 1
    assert results.count(None) == 7
    for store in stores:
        store.dispose()


def test_database_rows_hold_no_clear_text_token_verifier_or_ids(migrated_db_url, ehr):
    app = _worker(ehr, migrated_db_url)
    browser = app.test_client()
    _full_flow(browser, ehr)
    sid = app.session_interface.get_signing_serializer(app).loads(browser.get_cookie("session").value)["smart_sid"]
    _, pending = _launch(app.test_client(), ehr)  # a second launch, left pending
    rows = _rows(app)
    assert sorted(r["kind"] for r in rows) == ["launch", "session"]
    [form] = ehr.token_requests
    for row in rows:
        text = json.dumps(row, default=str)
        for secret in (ACCESS_TOKEN, form["code_verifier"], sid, pending["state"], PATIENT_ID):
            assert secret not in text
        assert row["payload"].startswith("gAAAAA")  # a Fernet token
    session_row = next(r for r in rows if r["kind"] == "session")
    assert session_row["key"] == sessions.SecretStore.row_key("session", sid)


def test_different_secret_key_cannot_read_the_session(migrated_db_url, ehr):
    first, other = _worker(ehr, migrated_db_url), _worker(ehr, migrated_db_url, secret_key="another-secret")
    browser, stranger = first.test_client(), other.test_client()
    _full_flow(browser, ehr)
    # the plain case: the other instance cannot even verify the cookie
    _move_cookie(browser, stranger)
    resp = stranger.get("/smart/app")
    assert resp.status_code == 401 and resp.mimetype == "text/html"
    assert "Launch the app again" in resp.get_data(as_text=True)
    # and even with a cookie it accepts, the row does not decrypt under its key: a clear page, not a 500
    content = first.session_interface.get_signing_serializer(first).loads(browser.get_cookie("session").value)
    _move_cookie(browser, stranger, other.session_interface.get_signing_serializer(other).dumps(content))
    for path in ("/smart/app", "/smart/timeline.svg"):
        resp = stranger.get(path)
        assert resp.status_code == 401 and resp.mimetype == "text/html"
        assert "another secret key" in resp.get_data(as_text=True)
    assert browser.get("/smart/app").status_code == 200  # the right key still reads it


def test_different_secret_key_cannot_complete_a_launch(migrated_db_url, ehr):
    first, other = _worker(ehr, migrated_db_url), _worker(ehr, migrated_db_url, secret_key="another-secret")
    browser, stranger = first.test_client(), other.test_client()
    _, params = _launch(browser, ehr)
    content = first.session_interface.get_signing_serializer(first).loads(browser.get_cookie("session").value)
    _move_cookie(browser, stranger, other.session_interface.get_signing_serializer(other).dumps(content))
    resp = stranger.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    assert "Launch unreadable" in resp.get_data(as_text=True)
    assert ehr.token_requests == []


def test_a_row_moved_onto_another_session_does_not_decrypt(migrated_db_url, ehr):
    """Ciphertext is bound to its row key: copying a victim's row onto one's own id gains nothing."""
    from sqlalchemy import update

    from cds_service.storage import smart_session

    app = _worker(ehr, migrated_db_url)
    victim, attacker = app.test_client(), app.test_client()
    _full_flow(victim, ehr)
    _full_flow(attacker, ehr)
    serializer = app.session_interface.get_signing_serializer(app)
    victim_key, attacker_key = (
        sessions.SecretStore.row_key("session", serializer.loads(c.get_cookie("session").value)["smart_sid"])
        for c in (victim, attacker))
    rows = {r["key"]: r for r in _rows(app, "session")}
    with app.extensions["her2cds.store"].engine.begin() as conn:
        conn.execute(update(smart_session).where(smart_session.c.key == attacker_key)
                     .values(payload=rows[victim_key]["payload"]))
    resp = attacker.get("/smart/app")
    assert resp.status_code == 401
    assert "Session unreadable" in resp.get_data(as_text=True)
    assert victim.get("/smart/app").status_code == 200


def test_expired_rows_are_purged_on_write(migrated_db_url, ehr, monkeypatch):
    app = _worker(ehr, migrated_db_url)
    browser = app.test_client()
    _, old = _launch(browser, ehr)
    assert len(_rows(app, "launch")) == 1
    real = sessions._now
    monkeypatch.setattr(sessions, "_now", lambda: real() + sessions.STATE_TTL + 1)
    _, new = _launch(app.test_client(), ehr)
    [row] = _rows(app, "launch")
    assert row["key"] == sessions.SecretStore.row_key("launch", new["state"])


def test_store_purges_expired_rows_and_bounds_live_ones(backend_url):
    from sqlalchemy import select

    from cds_service.storage import Store, smart_session

    store = Store(backend_url)
    run = uuid.uuid4().hex[:12]  # the PostgreSQL database is shared between runs
    a, b, c = (f"{run}-{x}" for x in "abc")
    store.put_secret("launch", a, b"A", ttl=10, now=100)
    assert store.get_secret("launch", a, now=109) == b"A"
    assert store.get_secret("session", a, now=109) is None  # kinds do not mix
    assert store.get_secret("launch", a, now=110) is None
    assert store.pop_secret("launch", a, now=110) is None  # expired: gone, not usable
    store.put_secret("launch", b, b"B", ttl=10, now=100)
    store.put_secret("session", c, b"C", ttl=100, now=120)  # a write purges expired rows of every kind
    with store.engine.connect() as conn:
        keys = [r.key for r in conn.execute(select(smart_session.c.key).where(smart_session.c.key.like(f"{run}%")))]
    assert keys == [c]
    kind = f"t{run}"  # a kind of its own, so the bound counts only this test's rows
    for i in range(5):
        store.put_secret(kind, f"{run}-k{i}", b"x", ttl=60 + i, now=200, max_live=3)
    assert [store.get_secret(kind, f"{run}-k{i}", now=201) for i in range(5)] == [None, None, b"x", b"x", b"x"]
    store.dispose()


def test_session_ends_when_the_token_expires(client, ehr, monkeypatch):
    _full_flow(client, ehr)
    real = sessions._now
    monkeypatch.setattr(sessions, "_now", lambda: real() + 3600 + 1)  # the token's expires_in
    resp = client.get("/smart/app")
    assert resp.status_code == 401
    assert "Session expired" in resp.get_data(as_text=True)


def test_database_failure_is_a_clear_page_not_a_500(client, ehr, app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def broken(*args, **kwargs):
        raise OperationalError("INSERT ...", {"payload": "x"}, Exception("database is locked"))

    monkeypatch.setattr(app.extensions["her2cds.store"], "put_secret", broken)
    resp = client.get("/smart/launch", query_string={"iss": ehr.iss, "launch": "l"})
    assert resp.status_code == 503 and resp.mimetype == "text/html"
    assert "cannot reach its database" in resp.get_data(as_text=True)


def test_fernet_key_is_derived_from_the_secret_key():
    key = sessions.derive_fernet_key("s3cret")
    assert key == sessions.derive_fernet_key(b"s3cret")
    assert key != sessions.derive_fernet_key("other")
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert b"s3cret" not in base64.urlsafe_b64decode(key)


@pytest.mark.parametrize("public_url, secure, samesite", [
    ("", False, "Lax"),
    ("http://cds.local:8080", False, "Lax"),
    ("https://cds.example.org", True, "None"),
])
def test_session_cookie_flags(migrated_db_url, ehr, public_url, secure, samesite):
    app = _worker(ehr, migrated_db_url, public_url=public_url)
    resp = app.test_client().get("/smart/launch", query_string={"iss": ehr.iss, "launch": "l"})
    assert resp.status_code == 302
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert f"SameSite={samesite}" in header
    assert ("Secure" in header) is secure


# -- which FHIR servers: no launch to hosts nobody allowed (issue 13, item 1) ---------------------

@pytest.mark.parametrize("path", ["/smart/launch", "/smart/open"])
def test_without_allowed_issuers_every_launch_is_refused_and_nothing_is_fetched(migrated_db_url, ehr, httpserver, path):
    client = create_app(auth="disabled", database_url=migrated_db_url).test_client()  # the default settings
    resp = client.get(path, query_string={"iss": ehr.iss, "launch": "l", "patient": PATIENT_ID})
    assert resp.status_code == 403 and resp.mimetype == "text/html"
    assert "SMART launch not configured" in resp.get_data(as_text=True)
    # the setting's name is for the administrator (the log), not the page a clinician reads (issue 22)
    assert "HER2CDS_" not in resp.get_data(as_text=True) and "administrator" in resp.get_data(as_text=True)
    assert httpserver.log == []  # not even the SMART configuration was requested


def test_an_issuer_not_on_the_list_is_refused_without_any_request(client, httpserver):
    resp = client.get("/smart/launch", query_string={"iss": httpserver.url_for("/other-fhir"), "launch": "l"})
    assert resp.status_code == 403
    assert "not configured to launch against that FHIR server" in resp.get_data(as_text=True)
    assert httpserver.log == []


def test_allowed_issuers_compare_scheme_and_host_case_insensitively():
    policy = oauth.IssuerPolicy(frozenset({oauth.normalize_base("HTTPS://EHR.example.org/fhir/")}))
    assert policy.check("https://ehr.example.org/fhir") == "https://ehr.example.org/fhir"
    assert policy.check("https://Ehr.Example.org/fhir/") == "https://Ehr.Example.org/fhir"
    with pytest.raises(SmartError) as err:
        policy.check("https://ehr.example.org/FHIR-other")
    assert err.value.status == 403


@pytest.mark.parametrize("iss", [
    "http://127.0.0.1:8090/fhir", "http://127.1.2.3/fhir", "http://localhost:8090/fhir", "http://LOCALHOST./fhir",
    "http://[::1]:8090/fhir",
])
def test_development_mode_allows_loopback(iss):
    assert oauth.IssuerPolicy(frozenset(), dev_loopback=True).check(iss) == iss


@pytest.mark.parametrize("iss", [
    "http://10.0.0.1/fhir", "http://192.168.1.10/fhir", "http://169.254.169.254/latest", "http://0.0.0.0:8080/fhir",
    "http://2130706433/fhir", "http://0x7f000001/fhir", "http://[fd00:ec2::254]/fhir", "http://[::ffff:10.0.0.1]/",
    "http://metadata.google.internal/", "http://localhost.attacker.example/fhir", "https://ehr.example.org/fhir",
])
def test_development_mode_allows_nothing_but_loopback(iss):
    with pytest.raises(SmartError) as err:
        oauth.IssuerPolicy(frozenset(), dev_loopback=True).check(iss)
    assert err.value.status == 403


def test_development_mode_launches_against_a_loopback_fhir_server(migrated_db_url, ehr):
    client = create_app(auth="disabled", database_url=migrated_db_url, smart_dev_loopback=True).test_client()
    _launch(client, ehr)  # 302 to the authorize endpoint
    assert client.get("/smart/launch", query_string={"iss": "http://10.0.0.1/fhir"}).status_code == 403


@pytest.mark.parametrize("raw, value", [("true", True), ("ON", True), ("1", True), ("false", False), ("", False)])
def test_development_mode_setting_is_off_unless_said(raw, value):
    from cds_service.config import Settings, from_env

    assert Settings().smart_dev_loopback is False
    assert from_env({"HER2CDS_SMART_DEV_LOOPBACK": raw}).smart_dev_loopback is value


@pytest.mark.parametrize("env", [{"HER2CDS_SMART_DEV_LOOPBACK": "maybe"}, {"HER2CDS_SMART_HTTP_DEADLINE": "0"},
                                 {"HER2CDS_SMART_FETCH_BUDGET": "-1"}])
def test_bad_smart_settings_fail_at_start(env):
    from cds_service.config import ConfigError, from_env

    with pytest.raises(ConfigError):
        from_env(env)


# -- bounded exchanges: size cap, total deadline, one text for every network outcome ----------------

class DripServer:
    """A raw TCP server that answers each request by dripping bytes, and records whether the client hung up.

    ``head`` is sent at once after the request; then ``piece`` every
    ``interval`` seconds, ``count`` times at most (so a test without a
    deadline would still end), watching for the client closing its side.
    """

    def __init__(self, head: bytes = b"", piece: bytes = b"H", interval: float = 0.02, count: int = 1000,
                 tls=None):
        self.head, self.piece, self.interval, self.count, self.tls = head, piece, interval, count, tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[dict] = []
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            record = {"sent": 0, "hung_up": False, "done": threading.Event()}
            self.connections.append(record)
            thread = threading.Thread(target=self._drip, args=(conn, record), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _drip(self, conn, record):
        with conn:
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(65536)
                    if not data:
                        raise ConnectionError
                    request += data
                conn.sendall(self.head)
                for _ in range(self.count):
                    conn.sendall(self.piece)
                    record["sent"] += len(self.piece)
                    readable, _, _ = select.select([conn], [], [], self.interval)
                    if readable and conn.recv(65536) == b"":
                        raise ConnectionError
            except OSError:  # ConnectionError and ssl.SSLError included: the client went away
                record["hung_up"] = True
            record["done"].set()

    def wait(self, seconds: float = 30) -> None:
        """Until every connection ended (bounded: the drip itself ends after ``count`` pieces)."""
        for record in self.connections:
            record["done"].wait(seconds)

    def close(self):
        self.sock.close()


@pytest.fixture
def drip():
    servers = []

    def make(**kwargs) -> DripServer:
        servers.append(DripServer(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"


def _bounded_app(migrated_db_url, *issuers, deadline=0.3, **settings):
    return create_app(auth="disabled", database_url=migrated_db_url, smart_allowed_issuers=",".join(issuers),
                      smart_http_deadline=deadline, **{**LOOPBACK, **settings})


@pytest.mark.parametrize("kind", ["status line", "headers", "body"])
def test_slow_drip_smart_configuration_is_cut_at_the_deadline(migrated_db_url, drip, kind, smart_log):
    head, piece = {"status line": (b"", b"H"), "headers": (b"HTTP/1.1 200 OK\r\n", b"X"),
                   "body": (JSON_HEAD, b" ")}[kind]
    server = drip(head=head, piece=piece, interval=0.02, count=1500)  # 30 s of drip, the deadline is 0.3 s
    client = _bounded_app(migrated_db_url, server.url + "/fhir").test_client()
    resp = client.get("/smart/launch", query_string={"iss": server.url + "/fhir", "launch": "l"})
    assert resp.status_code == 502
    assert "could not read a usable SMART configuration" in resp.get_data(as_text=True)
    server.wait()
    [conn] = server.connections
    assert conn["hung_up"] and conn["sent"] < 1500  # the service ended the exchange, not the server
    assert "deadline" in _logged_errors(smart_log)


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, as PEM files (cryptography is a dependency already)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@pytest.mark.parametrize("head", [b"", JSON_HEAD], ids=["status line", "body"])
def test_slow_drip_over_tls_is_cut_at_the_deadline(tmp_path, drip, head):
    from cds_service.smart.transport import BoundedHttp, TransportError

    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = drip(head=head, piece=b" ", interval=0.02, count=1500, tls=tls)
    http = BoundedHttp(deadline=0.3, max_bytes=oauth.MAX_OAUTH_BYTES, networks=[ipaddress.ip_network("127.0.0.1/32")])
    http.session.verify = cert
    with pytest.raises(TransportError, match="deadline"):
        http.get_json(server.url + "/fhir/.well-known/smart-configuration")
    server.wait()
    [conn] = server.connections
    assert conn["hung_up"] and conn["sent"] < 1500


def test_oversized_smart_configuration_is_cut_at_the_cap(migrated_db_url, drip, smart_log):
    server = drip(head=JSON_HEAD, piece=b" " * 65536, interval=0, count=200)  # 13 MB, the cap is 256 KB
    client = _bounded_app(migrated_db_url, server.url + "/fhir", deadline=10).test_client()
    resp = client.get("/smart/launch", query_string={"iss": server.url + "/fhir", "launch": "l"})
    assert resp.status_code == 502
    server.wait()
    [conn] = server.connections
    assert conn["hung_up"] and conn["sent"] < 200 * 65536
    assert "byte cap" in _logged_errors(smart_log)


def test_declared_oversized_answer_is_not_read(migrated_db_url, httpserver, smart_log):
    httpserver.expect_request("/big/.well-known/smart-configuration").respond_with_data(
        b"{}" + b" " * (oauth.MAX_OAUTH_BYTES + 10), content_type="application/json")
    client = _bounded_app(migrated_db_url, httpserver.url_for("/big"), deadline=10).test_client()
    resp = client.get("/smart/launch", query_string={"iss": httpserver.url_for("/big"), "launch": "l"})
    assert resp.status_code == 502
    assert "Content-Length" in _logged_errors(smart_log)


def test_error_page_does_not_tell_an_open_port_from_a_closed_one(migrated_db_url, httpserver, drip, smart_log):
    """Closed port, open port answering 404, HTML, a redirect, nothing at all, or dripping: one page."""
    closed = socket.create_server(("127.0.0.1", 0))
    closed_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there any more
    silent = drip(head=b"", piece=b"", interval=0.05, count=200)  # accepts, never answers
    slow = drip(head=JSON_HEAD, piece=b" ", interval=0.02, count=1500)
    httpserver.expect_request("/e404/.well-known/smart-configuration").respond_with_data("no", status=404)
    httpserver.expect_request("/html/.well-known/smart-configuration").respond_with_data("<html>", status=200)
    httpserver.expect_request("/moved/.well-known/smart-configuration").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/"})
    targets = [closed_url + "/fhir", silent.url + "/fhir", slow.url + "/fhir", httpserver.url_for("/e404"),
               httpserver.url_for("/html"), httpserver.url_for("/moved")]
    client = _bounded_app(migrated_db_url, *targets).test_client()
    pages = set()
    for iss in targets:
        resp = client.get("/smart/launch", query_string={"iss": iss, "launch": "l"})
        pages.add((resp.status_code, _error_text(resp)))
    assert len(pages) == 1, pages
    [(status, _)] = pages
    assert status == 502
    logged = _logged_errors(smart_log)  # the administrator still sees what happened
    assert "ConnectionError" in logged and "HTTP 404" in logged and "HTTP 302" in logged and "deadline" in logged


def test_slow_drip_token_endpoint_is_cut_at_the_deadline(migrated_db_url, httpserver, drip):
    server = drip(head=JSON_HEAD, piece=b" ", interval=0.02, count=1500)
    ehr = FakeEhr(httpserver, token_endpoint=server.url + "/token")
    client = _bounded_app(migrated_db_url, ehr.iss, server.url).test_client()  # its origin listed: plain http allowed
    _, params = _launch(client, ehr)
    resp = client.get("/smart/callback", query_string={"code": "c", "state": params["state"]})
    assert resp.status_code == 502
    assert "token endpoint could not be used" in resp.get_data(as_text=True)
    server.wait()
    [conn] = server.connections
    assert conn["hung_up"] and conn["sent"] < 1500


def test_slow_drip_fhir_reads_are_cut_at_the_deadline(drip):
    """Every read of the page (eight parallel queries) ends by the deadline; nothing readable → one page."""
    from cds_service.config import Settings
    from cds_service.smart.fetch import fhir_client, read_patient

    server = drip(head=b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n\r\n", piece=b" ",
                  interval=0.02, count=1500)
    client = fhir_client(Settings(smart_http_deadline=0.3))
    entry = sessions.AppSession(server.url + "/fhir", PATIENT_ID, ACCESS_TOKEN)
    with pytest.raises(SmartError) as err:
        read_patient(client, entry, budget=5, templates=PREFETCH, networks=(ipaddress.ip_network("127.0.0.0/8"),))
    assert err.value.status == 502
    assert "Nothing could be read from the FHIR server" in err.value.message
    assert ACCESS_TOKEN not in (err.value.detail or "")
    server.wait()
    assert len(server.connections) == len(PREFETCH)
    assert all(c["hung_up"] and c["sent"] < 1500 for c in server.connections)


@pytest.mark.integration
def test_slow_drip_launch_with_the_default_deadline_is_cut(migrated_db_url, drip):
    """The attack as reported (one byte per second), against the default 10 s deadline; ~10 s."""
    server = drip(head=b"HTTP/1.1 200 OK\r\n", piece=b"X", interval=1.0, count=60)
    client = create_app(auth="disabled", database_url=migrated_db_url,
                        smart_allowed_issuers=server.url + "/fhir", **LOOPBACK).test_client()
    resp = client.get("/smart/launch", query_string={"iss": server.url + "/fhir", "launch": "l"})
    assert resp.status_code == 502
    server.wait(90)
    [conn] = server.connections
    assert conn["hung_up"] and conn["sent"] < 60


def test_a_failed_query_is_a_finding_without_the_network_outcome(migrated_db_url, httpserver):
    ehr = FakeEhr(httpserver, failing_paths={"/fhir/Condition"})
    client = _bounded_app(migrated_db_url, ehr.iss, deadline=10).test_client()
    _full_flow(client, ehr)
    page = client.get("/smart/app")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    findings = html.split('id="findings"', 1)[1]
    assert "could not be read from the FHIR server" in findings
    assert "500" not in findings and "failed" not in findings


# -- the page: one profile, a pure view-model ------------------------------------------------------

def test_the_profile_is_built_once_per_page_and_timeline(client, ehr, monkeypatch):
    import cds_service.core.criteria as criteria

    calls = []
    real = criteria.build_profile

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(criteria, "build_profile", counting)  # where advice would look it up
    monkeypatch.setattr(presenter, "build_profile", counting)
    _full_flow(client, ehr)
    assert client.get("/smart/app").status_code == 200
    assert client.get("/smart/timeline.svg").status_code == 200
    assert len(calls) == 1


def test_presenter_builds_the_page_from_plain_resources(app):
    """No Flask, no HTTP: resources in, what the page shows out."""
    import datetime as dt

    from cds_service.core.criteria import Finding

    unread = (Finding("data-missing", "'conditions' could not be read from the FHIR server.", ("prefetch:conditions",)),)
    page = presenter.build_page([_patient(), _her2_obs(), _med()], patient_id=PATIENT_ID, iss="https://ehr.example/fhir",
                                knowledge=app.extensions["her2cds.knowledge"], today=dt.date(2024, 6, 1),
                                patient_hint="someone-else", read_findings=unread)
    assert page.patient == {"name": "Ada Testpatient", "birth_date": "1 Mar 1968", "gender": "female"}
    assert page.hint_mismatch is True
    her2 = next(f for f in page.facts if f["name"] == "her2.status")
    assert her2["key"] is True
    assert {"ref": "Observation/her2-ihc-1", "date": "1 Feb 2023", "what": "HER2 [Presence] in Breast cancer specimen by Immune stain"} in her2["sources"]
    assert page.findings[0] == "data-missing: 'conditions' could not be read from the FHIR server."
    assert page.profile is not None and page.profile_error is None and page.cards_error is None
    assert all(isinstance(c, dict) and c.get("summary") for c in page.cards)
    assert [f["name"] for f in page.facts if f["key"]] == [n for n in presenter.KEY_FACTS
                                                           if n in {f["name"] for f in page.facts}]


def test_presenter_says_so_when_the_profile_cannot_be_built(app, monkeypatch):
    import datetime as dt

    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(presenter, "build_profile", broken)
    page = presenter.build_page([_patient()], patient_id=PATIENT_ID, iss="https://ehr.example/fhir",
                                knowledge=app.extensions["her2cds.knowledge"], today=dt.date(2024, 6, 1))
    assert page.profile is None and page.facts == [] and page.cards == []
    assert "could not be built" in page.profile_error
    assert "need the patient profile" in page.cards_error


@pytest.mark.parametrize("resource, date, what", [
    ({"resourceType": "Observation", "effectiveDateTime": "2023", "code": {"text": "HER2 IHC"}}, "2023", "HER2 IHC"),
    ({"resourceType": "Condition", "onsetPeriod": {"start": "2022-05-03T10:00:00Z"},
      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "94222008", "display": "Bone mets"}]}},
     "2022-05-03", "Bone mets"),
    ({"resourceType": "MedicationRequest", "authoredOn": "not a date", "medicationCodeableConcept":
      {"coding": [{"code": ["not", "text"]}, {"code": "224905"}]}}, "", "224905"),
    ({"resourceType": "Observation", "code": "not a concept"}, "", "Observation"),
])
def test_presenter_reads_dates_and_labels_totally(resource, date, what):
    assert presenter.resource_date(resource) == date
    assert presenter.Words(None).resource(resource) == what


# -- the SMART app's outbound calls: the hooks' egress policy (issue 21) -------------------------------

def _listener(host: str):
    """A TCP listener on ``host`` that records every connection it accepts (it answers nothing)."""
    sock = socket.create_server((host, 0))
    accepted = []

    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return sock, accepted


@pytest.mark.parametrize("where", ["https://127.0.0.2:{port}/token", "https://169.254.169.254/token",
                                   "http://127.0.0.2:{port}/token", "https://[::ffff:127.0.0.2]:{port}/token"])
def test_a_token_endpoint_on_a_refused_address_never_receives_the_code(migrated_db_url, httpserver, where, smart_log):
    """The allowed issuer's configuration names a token endpoint inside: the code and verifier stay here."""
    sock, accepted = _listener("127.0.0.2")
    try:
        ehr = FakeEhr(httpserver, token_endpoint=where.format(port=sock.getsockname()[1]))
        client = create_app(auth="disabled", database_url=migrated_db_url, smart_allowed_issuers=ehr.iss,
                            fhir_allowed_networks="127.0.0.1/32,::1/128").test_client()  # the EHR's address only
        resp = client.get("/smart/launch", query_string={"iss": ehr.iss, "launch": "l"})
        if resp.status_code == 302:  # refused at connect time rather than at discovery
            params = ehr.remember_challenge(resp.headers["Location"])
            resp = client.get("/smart/callback", query_string={"code": "the-code", "state": params["state"]})
        assert resp.status_code == 502 and resp.mimetype == "text/html"
        assert accepted == []
        logged = _logged_errors(smart_log)
        assert "refused" in logged or "metadata" in logged or "loopback" in logged, logged
    finally:
        sock.close()


def test_an_allowed_issuer_resolving_to_loopback_is_not_contacted_without_an_allowed_network(migrated_db_url, ehr,
                                                                                             httpserver):
    """With the development mode off and no allowed network, a listed name that resolves to 127.0.0.1 is refused:
    no discovery, and no FHIR read with a session's bearer token."""
    app = create_app(auth="disabled", database_url=migrated_db_url, smart_allowed_issuers=ehr.iss)
    client = app.test_client()
    resp = client.get("/smart/launch", query_string={"iss": ehr.iss, "launch": "l"})
    assert resp.status_code == 502
    sid = "sid-for-a-session-made-elsewhere"
    app.extensions["her2cds.smart"]["secrets"].save_session(
        sid, sessions.AppSession(ehr.iss, PATIENT_ID, ACCESS_TOKEN), None)
    with client.session_transaction("/smart/app") as browser:  # the session exists on the SMART pages only
        browser["smart_sid"] = sid
    resp = client.get("/smart/app")
    assert resp.status_code == 502 and "FHIR server unavailable" in resp.get_data(as_text=True)
    assert httpserver.log == []  # neither the configuration nor a read reached the server
    assert ehr.fhir_auth_headers == []


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.7.7", "169.254.169.254", "::1", "fd00:ec2::254"])
def test_the_smart_reads_check_the_address_after_dns(migrated_db_url, monkeypatch, address):
    """An allowed https issuer whose name resolves inside: the reads are refused after resolution, never connected."""
    from test_fhir_egress import Resolver
    from cds_service.fhir import egress

    iss = "https://ehr.internal.test/fhir"
    app = create_app(auth="disabled", database_url=migrated_db_url, smart_allowed_issuers=iss)
    resolver = Resolver({"ehr.internal.test": [address]})
    app.extensions["her2cds.smart"]["fhir"].session.get_adapter(iss).resolver = resolver
    connects = []
    monkeypatch.setattr(egress._PinnedConnectionMixin, "_new_conn", lambda self: connects.append(self.host))
    client = app.test_client()
    app.extensions["her2cds.smart"]["secrets"].save_session(
        "sid-1", sessions.AppSession(iss, PATIENT_ID, ACCESS_TOKEN), None)
    with client.session_transaction("/smart/app") as browser:  # the session exists on the SMART pages only
        browser["smart_sid"] = "sid-1"
    resp = client.get("/smart/app")
    assert resp.status_code == 502
    assert resolver.calls and set(resolver.calls) == {"ehr.internal.test"}
    assert connects == []


@pytest.mark.parametrize("patient", ["..", ".", "../../admin", "a/b", ""])
def test_a_session_patient_that_is_no_fhir_id_is_never_read(client, ehr, app, patient):
    app.extensions["her2cds.smart"]["secrets"].save_session(
        "sid-2", sessions.AppSession(ehr.iss, patient, ACCESS_TOKEN), None)
    with client.session_transaction("/smart/app") as browser:  # the session exists on the SMART pages only
        browser["smart_sid"] = "sid-2"
    resp = client.get("/smart/app")
    assert resp.status_code == 400 and "not a valid FHIR id" in resp.get_data(as_text=True)
    assert ehr.fhir_auth_headers == []


def test_plain_http_goes_only_to_origins_listed_with_http():
    policy = oauth.IssuerPolicy(frozenset({"http://ehr.lan:8080/fhir", "https://ehr.example.org/fhir"}))
    assert policy.endpoint_problem("http://ehr.lan:8080/auth/token") is None
    assert policy.endpoint_problem("https://auth.example.org/token") is None
    assert policy.endpoint_problem("http://auth.example.org/token") is not None
    assert policy.endpoint_problem("http://ehr.lan:8081/token") is not None
    assert policy.endpoint_problem("http://ehr.example.org/token") is not None
    assert policy.endpoint_problem("ftp://ehr.lan/token") is not None
    assert oauth.IssuerPolicy(frozenset(), dev_loopback=True).endpoint_problem("http://127.0.0.1:9/t") is None
    assert oauth.IssuerPolicy(frozenset()).endpoint_problem("http://127.0.0.1:9/t") is not None


# -- SMART launches do not take the hooks' capacity; floods cannot evict sign-ins (issue 21) ----------------

def test_an_issuers_configuration_is_fetched_once_per_ttl(client, ehr, httpserver):
    for _ in range(5):
        _launch(client, ehr)
    discoveries = [r for r, _ in httpserver.log if r.path.endswith("/.well-known/smart-configuration")]
    assert len(discoveries) == 1


def test_a_dripping_issuer_holds_at_most_the_configured_threads(migrated_db_url, drip):
    """Six launches at once against a dripping allowed issuer: two wait (502 at the deadline), four get an
    immediate 503 page, and only two connections are ever opened; the worker's other threads stay free."""
    server = drip(head=b"HTTP/1.1 200 OK\r\n", piece=b"X", interval=0.02, count=1500)
    app = _bounded_app(migrated_db_url, server.url + "/fhir", deadline=1.0, smart_max_concurrent=2)
    barrier = threading.Barrier(6)
    answers = []

    def launch():
        barrier.wait()
        resp = app.test_client().get("/smart/launch", query_string={"iss": server.url + "/fhir", "launch": "l"})
        answers.append((resp.status_code, resp.headers.get("Retry-After")))

    threads = [threading.Thread(target=launch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(a[0] for a in answers) == [502, 502, 503, 503, 503, 503]
    assert all(retry == "5" for status, retry in answers if status == 503)
    assert len(server.connections) == 2
    # the failure is remembered briefly: the next launch costs no outbound wait at all
    resp = app.test_client().get("/smart/launch", query_string={"iss": server.url + "/fhir", "launch": "l"})
    assert resp.status_code == 502 and len(server.connections) == 2


def test_a_flood_of_anonymous_launches_does_not_evict_a_real_sign_in(app, ehr, monkeypatch):
    """The attack as reported, scaled down: the table bound is 30, one address sends 60 launches."""
    monkeypatch.setattr(sessions, "MAX_ENTRIES", 30)
    user = app.test_client()
    _, params = _launch(user, ehr)  # a real user starts signing in ...
    flood = app.test_client()
    statuses = [flood.get("/smart/launch", query_string={"iss": ehr.iss, "launch": "x"},
                          environ_base={"REMOTE_ADDR": "203.0.113.66"}).status_code for _ in range(60)]
    assert statuses.count(302) == sessions.MAX_LAUNCHES_PER_ADDRESS
    assert set(statuses[sessions.MAX_LAUNCHES_PER_ADDRESS:]) == {429}
    resp = user.get("/smart/callback", query_string={"code": "code-1", "state": params["state"]})  # ... and finishes
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/smart/app")


def test_a_full_launch_table_refuses_new_launches_instead_of_evicting(app, ehr, monkeypatch):
    monkeypatch.setattr(sessions, "MAX_ENTRIES", 3)
    users = [app.test_client() for _ in range(4)]
    params = []
    for i, user in enumerate(users[:3]):
        resp = user.get("/smart/launch", query_string={"iss": ehr.iss, "launch": "l"},
                        environ_base={"REMOTE_ADDR": f"198.51.100.{i}"})
        params.append(ehr.remember_challenge(resp.headers["Location"]))
    resp = users[3].get("/smart/launch", query_string={"iss": ehr.iss, "launch": "l"},
                        environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert resp.status_code == 503 and "too many sign-ins" in resp.get_data(as_text=True)
    for user, p in zip(users[:3], params):
        ehr.challenge = p["code_challenge"]
        assert user.get("/smart/callback", query_string={"code": "c", "state": p["state"]}).status_code == 302


def test_launch_rows_hold_no_client_address(app, ehr):
    client = app.test_client()
    client.get("/smart/launch", query_string={"iss": ehr.iss, "launch": "l"}, environ_base={"REMOTE_ADDR": "192.0.2.55"})
    [row] = _rows(app, "launch")
    assert "192.0.2.55" not in json.dumps(row, default=str) and len(row["owner"]) == 64


# -- /smart/* headers and the state bound to its browser (issue 21) -----------------------------------------

@pytest.mark.parametrize("path", ["/smart/launch", "/smart/app", "/smart/callback", "/smart/timeline.svg"])
def test_every_smart_response_forbids_scripts_framing_and_sniffing(client, path):
    resp = client.get(path)
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert "script-src" not in csp or "script-src 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_the_configured_ehr_origins_may_frame_the_app(migrated_db_url, httpserver):
    app = create_app(auth="disabled", database_url=migrated_db_url, smart_frame_ancestors="https://ehr.example.org")
    resp = app.test_client().get("/smart/app")
    assert "frame-ancestors https://ehr.example.org" in resp.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in resp.headers


def test_a_foreign_browser_cannot_use_up_a_victims_state(app, ehr):
    victim, attacker = app.test_client(), app.test_client()
    _, params = _launch(victim, ehr)
    assert attacker.get("/smart/callback", query_string={"code": "x", "state": params["state"]}).status_code == 400
    resp = victim.get("/smart/callback", query_string={"code": "code-1", "state": params["state"]})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/smart/app")


def test_smart_log_lines_carry_no_patient_id(client, ehr, smart_log):
    ehr.failing_paths = {"/fhir/Condition"}
    _full_flow(client, ehr)
    assert client.get("/smart/app").status_code == 200
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in smart_log.records if r.name.startswith("her2cds"))
    assert "smart session started" in logged and "FHIR reads incomplete" in logged
    assert PATIENT_ID not in logged


def test_the_cookie_session_is_opened_on_the_smart_pages_only(app, client):
    """The hooks and the other endpoints never use the session: it is not opened there (a cost on every
    hook call), and no answer outside /smart sets or varies on the cookie, even when the browser sends one."""
    from flask import request

    interface = app.session_interface
    for path, opened in (("/smart", True), ("/smart/app", True), ("/smart/timeline.svg", True),
                         ("/smartx", False), ("/cds-services", False), ("/cds-services/her2-mbc-order-sign", False),
                         ("/readyz", False), ("/", False)):
        with app.test_request_context(path):
            assert (interface.open_session(app, request) is not None) is opened, path
    with client.session_transaction("/smart/app") as browser:
        browser["smart_sid"] = "sid-x"
    resp = client.get("/cds-services")
    assert resp.status_code == 200
    assert "Set-Cookie" not in resp.headers and "Cookie" not in resp.headers.get("Vary", "")
