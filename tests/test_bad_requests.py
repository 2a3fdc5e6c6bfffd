"""A table of bad requests: each gets a clear 4xx JSON body saying what and where."""

import json

import pytest

from conftest import empty_prefetch, hook_request

URL = "/cds-services/her2-mbc-order-select"


def good():
    return hook_request("order-select", prefetch=empty_prefetch(), draft_orders=[
        {"resourceType": "MedicationRequest", "id": "d1", "status": "draft"}])


def with_(path, value):
    body = good()
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(body)


CASES = [
    # (name, url, data, content type, status, where)
    ("not json", URL, "{", "application/json", 400, "body"),
    ("empty body", URL, "", "application/json", 400, "body"),
    ("array body", URL, "[]", "application/json", 400, "/"),
    ("NaN", URL, '{"hook": NaN}', "application/json", 400, "body"),
    ("form post", URL, "hook=x", "application/x-www-form-urlencoded", 415, "header:Content-Type"),
    ("no content type", URL, json.dumps(good()), None, 415, "header:Content-Type"),
    ("unknown service", "/cds-services/nope", json.dumps(good()), "application/json", 404, "path:/cds-services/nope"),
    ("wrong hook", URL, with_(["hook"], "order-sign"), "application/json", 400, "/hook"),
    ("no hookInstance", URL, with_(["hookInstance"], KeyError), "application/json", 400, "/hookInstance"),
    ("no context", URL, with_(["context"], KeyError), "application/json", 400, "/context"),
    ("no patientId", URL, with_(["context", "patientId"], KeyError), "application/json", 400, "/context/patientId"),
    ("patientId number", URL, with_(["context", "patientId"], 7), "application/json", 400, "/context/patientId"),
    ("no draftOrders", URL, with_(["context", "draftOrders"], KeyError), "application/json", 400, "/context/draftOrders"),
    ("no selections", URL, with_(["context", "selections"], KeyError), "application/json", 400, "/context/selections"),
    ("selection not a reference", URL, with_(["context", "selections"], ["d1"]), "application/json", 400,
     "/context/selections/0"),
    ("draftOrders not a Bundle", URL, with_(["context", "draftOrders"], {"resourceType": "List"}),
     "application/json", 400, "/context/draftOrders/resourceType"),
    ("draft without resourceType", URL, with_(["context", "draftOrders", "entry"], [{"resource": {"id": "x"}}]),
     "application/json", 400, "/context/draftOrders/entry/0/resource/resourceType"),
    ("prefetch value a string", URL, with_(["prefetch", "her2"], "lots"), "application/json", 400, "/prefetch/her2"),
    ("fhirAuthorization without fhirServer", URL,
     with_(["fhirAuthorization"], {"access_token": "t", "token_type": "Bearer"}), "application/json", 400,
     "/fhirServer"),
    ("fhirServer not a URL", URL, with_(["fhirServer"], "ftp://x"), "application/json", 400, "/fhirServer"),
    ("GET on a hook", URL, None, None, 405, URL),
    ("double slash", "/cds-services//her2-mbc-order-select", json.dumps(good()), "application/json", 404,
     "/cds-services//her2-mbc-order-select"),
]


@pytest.mark.parametrize("name,url,data,ctype,status,where", CASES, ids=[c[0] for c in CASES])
def test_bad_request_table(client, name, url, data, ctype, status, where):
    if data is None and ctype is None:
        resp = client.get(url)
    else:
        headers = {"Content-Type": ctype} if ctype else {}
        resp = client.post(url, data=data, headers=headers)
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    locations = [e for issue in body["issue"] for e in issue.get("expression", [])]
    assert where in locations, locations
    assert all(issue["diagnostics"] for issue in body["issue"])


def test_body_over_the_limit_is_413(migrated_db_url):
    from cds_service import create_app
    app = create_app(auth="disabled", database_url=migrated_db_url, max_body_bytes=10_000)
    body = good()
    body["prefetch"]["conditions"]["entry"] = [{"resource": {"resourceType": "Condition", "id": str(i)}}
                                               for i in range(2000)]
    resp = app.test_client().post(URL, json=body)
    assert resp.status_code == 413
    assert resp.get_json()["issue"][0]["code"] == "too-long"


