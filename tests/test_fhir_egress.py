"""Issue 13, item 2: the EHR's access token goes only to FHIR servers the caller's issuer may name.

Layer 1, the server list (``fhir_servers`` per issuer, ``HER2CDS_FHIR_SERVERS``):
a request naming any other server is answered from prefetch only, and nothing
is sent.  Layer 2, the address check: loopback, private, link-local,
unspecified and metadata addresses are refused *after* DNS resolution unless
an allowed network covers them, and the socket goes to exactly the checked
address.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import trustme

from cds_service import create_app
from cds_service.auth.jwt_tokens import generate_private_key, mint_token, private_key_pem, public_jwk
from cds_service.config import ConfigError
from cds_service.fhir import egress
from cds_service.fhir.client import PUBLIC_ERROR, FhirClient
from cds_service.fhir.egress import (EgressAdapter, EgressPolicy, EgressRefused, ServerRule, address_refusal,
                                     resolve_checked)
from cds_service.protocol.prefetch import NOT_TRUSTED

from conftest import empty_prefetch, hook_request
from fake_fhir import FakeFhir, empty_bundle, send_json

TOKEN = "ehr-access-token-never-leaves"
ISS = "urn:test:ehr"
SERVICE_URL = "http://localhost/cds-services/her2-mbc-patient-view"


# -- layer 2: addresses ----------------------------------------------------------------------

REFUSED_BY_DEFAULT = ["127.0.0.1", "127.9.9.9", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.7.7",
                      "fe80::1", "0.0.0.0", "::", "fd12:3456::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                      "64:ff9b::7f00:1", "2002:7f00:1::1", "224.0.0.1", "100.64.0.1", "240.0.0.1",
                      "169.254.169.254", "fd00:ec2::254", "100.100.100.200"]


@pytest.mark.parametrize("address", REFUSED_BY_DEFAULT)
def test_non_public_addresses_are_refused_by_default(address):
    assert address_refusal(ipaddress.ip_address(address), ()) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address), ()) is None


def test_an_allowed_network_lets_exactly_its_addresses_through():
    nets = (ipaddress.ip_network("10.20.0.0/16"),)
    assert address_refusal(ipaddress.ip_address("10.20.3.4"), nets) is None
    assert address_refusal(ipaddress.ip_address("10.21.0.1"), nets) is not None


@pytest.mark.parametrize("address,network", [("169.254.169.254", "169.254.0.0/16"),
                                             ("fd00:ec2::254", "fd00::/8"),
                                             ("::ffff:169.254.169.254", "::/0")])
def test_metadata_addresses_are_refused_even_inside_an_allowed_network(address, network):
    assert "metadata" in address_refusal(ipaddress.ip_address(address), (ipaddress.ip_network(network),))


class Resolver:
    """A DNS stand-in: name -> list of addresses, answers can change between calls."""

    def __init__(self, answers: dict[str, list[str] | list[list[str]]]):
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host, port, type=0, proto=0, **_):
        self.calls.append(host)
        answer = self.answers.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        if answer and isinstance(answer[0], list):  # a sequence of answers, one per lookup
            answer = answer[min(len(self.calls), len(answer)) - 1]
        out = []
        for a in answer:
            ip = ipaddress.ip_address(a)
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sockaddr = (a, port, 0, 0) if ip.version == 6 else (a, port)
            out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "017700000001"])
def test_odd_numeric_hosts_are_refused_without_a_lookup(host):
    resolver = Resolver({})
    with pytest.raises(EgressRefused, match="non-canonical"):
        resolve_checked(host, 80, (ipaddress.ip_network("127.0.0.0/8"),), resolver)
    assert resolver.calls == []


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal.", "metadata",
                                  "instance-data.ec2.internal"])
def test_metadata_host_names_are_refused_without_a_lookup(host):
    resolver = Resolver({})
    with pytest.raises(EgressRefused, match="metadata"):
        resolve_checked(host, 80, (), resolver)
    assert resolver.calls == []


def test_a_name_with_one_private_address_among_public_ones_is_refused():
    resolver = Resolver({"fhir.example.org": ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(EgressRefused, match="10.0.0.5"):
        resolve_checked("fhir.example.org", 443, (), resolver)


def test_a_name_resolving_to_public_addresses_is_allowed():
    resolver = Resolver({"fhir.example.org": ["93.184.216.34"]})
    infos = resolve_checked("fhir.example.org", 443, (), resolver)
    assert [i[4][0] for i in infos] == ["93.184.216.34"]


def _get(adapter, url, networks, **kw):
    return adapter.send(requests.Request("GET", url).prepare(), timeout=(2, 2),
                        networks=[ipaddress.ip_network(n) for n in networks], **kw)


def test_the_socket_goes_to_the_checked_address_and_a_rebound_name_is_checked_again():
    """DNS rebinding: the first answer passes, the second points inside; the name never resolves on its own."""
    seen = []

    def record(h, path, q):
        seen.append(h.headers["Host"])
        send_json(h, empty_bundle())

    with FakeFhir(record) as fhir:
        port = fhir.server.server_port
        resolver = Resolver({"fhir.rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
        adapter = EgressAdapter(resolver=resolver)
        url = f"http://fhir.rebind.test:{port}/fhir/Condition"
        resp = _get(adapter, url, ["127.0.0.1/32"])
        assert resp.status_code == 200
        resp.close()
        # the system resolver does not know this name: the request reached the fake server only
        # because the socket went to the address egress resolved and checked
        assert seen == [f"fhir.rebind.test:{port}"]
        with pytest.raises(EgressRefused, match="10.0.0.1"):
            _get(adapter, url, ["127.0.0.1/32"])
        assert len(seen) == 1  # the pooled keep-alive connection to 127.0.0.1 was not reused
        assert resolver.calls == ["fhir.rebind.test", "fhir.rebind.test"]
        adapter.close()


def test_https_is_verified_against_the_host_name_on_a_pinned_socket(tmp_path):
    """Pinning replaces only the socket: SNI and the certificate check still use the name."""
    ca = trustme.CA()
    cert = ca.issue_cert("fhir.pinned.test")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            send_json(self, {"resourceType": "CapabilityStatement"})

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_port
        resolver = Resolver({"fhir.pinned.test": ["127.0.0.1"], "other.pinned.test": ["127.0.0.1"]})
        adapter = EgressAdapter(resolver=resolver)
        resp = _get(adapter, f"https://fhir.pinned.test:{port}/fhir/metadata", ["127.0.0.1/32"],
                    verify=str(ca_path))
        assert resp.status_code == 200 and resp.json()["resourceType"] == "CapabilityStatement"
        with pytest.raises(requests.exceptions.SSLError):  # same address, a name the cert does not carry
            _get(adapter, f"https://other.pinned.test:{port}/fhir/metadata", ["127.0.0.1/32"],
                 verify=str(ca_path))
        adapter.close()
    finally:
        server.shutdown()
        server.server_close()


# -- layer 1: the server list -------------------------------------------------------------------

@pytest.mark.parametrize("rule,url,expected", [
    ("https://fhir.example.org/r4", "https://FHIR.example.org:443/r4/", True),
    ("https://fhir.example.org/r4", "https://fhir.example.org/r4/other", False),
    ("https://fhir.example.org/r4", "https://fhir.example.org.evil.example/r4", False),
    ("https://fhir.example.org/r4", "https://user@fhir.example.org/r4", False),
    ("https://fhir.example.org/r4", "https://fhir.example.org:8443/r4", False),
    ("https://fhir.example.org", "https://fhir.example.org/any/base", True),
    ("https://*.example.org", "https://a.b.example.org/fhir", True),
    ("https://*.example.org", "https://example.org/fhir", False),
    ("https://*.example.org", "https://evilexample.org/fhir", False),
    ("https://*.example.org", "http://a.example.org/fhir", False),
    ("http://127.0.0.1:*", "http://127.0.0.1:8090/fhir", True),
    ("http://127.0.0.1", "http://127.0.0.1:8090/fhir", False),
    ("http://127.0.0.1:*", "http://2130706433:8090/fhir", False),
])
def test_server_rules(rule, url, expected):
    assert ServerRule.parse(rule).matches(url) is expected


@pytest.mark.parametrize("rule", ["", "ftp://fhir.example.org", "http://fhir.example.org/r4", "https://*",
                                  "https://a.*.example.org", "https://fhir.example.org/r4?x=1",
                                  "https://u@fhir.example.org", "fhir.example.org"])
def test_bad_server_rules_are_refused(rule):
    with pytest.raises(ValueError):
        ServerRule.parse(rule)


@pytest.fixture(scope="module")
def key():
    return generate_private_key("ES384")


def secured_app(tmp_path, key, entry: dict, database_url: str, **settings):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({ISS: {"jwks": {"keys": [public_jwk(key, "k1", "ES384")]}, **entry}}))
    return create_app(auth="required", database_url=database_url, trusted_issuers=str(path), **settings)


def invoke(app, key, base, prefetch=None):
    if prefetch is None:
        prefetch = empty_prefetch()
        del prefetch["her2"]
    body = hook_request(prefetch=prefetch, fhirServer=base,
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                           "scope": "patient/*.read", "subject": "her2-cds"})
    token = mint_token(private_key_pem(key), "k1", ISS, SERVICE_URL)
    resp = app.test_client().post("/cds-services/her2-mbc-patient-view", json=body,
                                  headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code < 500, resp.get_json()
    assert TOKEN not in resp.get_data(as_text=True)
    return resp


@pytest.fixture
def make_app(tmp_path, key, migrated_db_url):
    return lambda entry, **settings: secured_app(tmp_path, key, entry, migrated_db_url, **settings)


def serving():
    return FakeFhir(lambda h, p, q: send_json(h, empty_bundle()))


def test_the_token_never_leaves_for_a_server_not_on_the_issuers_list(make_app, key):
    app = make_app({"fhir_servers": ["https://fhir.example.org/r4"], "fhir_networks": ["127.0.0.0/8"]})
    with serving() as fhir:
        resp = invoke(app, key, fhir.base)
    assert fhir.requests == []
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["diagnostics"] == f"Required data 'her2' could not be obtained: {NOT_TRUSTED}"


def test_an_unlisted_server_leaves_the_call_on_prefetch(make_app, key):
    app = make_app({})
    with serving() as fhir:
        resp = invoke(app, key, fhir.base, prefetch=empty_prefetch())
    assert resp.status_code == 200
    assert fhir.requests == []


def test_a_listed_loopback_server_is_still_refused_without_an_allowed_network(make_app, key):
    app = make_app({"fhir_servers": ["http://127.0.0.1:*"]})
    with serving() as fhir:
        resp = invoke(app, key, fhir.base)
    assert fhir.requests == []
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["diagnostics"].endswith(PUBLIC_ERROR)


def test_a_listed_server_in_an_allowed_network_is_read_with_the_token(make_app, key):
    app = make_app({"fhir_servers": ["http://127.0.0.1:*"], "fhir_networks": ["127.0.0.0/8"]})
    with serving() as fhir:
        resp = invoke(app, key, fhir.base)
    assert resp.status_code == 200, resp.get_json()
    assert [r["authorization"] for r in fhir.requests] == [f"Bearer {TOKEN}"]


def test_the_settings_list_and_networks_apply_to_every_issuer(make_app, key):
    app = make_app({}, fhir_servers="http://127.0.0.1:*", fhir_allowed_networks="127.0.0.1/32")
    with serving() as fhir:
        assert invoke(app, key, fhir.base).status_code == 200
    assert len(fhir.requests) == 1


ATTACK_SERVERS = ["http://127.0.0.1:22/fhir", "http://2130706433/fhir", "http://169.254.169.254/latest/meta-data",
                  "http://metadata.google.internal/computeMetadata/v1", "http://10.0.0.1/fhir",
                  "http://192.168.1.1/fhir", "http://[::1]:8080/fhir", "http://[fd00:ec2::254]/fhir",
                  "http://0.0.0.0:8080/fhir", "https://fhir.example.org.evil.example/r4"]


def _spy_transport(app, resolver):
    """Give the app's FhirClient a transport whose DNS is ``resolver``."""
    client = FhirClient(app.config["SETTINGS"], transport=EgressAdapter(resolver=resolver))
    app.extensions["her2cds.fhir_client"] = (os.getpid(), client)


