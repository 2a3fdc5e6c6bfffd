"""CDS client JWT authentication (issue 5): the bad-token table, good tokens, config errors, replay."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from pathlib import Path

import jwt
import pytest
from flask import g

from cds_service import create_app
from cds_service.auth import WWW_AUTHENTICATE
from cds_service.config import ConfigError
from cds_service.auth.jwt_tokens import generate_private_key, mint_token, private_key_pem, public_jwk
from cds_service.logs import JsonFormatter

from conftest import empty_prefetch, hook_request
from log_capture import capture_log
from store_rows import audit_rows

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_KEYS = ROOT / "tests" / "data" / "cds-hooks-sandbox-keys"
SANDBOX_ISSUERS = ROOT / "cds_service" / "issuers" / "trusted-issuers.sandbox.json"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"

DISCOVERY = "http://localhost/cds-services"
SERVICE = "her2-mbc-patient-view"
HOOK_URL = f"http://localhost/cds-services/{SERVICE}"
EXPECTED_401 = {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "login", "diagnostics": "Authentication required"}]}


class Keys:
    """Key pairs of the test issuers (made once: RSA generation is slow)."""

    def __init__(self):
        self.es = generate_private_key("ES384")
        self.rs = generate_private_key("RS384")
        self.other_es = generate_private_key("ES384")
        self.es_pem = private_key_pem(self.es)
        self.rs_pem = private_key_pem(self.rs)
        self.other_pem = private_key_pem(self.other_es)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def remote_jwks(httpserver, keys):
    """A JWKS served over HTTP, as an EHR publishes it."""
    httpserver.expect_request("/jwks.json").respond_with_json({"keys": [public_jwk(keys.es, "remote-1", "ES384")]})
    return httpserver.url_for("/jwks.json")


def _issuers(keys: Keys, remote_url: str) -> dict:
    rs_jwk = public_jwk(keys.rs, "rs-1", "RS384")
    del rs_jwk["alg"]  # many JWK Sets omit alg; RS384 must still verify
    return {
        "urn:test:es": {"jwks": {"keys": [public_jwk(keys.es, "es-1", "ES384")]}},
        "urn:test:rs": {"jwks": {"keys": [rs_jwk]}},
        "urn:test:remote": {"jwks_url": remote_url},
        "urn:test:tenants": {"jwks": {"keys": [public_jwk(keys.es, "es-t", "ES384")]}, "tenants": ["hosp-a"]},
    }


@pytest.fixture
def issuer_file(tmp_path, keys, remote_jwks) -> Path:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps(_issuers(keys, remote_jwks)))
    return path


@pytest.fixture
def secured_app(migrated_db_url, issuer_file):
    app = create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(issuer_file))
    _add_whoami(app)
    return app


@pytest.fixture
def secured(secured_app):
    return secured_app.test_client()


def _add_whoami(app):
    """A test-only route under /cds-services that shows what auth stored on g.client."""
    app.add_url_rule("/cds-services/_whoami", "whoami", lambda: {"client": g.client})


def es_token(keys, aud=DISCOVERY, **kw):
    return mint_token(keys.es_pem, "es-1", "urn:test:es", aud, alg="ES384", **kw)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(aud=DISCOVERY, iss="urn:test:es"):
    now = int(time.time())
    return {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}


def unsigned_token(keys) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'es-1'})}.{_b64(_claims())}."


def hs256_token(keys) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the issuer's *public* key."""
    secret = json.dumps(public_jwk(keys.es, "es-1", "ES384")).encode()
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'es-1'})}.{_b64(_claims())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def wrong_key_token(keys) -> str:
    return mint_token(keys.other_pem, "es-1", "urn:test:es", DISCOVERY)


def missing_claim_token(keys, claim) -> str:
    """mint_token always sets every claim, so sign by hand without one."""
    claims = _claims()
    del claims[claim]
    return jwt.encode(claims, keys.es_pem, algorithm="ES384", headers={"kid": "es-1"})


def wrong_typ_token(keys) -> str:
    return jwt.encode(_claims(), keys.es_pem, algorithm="ES384", headers={"kid": "es-1", "typ": "at+jwt"})


BAD_TOKENS = {
    "unsigned (alg none)": lambda k, url: unsigned_token(k),
    "HS256 with the public key as secret": lambda k, url: hs256_token(k),
    "expired": lambda k, url: es_token(k, now=time.time() - 400, ttl=300),
    "future iat": lambda k, url: es_token(k, now=time.time() + 3600),
    "iat older than jwt_max_age": lambda k, url: es_token(k, now=time.time() - 2000, ttl=10_000),
    "wrong aud": lambda k, url: es_token(k, aud="https://evil.example/cds-services"),
    "aud of another endpoint": lambda k, url: es_token(k, aud=HOOK_URL),
    "unknown iss": lambda k, url: mint_token(k.es_pem, "es-1", "urn:test:stranger", DISCOVERY),
    "untrusted jku": lambda k, url: mint_token(k.es_pem, "evil-1", "urn:test:remote", DISCOVERY,
                                               jku=url.replace("/jwks.json", "/evil-jwks.json")),
    "unknown kid": lambda k, url: mint_token(k.es_pem, "nope", "urn:test:es", DISCOVERY),
    "signed by another key": lambda k, url: wrong_key_token(k),
    "RS384 header on an EC key": lambda k, url: mint_token(k.rs_pem, "es-1", "urn:test:es", DISCOVERY, alg="RS384"),
    "missing jti": lambda k, url: missing_claim_token(k, "jti"),
    "missing exp": lambda k, url: missing_claim_token(k, "exp"),
    "tenant not allowed": lambda k, url: mint_token(k.es_pem, "es-t", "urn:test:tenants", DISCOVERY, tenant="x"),
    "tenant missing": lambda k, url: mint_token(k.es_pem, "es-t", "urn:test:tenants", DISCOVERY),
    "typ not JWT": lambda k, url: wrong_typ_token(k),
    "garbage": lambda k, url: "abc.def.ghi",
    "huge": lambda k, url: "a" * 20_000,
}


def assert_401(resp):
    assert resp.status_code == 401
    assert resp.get_json() == EXPECTED_401
    assert resp.headers["WWW-Authenticate"] == WWW_AUTHENTICATE == 'Bearer realm="her2-cds"'


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_token_is_401_without_detail(secured, keys, remote_jwks, httpserver, name):
    token = BAD_TOKENS[name](keys, remote_jwks)
    assert_401(secured.get("/cds-services", headers=bearer(token)))
    # the untrusted jku (and everything else here) is never fetched
    assert not any("evil" in req.path for req, _ in httpserver.log)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b",
                                    "Token abc"])
