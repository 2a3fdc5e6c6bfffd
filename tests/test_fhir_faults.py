"""The FHIR server misbehaves; the service answers anyway, within its budget.

Required data missing → 412; optional data missing or partial → 200 with a
data-gathering finding.  Never a 500, never a hang, never the token in the
answer.  The caller is told one text for every network outcome (a 404, a
refused connection and a timeout must look alike, or the answers map another
host's ports); the specific reason is in the log under the request id.
"""

import socket
import threading
import time

import pytest

from cds_service import create_app
from cds_service.fhir.client import PUBLIC_ERROR
from cds_service.core.advice import Advice
from cds_service.protocol import hooks

from conftest import LOOPBACK_FHIR, empty_prefetch, hook_request
from fake_fhir import FakeFhir, empty_bundle, send_json
from log_capture import capture_log
from shipped import PREFETCH

TOKEN = "tok-123-never-logged"


@pytest.fixture
def captured(monkeypatch):
    calls = []

    def fake_advise(hook, service_id, context, resources, findings, knowledge, base_url=None, fhir_server=None):
        calls.append({"resources": resources, "findings": findings})
        return Advice((), None)

    monkeypatch.setattr(hooks.advice, "advise", fake_advise)
    return calls


def call(client, base, drop=("her2",)):
    prefetch = empty_prefetch()
    for key in drop:
        del prefetch[key]
    body = hook_request(prefetch=prefetch, fhirServer=base,
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                           "scope": "patient/*.read", "subject": "her2-cds"})
    resp = client.post("/cds-services/her2-mbc-patient-view", json=body)
    assert resp.status_code < 500
    assert TOKEN not in resp.get_data(as_text=True)
    assert "Traceback" not in resp.get_data(as_text=True)
    return resp


def status_server(status):
    return lambda h, path, q: send_json(h, {"resourceType": "OperationOutcome", "issue": []}, status)


#: Small FHIR budgets for the tests that wait for a stalled or dripping server to be cut off:
#: they test that a timeout gives the generic 412, not the shipped defaults (sized for real EHRs).
#: Still ten times a loopback round trip, so a busy machine does not turn a fast answer into a timeout.
FAST_TIMEOUTS = {"fhir_connect_timeout": 0.3, "fhir_read_timeout": 0.4, "fhir_time_budget": 0.6}


@pytest.fixture
def fast_client(migrated_db_url):
    return create_app(auth="disabled", database_url=migrated_db_url, **FAST_TIMEOUTS, **LOOPBACK_FHIR).test_client()


@pytest.fixture
def fhir_log():
    with capture_log("her2cds.fhir") as handler:
        yield handler


def assert_generic_412(resp, fhir_log, phrase):
    """412 with the one generic text; the specific reason only in the log, with the request id."""
    assert resp.status_code == 412
    issue = resp.get_json()["issue"][0]
    assert issue["expression"] == ["/prefetch/her2"]
    assert issue["diagnostics"] == f"Required data 'her2' could not be obtained: {PUBLIC_ERROR}"
    failures = [r for r in fhir_log.records if r.getMessage() == "FHIR read failed" and r.key == "her2"]
    assert failures and phrase in failures[-1].detail
    assert failures[-1].request_id == resp.headers["X-Request-Id"]


@pytest.mark.parametrize("status,phrase", [
    (401, "rejected the access token"), (403, "does not allow"), (404, "not found"),
    (429, "rate limiting"), (500, "failed (500)"), (503, "failed (503)"), (302, "redirected"),
])
def test_http_errors_on_required_data_give_412_with_reason_in_the_log(client, fhir_log, status, phrase):
    with FakeFhir(status_server(status)) as fhir:
        resp = call(client, fhir.base)
    assert_generic_412(resp, fhir_log, phrase)


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return port


def test_network_outcomes_are_indistinguishable_to_the_caller(fast_client):
    """404, a closed port and a stall: the same answer, so fhirServer cannot be used to scan ports."""
    answers = []
    with FakeFhir(status_server(404)) as fhir:
        answers.append(call(fast_client, fhir.base).get_json())
    answers.append(call(fast_client, f"http://127.0.0.1:{_free_port()}/fhir").get_json())
    with FakeFhir(lambda h, p, q: send_json(h, empty_bundle(), delay=3)) as fhir:
        answers.append(call(fast_client, fhir.base).get_json())
    assert answers[0] == answers[1] == answers[2]


def test_http_error_on_optional_data_gives_cards_and_a_finding(client, captured):
    with FakeFhir(status_server(500)) as fhir:
        resp = call(client, fhir.base, drop=("otherObservations",))
    assert resp.status_code == 200
    assert captured[0]["findings"][0].refs == ("prefetch:otherObservations",)
    assert captured[0]["findings"][0].code == "data-missing"