def test_attack_targets_named_by_an_authenticated_client_are_never_contacted(make_app, key, monkeypatch):
    app = make_app({"fhir_servers": ["https://fhir.example.org/r4"]})
    resolver = Resolver({})
    _spy_transport(app, resolver)
    answers = set()
    for base in ATTACK_SERVERS:
        resp = invoke(app, key, base)
        assert resp.status_code == 412
        answers.add(resp.get_json()["issue"][0]["diagnostics"])
    assert resolver.calls == []  # not even looked up
    assert len(answers) == 1     # and the answer does not depend on the target


@pytest.mark.parametrize("name,address", [("loop", "127.0.0.1"), ("meta", "169.254.169.254"), ("ten", "10.0.0.1"),
                                          ("v6", "::1"), ("mapped", "::ffff:127.0.0.1"), ("zero", "0.0.0.0"),
                                          ("ec2", "fd00:ec2::254")])
def test_a_listed_pattern_resolving_inside_is_refused_after_resolution(make_app, key, monkeypatch, name, address):
    app = make_app({"fhir_servers": ["https://*.ehr.example"]})
    resolver = Resolver({f"{name}.ehr.example": [address]})
    _spy_transport(app, resolver)
    connects = []
    monkeypatch.setattr(egress._PinnedConnectionMixin, "_new_conn", lambda self: connects.append(self.host))
    resp = invoke(app, key, f"https://{name}.ehr.example/fhir")
    assert resolver.calls == [f"{name}.ehr.example"]
    assert connects == []
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["diagnostics"].endswith(PUBLIC_ERROR)