def test_missing_or_malformed_authorization_header_is_401(secured, header):
    headers = {} if header is None else {"Authorization": header}
    assert_401(secured.get("/cds-services", headers=headers))


def test_replayed_jti_is_401(secured, keys):
    token = es_token(keys)
    assert secured.get("/cds-services", headers=bearer(token)).status_code == 200
    assert_401(secured.get("/cds-services", headers=bearer(token)))


@pytest.mark.parametrize("alg,pem_attr,kid,iss", [
    ("ES384", "es_pem", "es-1", "urn:test:es"),
    ("RS384", "rs_pem", "rs-1", "urn:test:rs"),
])
def test_good_token_is_200(secured, keys, alg, pem_attr, kid, iss):
    token = mint_token(getattr(keys, pem_attr), kid, iss, DISCOVERY, alg=alg)
    resp = secured.get("/cds-services", headers=bearer(token))
    assert resp.status_code == 200
    assert len(resp.get_json()["services"]) == 3


def test_keys_fetched_from_jwks_url_once_and_jku_equal_to_it_is_accepted(secured, keys, remote_jwks, httpserver):
    for jku in (None, remote_jwks, None):
        token = mint_token(keys.es_pem, "remote-1", "urn:test:remote", DISCOVERY, jku=jku)
        assert secured.get("/cds-services", headers=bearer(token)).status_code == 200
    assert len(httpserver.log) == 1  # cached by the one PyJWKClient for that URL


def test_aud_may_be_an_array(secured, keys):
    token = es_token(keys, aud=["https://other.example/x", DISCOVERY])
    assert secured.get("/cds-services", headers=bearer(token)).status_code == 200