def test_deep_json_is_refused(client):
    deep = '{"a":' * 200 + "1" + "}" * 200
    resp = client.post(URL, data=deep, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert "nesting" in resp.get_json()["issue"][0]["diagnostics"]


def test_errors_say_what_is_wrong_without_repeating_patient_data(client):
    body = good()
    body["prefetch"]["conditions"] = ["Secret Diagnosis Text"]
    resp = client.post(URL, json=body)
    assert resp.status_code == 400
    issue = resp.get_json()["issue"][0]
    assert issue["expression"] == ["/prefetch/conditions"]
    assert "Secret Diagnosis Text" not in resp.get_data(as_text=True)
    assert "expected" in issue["diagnostics"] and "array" in issue["diagnostics"]


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1E+400"])
def test_a_number_out_of_range_says_so(client, number):
    """Python reads 1e999 as infinity; it used to be reported as "JSON nesting deeper than 64 levels"."""
    raw = json.dumps(good()).replace('"status": "draft"', f'"status": "draft", "quantity": {number}')
    resp = client.post(URL, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    issue = resp.get_json()["issue"][0]
    assert "out of range" in issue["diagnostics"] and "nesting" not in issue["diagnostics"]
    assert issue["expression"] == ["body"]


def test_a_tiny_number_is_just_zero(client):
    raw = json.dumps(good()).replace('"status": "draft"', '"status": "draft", "quantity": 1e-999')
    assert client.post(URL, data=raw, headers={"Content-Type": "application/json"}).status_code == 200


@pytest.fixture(scope="module")
def small_limit_server(tmp_path_factory):
    """The app behind a real HTTP server (Werkzeug's, which de-chunks like gunicorn) with a 2,000-byte limit.

    One server for the module: each test opens its own connection, and the app
    keeps no state between these requests.  A short poll interval, or
    ``shutdown()`` waits up to 0.5 s for the serve loop to look again.
    """
    import threading

    from werkzeug.serving import make_server

    from cds_service import create_app
    db_url = f"sqlite:///{tmp_path_factory.mktemp('chunked') / 'test.db'}"
    server = make_server("127.0.0.1", 0, create_app(auth="disabled", database_url=db_url, max_body_bytes=2000),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(5)


def post_chunked(port: int, body: bytes) -> tuple[int, dict]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    pieces = (body[i:i + 500] for i in range(0, len(body), 500))
    conn.request("POST", URL, body=pieces, encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read())
    conn.close()
    return out


def padded(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    base = b'{"hook": "order-select", "pad": ""}'
    return base[:-2] + b"x" * (size - len(base)) + base[-2:]


@pytest.mark.parametrize("size", [2001, 10_000, 200_000])
def test_an_over_limit_chunked_body_is_413_not_invalid_json(small_limit_server, size):
    """Without Content-Length the body used to be cut at the limit and answered "not valid JSON"."""
    status, body = post_chunked(small_limit_server, padded(size))
    assert status == 413, body
    assert body["issue"][0]["code"] == "too-long"


@pytest.mark.parametrize("size", [1999, 2000])
def test_a_chunked_body_within_the_limit_is_read_whole(small_limit_server, size):
    status, body = post_chunked(small_limit_server, padded(size))
    assert status == 400, body  # read and parsed: the schema names what is missing
    assert "/hookInstance" in [e for i in body["issue"] for e in i.get("expression", [])]


@pytest.mark.parametrize("patient_id", ["..", ".", "...", "../../admin", "x" * 65])
def test_a_patient_id_that_would_walk_the_fhir_path_is_refused(client, patient_id):
    """``Patient/..`` would read the FHIR base itself with the EHR's token (issue 21): not a usable id."""
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(patient_id=patient_id))
    assert resp.status_code == 400
    assert resp.get_json()["issue"][0]["expression"] == ["/context/patientId"]


@pytest.mark.parametrize("patient_id", ["p1", "a.b", "..a", "-", "A" * 64])
def test_ordinary_fhir_ids_are_still_accepted(client, patient_id):
    resp = client.post("/cds-services/her2-mbc-patient-view",
                       json=hook_request(patient_id=patient_id, prefetch=empty_prefetch(patient_id)))
    assert resp.status_code == 200, resp.get_json()