@pytest.mark.parametrize("entry", [{"fhir_servers": "https://fhir.example.org"},
                                   {"fhir_servers": ["http://fhir.example.org/r4"]},
                                   {"fhir_servers": ["https://*"]},
                                   {"fhir_networks": ["10.0.0.1/8"]},
                                   {"fhir_networks": ["not-a-network"]}])
def test_a_bad_fhir_policy_in_the_issuer_file_fails_start_up(tmp_path, key, entry, migrated_db_url):
    with pytest.raises(ConfigError, match="fhir_"):
        secured_app(tmp_path, key, entry, migrated_db_url)


@pytest.mark.parametrize("settings", [{"fhir_servers": "ftp://x"}, {"fhir_allowed_networks": "10.0.0.0/33"}])
def test_bad_fhir_settings_fail_start_up(tmp_path, settings):
    with pytest.raises(ConfigError, match="HER2CDS_FHIR"):
        create_app(auth="disabled", database_url=f"sqlite:///{tmp_path / 'db'}", **settings)


def test_with_auth_disabled_only_the_settings_list_counts(tmp_path):
    """Dev mode has no issuer to vouch for a server: nothing is fetched unless HER2CDS_FHIR_SERVERS lists it."""
    app = create_app(auth="disabled", database_url=f"sqlite:///{tmp_path / 'db'}",
                     fhir_allowed_networks="127.0.0.0/8")
    prefetch = empty_prefetch()
    del prefetch["her2"]
    with serving() as fhir:
        body = hook_request(prefetch=prefetch, fhirServer=fhir.base,
                            fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                               "scope": "patient/*.read", "subject": "her2-cds"})
        resp = app.test_client().post("/cds-services/her2-mbc-patient-view", json=body)
    assert resp.status_code == 412
    assert fhir.requests == []