def test_tenant_on_the_list_is_accepted(secured, keys):
    token = mint_token(keys.es_pem, "es-t", "urn:test:tenants", "http://localhost/cds-services/_whoami",
                       tenant="hosp-a")
    resp = secured.get("/cds-services/_whoami", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.get_json()["client"] == {"iss": "urn:test:tenants", "tenant": "hosp-a", "sub": None}


def test_hook_call_needs_a_token_for_its_own_url_and_audit_names_the_issuer(secured, secured_app, keys):
    body = hook_request(prefetch=empty_prefetch())
    assert_401(secured.post(f"/cds-services/{SERVICE}", json=body))
    assert_401(secured.post(f"/cds-services/{SERVICE}", json=body, headers=bearer(es_token(keys))))
    resp = secured.post(f"/cds-services/{SERVICE}", json=body, headers=bearer(es_token(keys, aud=HOOK_URL)))
    assert resp.status_code == 200, resp.get_json()
    rows = audit_rows(secured_app.extensions["her2cds.store"])
    assert rows[-1]["client_iss"] == "urn:test:es"


def test_feedback_needs_a_token(secured, keys):
    assert_401(secured.post(f"/cds-services/{SERVICE}/feedback", json={"feedback": []}))


def test_public_url_sets_the_audience_behind_a_proxy(migrated_db_url, issuer_file, keys):
    app = create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(issuer_file),
                     public_url="https://cds.example.org/")
    client = app.test_client()
    assert_401(client.get("/cds-services", headers=bearer(es_token(keys))))  # http://localhost/… no longer
    ok = es_token(keys, aud="https://cds.example.org/cds-services")
    assert client.get("/cds-services", headers=bearer(ok)).status_code == 200


def test_open_routes_need_no_token(secured):
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code in (200, 503)  # readiness is not auth's business
    preflight = secured.options("/cds-services/her2-mbc-order-select", headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()


def test_401_carries_cors_headers_so_browsers_can_read_it(secured):
    resp = secured.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert resp.status_code == 401
    assert resp.headers.get("Access-Control-Allow-Origin") in ("*", "https://sandbox.cds-hooks.org")


@pytest.fixture
def auth_log():
    with capture_log("her2cds.auth") as handler:
        yield handler


def test_reason_is_logged_with_request_id_but_never_the_token(secured, keys, auth_log):
    token = es_token(keys, aud="https://evil.example/cds-services")
    resp = secured.get("/cds-services", headers={**bearer(token), "X-Request-Id": "req-42"})
    assert_401(resp)
    assert resp.headers["X-Request-Id"] == "req-42"
    assert "aud" not in resp.get_data(as_text=True)
    lines = [JsonFormatter().format(r) for r in auth_log.records]
    assert lines, "the rejection must be logged"
    line = json.loads(lines[-1])
    assert line["request_id"] == "req-42"
    assert "aud does not match" in line["reason"]
    signature = token.rsplit(".", 1)[1]
    for text in lines:
        assert token not in text and signature not in text and token.split(".")[1] not in text


def test_replay_is_rejected_by_a_second_instance_on_the_same_database(migrated_db_url, issuer_file, keys):
    """Two workers/instances (or one restarted) share the replay record through the database."""
    first = create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(issuer_file))
    token = es_token(keys)
    assert first.test_client().get("/cds-services", headers=bearer(token)).status_code == 200
    first.extensions["her2cds.store"].dispose()
    second = create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(issuer_file))
    assert_401(second.test_client().get("/cds-services", headers=bearer(token)))
    assert second.test_client().get("/cds-services", headers=bearer(es_token(keys))).status_code == 200


# -- the public CDS Hooks sandbox: opt-in only --------------------------------------------------

def sandbox_token(aud: str) -> str:
    """Exactly what the sandbox sends: ES384, its kid and jku, exp = iat + 300."""
    pem = (SANDBOX_KEYS / "ecprivkey.pem").read_bytes()
    return mint_token(pem, SANDBOX_KID, SANDBOX_ISS, aud, alg="ES384", ttl=300, jku=SANDBOX_JKU)


def test_sandbox_token_accepted_when_the_sandbox_file_is_configured(migrated_db_url, issuer_file):
    spec = os.pathsep.join([str(issuer_file), str(SANDBOX_ISSUERS)])
    client = create_app(auth="required", database_url=migrated_db_url, trusted_issuers=spec).test_client()
    assert client.get("/cds-services", headers=bearer(sandbox_token(DISCOVERY))).status_code == 200
    body = hook_request(prefetch=empty_prefetch())
    resp = client.post(f"/cds-services/{SERVICE}", json=body, headers=bearer(sandbox_token(HOOK_URL)))
    assert resp.status_code == 200, resp.get_json()