def test_bearer_token_is_sent_to_the_fhir_server(client):
    with FakeFhir(lambda h, p, q: send_json(h, empty_bundle())) as fhir:
        call(client, fhir.base, drop=("her2", "conditions"))
    assert {r["authorization"] for r in fhir.requests} == {f"Bearer {TOKEN}"}
    assert sorted(r["path"] for r in fhir.requests) == ["/fhir/Condition", "/fhir/Observation"]


def test_invalid_json(client, fhir_log):
    with FakeFhir(lambda h, p, q: send_json(h, b"{not json")) as fhir:
        resp = call(client, fhir.base)
    assert_generic_412(resp, fhir_log, "invalid JSON")


def test_nan_from_the_fhir_server_is_invalid_json(client, fhir_log):
    """NaN/Infinity are not JSON: Python's parser would accept them, the service does not (as for requests)."""
    body = b'{"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "x": NaN}}]}'
    with FakeFhir(lambda h, p, q: send_json(h, body)) as fhir:
        resp = call(client, fhir.base)
    assert_generic_412(resp, fhir_log, "invalid JSON")


def test_stalled_server_times_out_within_budget(fast_client, fhir_log):
    with FakeFhir(lambda h, p, q: send_json(h, empty_bundle(), delay=3)) as fhir:
        resp = call(fast_client, fhir.base)
    assert_generic_412(resp, fhir_log, "time")


def test_dripping_server_is_cut_off(fast_client, fhir_log):
    def drip(h, path, q):
        h.send_response(200)
        h.send_header("Content-Type", "application/fhir+json")
        h.end_headers()
        h.wfile.write(b'{"resourceType": "Bundle", "entry": [')
        for _ in range(200):  # never finishes within the budget
            h.wfile.write(b' ')
            h.wfile.flush()
            time.sleep(0.02)
    with FakeFhir(drip) as fhir:
        resp = call(fast_client, fhir.base)
    assert_generic_412(resp, fhir_log, "time")


def test_endless_paging_is_bounded(client, captured, app):
    def pages(h, path, q):
        n = int(q.split("page=")[1]) if "page=" in q else 0
        next_url = f"http://{h.headers['Host']}{path}?patient=p1&page={n + 1}"
        send_json(h, {**empty_bundle(next_url), "entry": [
            {"resource": {"resourceType": "Condition", "id": f"c{n}"}}]})
    with FakeFhir(pages) as fhir:
        resp = call(client, fhir.base, drop=("conditions",))
    assert resp.status_code == 200
    max_pages = app.config["SETTINGS"].fhir_max_pages
    assert len(fhir.requests) == max_pages
    assert len(captured[0]["resources"]) == 1 + max_pages  # the Patient + one Condition per page
    assert captured[0]["findings"][0].code == "data-partial"


def test_huge_response_is_refused(client, monkeypatch, fhir_log):
    from cds_service.fhir import client as fhir_client
    monkeypatch.setattr(fhir_client, "MAX_RESPONSE_BYTES", 50_000)
    big = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "id": str(i),
                                                             "status": "final"}} for i in range(5000)]}
    with FakeFhir(lambda h, p, q: send_json(h, big)) as fhir:
        resp = call(client, fhir.base)
    assert_generic_412(resp, fhir_log, "more than")


def test_connection_refused(client, fhir_log):
    resp = call(client, f"http://127.0.0.1:{_free_port()}/fhir")
    assert_generic_412(resp, fhir_log, "could not connect")


def test_queries_run_in_parallel(migrated_db_url, captured):
    """The prefetch queries overlap instead of running one after another.

    Measured as concurrency, not as time: the fake server counts how many
    queries are in flight at once, and the budget is generous, so a busy
    machine cannot turn this into a timing test.
    """
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def handler(h, p, q):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            send_json(h, empty_bundle() if "Patient/" not in p else {"resourceType": "Patient", "id": "p1"},
                      delay=0.3)
        finally:
            with lock:
                state["now"] -= 1

    app = create_app(auth="disabled", database_url=migrated_db_url, fhir_connect_timeout=5, fhir_read_timeout=10,
                     fhir_time_budget=20, **LOOPBACK_FHIR)
    with FakeFhir(handler) as fhir:
        resp = app.test_client().post("/cds-services/her2-mbc-patient-view",
                                      json=hook_request(fhirServer=fhir.base))
    assert resp.status_code == 200, resp.get_json()
    assert len(fhir.requests) == len(PREFETCH)
    assert captured[0]["findings"] == []
    assert state["peak"] > 1, "the queries ran one at a time"


def test_a_number_beyond_a_float_from_the_fhir_server_is_invalid_json(client, fhir_log):
    """1e999 would be read as infinity (and written as null in the history memo's key): refused like NaN."""
    body = b'{"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "x": 1e999}}]}'
    with FakeFhir(lambda h, p, q: send_json(h, body)) as fhir:
        resp = call(client, fhir.base)
    assert_generic_412(resp, fhir_log, "invalid JSON")