def test_the_sandbox_issuer_ships_with_its_own_fhir_servers():
    from cds_service.auth.issuers import load_issuer_file
    issuer = load_issuer_file(os.path.join(os.path.dirname(__file__), "..", "cds_service", "issuers",
                                           "trusted-issuers.sandbox.json"))["https://sandbox.cds-hooks.org"]
    assert issuer.fhir.allows_server("https://launch.smarthealthit.org/v/r4/fhir")
    assert not issuer.fhir.allows_server("https://launch.smarthealthit.org.evil.example/v/r4/fhir")
    assert not issuer.fhir.allows_server("http://127.0.0.1:8090/fhir")
    assert issuer.fhir.networks == ()


def test_an_empty_policy_trusts_nothing():
    assert not EgressPolicy().allows_server("https://fhir.example.org/r4")


def test_cookies_from_one_fhir_server_answer_are_never_sent_again(app):
    """The pooled client is shared by all callers: a cookie jar would carry one caller's cookies to the next."""
    seen = []

    def cookie_server(h, path, q):
        seen.append(h.headers.get("Cookie"))
        h.send_response(200)
        h.send_header("Set-Cookie", "session=secret-of-caller-a; Path=/")
        h.send_header("Content-Type", "application/fhir+json")
        body = json.dumps(empty_bundle()).encode()
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    client = FhirClient(app.config["SETTINGS"])
    with FakeFhir(cookie_server) as fhir:
        for _ in range(2):
            client.get_json(fhir.base + "/Condition", fhir.base, None, time.monotonic() + 5,
                            EgressPolicy(networks=(ipaddress.ip_network("127.0.0.0/8"),)))
    assert seen == [None, None]