def test_sandbox_token_rejected_by_default(secured):
    assert_401(secured.get("/cds-services", headers=bearer(sandbox_token(DISCOVERY))))


def test_sandbox_file_holds_the_published_public_key_only():
    entry = json.loads(SANDBOX_ISSUERS.read_text())[SANDBOX_ISS]
    published = json.loads((SANDBOX_KEYS / "jwks.json").read_text())
    assert entry["jwks"] == published
    assert all("d" not in k for k in entry["jwks"]["keys"])
    assert entry["jku_allowlist"] == [SANDBOX_JKU]


# -- modes and start-up --------------------------------------------------------------------------

def test_disabled_mode_needs_no_token_and_says_so_in_discovery(migrated_db_url):
    client = create_app(auth="disabled", database_url=migrated_db_url).test_client()
    resp = client.get("/cds-services")
    assert resp.status_code == 200
    assert all("DISABLED" in s["usageRequirements"] for s in resp.get_json()["services"])


def test_required_mode_discovery_describes_the_jwt(secured, keys):
    services = secured.get("/cds-services", headers=bearer(es_token(keys))).get_json()["services"]
    assert all("JWT" in s["usageRequirements"] and "DISABLED" not in s["usageRequirements"] for s in services)


def test_auth_is_required_by_default(migrated_db_url, monkeypatch):
    monkeypatch.delenv("HER2CDS_AUTH", raising=False)
    monkeypatch.delenv("HER2CDS_TRUSTED_ISSUERS", raising=False)
    client = create_app(database_url=migrated_db_url).test_client()
    assert_401(client.get("/cds-services"))


def test_example_issuer_file_loads(migrated_db_url):
    create_app(auth="required", database_url=migrated_db_url,
               trusted_issuers=str(ROOT / "cds_service" / "issuers" / "trusted-issuers.example.json"))


def _jwk(keys):
    return public_jwk(keys.es, "k1", "ES384")


BROKEN_FILES = {
    "not json": "{not json",
    "not an object": "[]",
    "no issuers": "{}",
    "issuer without keys": {"urn:x": {}},
    "typo in member": {"urn:x": {"jwks_uri": "https://x.example/jwks"}},
    "plain http to another host": {"urn:x": {"jwks_url": "http://x.example/jwks"}},
    "file url": {"urn:x": {"jwks_url": "file:///etc/passwd"}},
    "symmetric key": {"urn:x": {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}}},
    "private key": "PRIVATE",
    "key without kid": "NOKID",
    "empty tenants": "TENANTS",
    "jku allowlist not a list": {"urn:x": {"jwks_url": "https://x.example/j", "jku_allowlist": "https://y"}},
}


@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_broken_issuer_file_fails_start_up(tmp_path, migrated_db_url, keys, name):
    content = BROKEN_FILES[name]
    if content == "PRIVATE":
        private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(keys.es))
        content = {"urn:x": {"jwks": {"keys": [dict(private, kid="k1")]}}}
    elif content == "NOKID":
        jwk = _jwk(keys)
        del jwk["kid"]
        content = {"urn:x": {"jwks": {"keys": [jwk]}}}
    elif content == "TENANTS":
        content = {"urn:x": {"jwks": {"keys": [_jwk(keys)]}, "tenants": []}}
    path = tmp_path / "issuers.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ConfigError) as exc:
        create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(path))
    assert str(path) in str(exc.value) or "HER2CDS_TRUSTED_ISSUERS" in str(exc.value)


def test_missing_issuer_file_fails_start_up(tmp_path, migrated_db_url):
    with pytest.raises(ConfigError, match="does not exist"):
        create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(tmp_path / "nope.json"))


def test_same_issuer_in_two_files_fails_start_up(migrated_db_url):
    spec = os.pathsep.join([str(SANDBOX_ISSUERS)] * 2)
    with pytest.raises(ConfigError, match="more than one file"):
        create_app(auth="required", database_url=migrated_db_url, trusted_issuers=spec)


def test_odd_request_id_on_a_rejected_call_is_replaced(secured):
    resp = secured.get("/cds-services", headers={"X-Request-Id": "x" * 100})
    assert_401(resp)
    assert len(resp.headers["X-Request-Id"]) <= 64 and resp.headers["X-Request-Id"] != "x" * 100