# -- one transport: the hooks' reads get the SMART app's watchdog too (issues 19, 21) -------------------

def test_a_dripping_fhir_server_frees_the_hook_read_thread_at_the_deadline():
    """A body dripped byte by byte is cut when the request's budget ends, so the query thread is free again:
    with one FHIR thread, the next call's read is served at once instead of queueing behind the drip."""
    from cds_service.config import Settings
    from test_smart import DripServer

    drip = DripServer(head=b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n\r\n", piece=b" ",
                      interval=0.02, count=1500)  # 30 s of drip
    policy = EgressPolicy(networks=(ipaddress.ip_network("127.0.0.1/32"),))
    client = FhirClient(Settings(fhir_max_workers=1))
    try:
        started = time.monotonic()
        first = client.fetch_all(drip.url + "/fhir", TOKEN, {"patient": "Patient/p1"}, started + 0.3, policy)
        assert first["patient"].error
        [conn] = drip.connections
        assert conn["done"].wait(2), "the drip went on: the read thread is still held"
        assert conn["hung_up"] and conn["sent"] < 1500
        with FakeFhir(lambda h, path, q: send_json(h, {"resourceType": "Patient", "id": "p1"})) as fhir:
            second = client.fetch_all(fhir.base, TOKEN, {"patient": "Patient/p1"}, time.monotonic() + 1.0, policy)
        assert second["patient"].ok, second["patient"].error
        assert time.monotonic() - started < 3
    finally:
        drip.close()
        client.pool.shutdown(wait=False)


def test_a_kept_alive_connection_is_reused_only_while_its_deadline_did_not_cut_it():
    """Pooled connections carry the watch of the exchange using them; one cut by the watchdog is not reused."""
    served = []

    def answer(h, path, q):
        served.append(path)
        send_json(h, empty_bundle())

    with FakeFhir(answer, keep_alive=True) as fhir:
        adapter = EgressAdapter()
        for _ in range(3):
            resp = _get(adapter, fhir.base + "/Condition", ["127.0.0.1/32"], ends=time.monotonic() + 0.2)
            assert resp.status_code == 200
            resp.close()
        time.sleep(0.3)  # every watch has passed its deadline by now: none may shut a pooled socket
        resp = _get(adapter, fhir.base + "/Condition", ["127.0.0.1/32"], ends=time.monotonic() + 2)
        assert resp.status_code == 200 and resp.json()["resourceType"] == "Bundle"
        assert len(served) == 4
        adapter.close()


def test_an_answer_declaring_more_than_the_cap_is_refused_unread():
    with FakeFhir(lambda h, path, q: send_json(h, {"resourceType": "Bundle", "pad": "x" * 5000})) as fhir:
        adapter = EgressAdapter(max_bytes=1000)
        with pytest.raises(egress.ResponseTooLarge, match="1000-byte cap"):
            _get(adapter, fhir.base + "/Condition", ["127.0.0.1/32"])
        adapter.close()