# -- issue 13: the audience is configuration, never the request's Host -------------------------

OTHER_VENDOR = "http://cds.other-vendor.example"


def test_token_for_another_vendor_is_refused_even_with_that_host_header(secured, keys):
    """Item 3: aud used to follow the Host header when HER2CDS_PUBLIC_URL was unset."""
    for path, method in (("/cds-services/her2-mbc-order-select", "post"), ("/cds-services", "get")):
        token = es_token(keys, aud=OTHER_VENDOR + path)
        kwargs = {"json": hook_request("order-select", prefetch=empty_prefetch())} if method == "post" else {}
        resp = getattr(secured, method)(path, base_url=OTHER_VENDOR, headers=bearer(token), **kwargs)
        assert_401(resp)


def test_configured_accepted_audiences_are_accepted_whatever_the_host(migrated_db_url, issuer_file, keys):
    app = create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(issuer_file),
                     accepted_audiences="https://cds.internal.example.org/, https://cds.example.org")
    client = app.test_client()
    for base in ("https://cds.internal.example.org", "https://cds.example.org", "http://localhost"):
        token = es_token(keys, aud=base + "/cds-services")
        assert client.get("/cds-services", headers=bearer(token)).status_code == 200, base
    assert_401(client.get("/cds-services", base_url=OTHER_VENDOR,
                          headers=bearer(es_token(keys, aud=OTHER_VENDOR + "/cds-services"))))


def test_the_bind_address_of_serve_is_the_default_audience(migrated_db_url, issuer_file, keys):
    app = create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(issuer_file), bind="127.0.0.1:8080")
    client = app.test_client()
    for aud in ("http://127.0.0.1:8080/cds-services", "http://localhost:8080/cds-services"):
        assert client.get("/cds-services", headers=bearer(es_token(keys, aud=aud))).status_code == 200, aud
    assert_401(client.get("/cds-services", headers=bearer(es_token(keys, aud=DISCOVERY))))  # port 80: not bound


def test_a_malformed_accepted_audience_fails_start_up(migrated_db_url, issuer_file):
    with pytest.raises(ConfigError, match="HER2CDS_ACCEPTED_AUDIENCES"):
        create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(issuer_file),
                   accepted_audiences="cds.example.org")


# -- issue 13, item 7: a validly signed but odd tenant is a 401, not a 500 -----------------------

@pytest.mark.parametrize("tenant", [["hosp-a"], {"id": "hosp-a"}, 7, "", "x" * 300])
@pytest.mark.parametrize("iss,kid", [("urn:test:tenants", "es-t"), ("urn:test:es", "es-1")])
def test_tenant_claim_that_is_not_a_string_is_401_with_a_clear_log(secured, keys, auth_log, tenant, iss, kid):
    token = mint_token(keys.es_pem, kid, iss, DISCOVERY, extra_claims={"tenant": tenant})
    assert_401(secured.get("/cds-services", headers=bearer(token)))
    assert "tenant claim must be a string" in auth_log.records[-1].reason


# -- the pure core: tokens.authenticate without Flask ------------------------------------------

class _Replay:
    def __init__(self, fail=False):
        self.seen: set = set()
        self.fail = fail

    def remember_jti(self, issuer, jti, expires_at, now):
        if self.fail:
            raise OSError("disk full")
        fresh = (issuer, jti) not in self.seen
        self.seen.add((issuer, jti))
        return fresh


def test_authenticate_is_pure_and_replay_aware(issuer_file, keys):
    from cds_service.auth.issuers import IssuerRegistry, load_trusted_issuers
    from cds_service.auth.tokens import AuthError, ReplayUnavailable, authenticate

    registry = IssuerRegistry(load_trusted_issuers(str(issuer_file)))
    header = f"Bearer {es_token(keys)}"
    replay = _Replay()
    assert authenticate(header, registry, [DISCOVERY], replay)["iss"] == "urn:test:es"
    with pytest.raises(AuthError, match="replayed"):
        authenticate(header, registry, [DISCOVERY], replay)
    with pytest.raises(AuthError, match="aud does not match"):
        authenticate(f"Bearer {es_token(keys)}", registry, [HOOK_URL], replay)
    with pytest.raises(ReplayUnavailable):
        authenticate(f"Bearer {es_token(keys)}", registry, [DISCOVERY], _Replay(fail=True))
