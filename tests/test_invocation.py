"""POST /cds-services/{id}: each hook end to end, and how prefetch is gathered."""


import pytest

from cds_service.core.advice import Advice
from cds_service.core.cards import IssuedCard
from cds_service.protocol import hooks

from conftest import empty_prefetch, hook_request, searchset
from shipped import PREFETCH
from store_rows import audit_rows

TOKEN = "secret-access-token-xyz"


@pytest.fixture
def captured(monkeypatch):
    """Record what the pure pipeline received, and let it return one card."""
    calls = []

    def fake_advise(hook, service_id, context, resources, findings, knowledge, base_url=None, fhir_server=None):
        calls.append({"hook": hook, "resources": resources, "findings": findings, "context": context})
        return Advice((), None)

    monkeypatch.setattr(hooks.advice, "advise", fake_advise)
    return calls


def ids(resources):
    return sorted(f"{r['resourceType']}/{r.get('id')}" for r in resources)


MED = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft",
       "subject": {"reference": "Patient/p1"},
       "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                 "code": "224905", "display": "trastuzumab"}]}}


@pytest.mark.parametrize("hook,service", [
    ("patient-view", "her2-mbc-patient-view"),
    ("order-select", "her2-mbc-order-select"),
    ("order-sign", "her2-mbc-order-sign"),
])
def test_each_hook_answers_with_valid_cards(client, response_validator, hook, service):
    body = hook_request(hook, prefetch=empty_prefetch(), draft_orders=[MED])
    resp = client.post(f"/cds-services/{service}", json=body)
    assert resp.status_code == 200, resp.get_json()
    payload = resp.get_json()
    response_validator.validate(payload)
    assert isinstance(payload["cards"], list)


def test_sandbox_style_draft_orders_without_type_or_intent_are_accepted(client):
    body = hook_request("order-select", prefetch=empty_prefetch(), draft_orders=[MED])
    assert "type" not in body["context"]["draftOrders"] and "intent" not in MED
    assert client.post("/cds-services/her2-mbc-order-select", json=body).status_code == 200


def test_complete_prefetch_is_used_without_fetching(client, captured):
    prefetch = empty_prefetch()
    prefetch["her2"] = searchset({"resourceType": "Observation", "id": "ihc", "status": "final"})
    # fhirServer points nowhere: any fetch attempt would fail and turn into 412.
    body = hook_request(prefetch=prefetch, fhirServer="http://127.0.0.1:9/fhir",
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                           "scope": "patient/*.read", "subject": "her2-cds"})
    assert client.post("/cds-services/her2-mbc-patient-view", json=body).status_code == 200
    assert ids(captured[0]["resources"]) == ["Observation/ihc", "Patient/p1"]
    assert captured[0]["findings"] == []


def test_null_prefetch_means_no_data_not_missing(client, captured):
    prefetch = {key: None for key in PREFETCH}
    prefetch["patient"] = {"resourceType": "Patient", "id": "p1"}
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(prefetch=prefetch))
    assert resp.status_code == 200
    assert ids(captured[0]["resources"]) == ["Patient/p1"]


def test_missing_prefetch_without_fhir_server_is_412(client):
    prefetch = empty_prefetch()
    del prefetch["her2"]
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(prefetch=prefetch))
    assert resp.status_code == 412
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["expression"] == ["/prefetch/her2"]
    assert "fhirServer" in body["issue"][0]["diagnostics"]


def test_missing_optional_key_gives_a_finding_not_412(client, captured):
    prefetch = empty_prefetch()
    del prefetch["otherObservations"]
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(prefetch=prefetch))
    assert resp.status_code == 200
    assert [f.refs for f in captured[0]["findings"]] == [("prefetch:otherObservations",)]


def fhir_auth(server_url):
    return {"fhirServer": server_url,
            "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                  "scope": "patient/*.read", "subject": "her2-cds", "patient": "p1"}}


def test_partial_prefetch_fetches_the_rest_with_the_bearer_token(client, captured, httpserver):
    prefetch = empty_prefetch()
    del prefetch["her2"], prefetch["conditions"]
    her2_query = PREFETCH["her2"].replace("{{context.patientId}}", "p1")
    path, _, query = her2_query.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    httpserver.expect_request(f"/fhir/{path}", query_string=params,
                              headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_json(
        searchset({"resourceType": "Observation", "id": "fetched-ihc", "status": "final"}))
    httpserver.expect_request("/fhir/Condition", query_string={"patient": "p1", "_count": "200"},
                              headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_json(
        searchset({"resourceType": "Condition", "id": "mets"}))
    body = hook_request(prefetch=prefetch, **fhir_auth(httpserver.url_for("/fhir")))
    resp = client.post("/cds-services/her2-mbc-patient-view", json=body)
    assert resp.status_code == 200, resp.get_json()
    assert ids(captured[0]["resources"]) == ["Condition/mets", "Observation/fetched-ihc", "Patient/p1"]
    httpserver.check_assertions()


def test_no_prefetch_at_all_fetches_everything(client, captured, httpserver):
    httpserver.expect_request("/fhir/Patient/p1").respond_with_json({"resourceType": "Patient", "id": "p1"})
    for rtype in ("Observation", "Condition", "MedicationStatement", "MedicationRequest"):
        httpserver.expect_request(f"/fhir/{rtype}").respond_with_json(searchset())
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(**fhir_auth(httpserver.url_for("/fhir"))))
    assert resp.status_code == 200
    assert ids(captured[0]["resources"]) == ["Patient/p1"]
    assert len(httpserver.log) == len(PREFETCH)


def test_operation_outcome_in_prefetch_is_refetched(client, captured, httpserver):
    prefetch = empty_prefetch()
    prefetch["conditions"] = {"resourceType": "OperationOutcome",
                              "issue": [{"severity": "error", "code": "timeout"}]}
    httpserver.expect_request("/fhir/Condition").respond_with_json(searchset({"resourceType": "Condition", "id": "c9"}))
    resp = client.post("/cds-services/her2-mbc-patient-view",
                       json=hook_request(prefetch=prefetch, **fhir_auth(httpserver.url_for("/fhir"))))
    assert resp.status_code == 200
    assert "Condition/c9" in ids(captured[0]["resources"])


def test_operation_outcome_in_prefetch_without_server_is_412(client):
    prefetch = empty_prefetch()
    prefetch["medicationStatements"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(prefetch=prefetch))
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["expression"] == ["/prefetch/medicationStatements"]


def test_paginated_prefetch_bundle_is_followed(client, captured, httpserver):
    next_url = httpserver.url_for("/fhir/Condition") + "?page=2"
    prefetch = empty_prefetch()
    prefetch["conditions"] = searchset({"resourceType": "Condition", "id": "c1"}, next_url=next_url)
    httpserver.expect_request("/fhir/Condition", query_string="page=2",
                              headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_json(
        searchset({"resourceType": "Condition", "id": "c2"}))
    resp = client.post("/cds-services/her2-mbc-patient-view",
                       json=hook_request(prefetch=prefetch, **fhir_auth(httpserver.url_for("/fhir"))))
    assert resp.status_code == 200
    assert {"Condition/c1", "Condition/c2"} <= set(ids(captured[0]["resources"]))


def test_paginated_prefetch_without_server_is_partial(client, captured):
    prefetch = empty_prefetch()
    prefetch["conditions"] = searchset({"resourceType": "Condition", "id": "c1"},
                                       next_url="https://ehr.example.org/fhir/Condition?page=2")
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(prefetch=prefetch))
    assert resp.status_code == 200
    assert "Condition/c1" in ids(captured[0]["resources"])
    assert captured[0]["findings"][0].code == "data-partial"


def test_paging_link_to_another_host_is_not_followed(client, captured, httpserver):
    """The bearer token must never leave for a server other than fhirServer."""
    prefetch = empty_prefetch()
    prefetch["conditions"] = searchset({"resourceType": "Condition", "id": "c1"},
                                       next_url="http://evil.example.org/steal?page=2")
    resp = client.post("/cds-services/her2-mbc-patient-view",
                       json=hook_request(prefetch=prefetch, **fhir_auth(httpserver.url_for("/fhir"))))
    assert resp.status_code == 200
    assert "another server" in captured[0]["findings"][0].message
    assert len(httpserver.log) == 0


def test_access_token_never_logged(client, httpserver, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/fhir/Patient/p1").respond_with_json({"resourceType": "Patient", "id": "p1"})
    for rtype in ("Observation", "Condition", "MedicationStatement", "MedicationRequest"):
        httpserver.expect_request(f"/fhir/{rtype}").respond_with_data("oops", status=500)
    client.post("/cds-services/her2-mbc-patient-view", json=hook_request(**fhir_auth(httpserver.url_for("/fhir"))))
    assert TOKEN not in caplog.text


def test_issued_cards_are_recorded_and_audit_written(app, client, monkeypatch):
    card = {"uuid": "c-1", "summary": "Test", "indicator": "info", "source": {"label": "her2-cds"},
            "extension": {"org.her2-cds.rule": {"id": "M2", "rulebookVersion": "2026.11"}}}
    monkeypatch.setattr(hooks.advice, "advise", lambda *a, **k: Advice((IssuedCard(card, "M2", "2026.11"),), None))
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(prefetch=empty_prefetch()))
    assert resp.get_json()["cards"] == [card]
    store = app.extensions["her2cds.store"]
    report = store.feedback_report()
    assert report[0]["rule_id"] == "M2" and report[0]["issued"] == 1
    audit = audit_rows(store)[-1]
    assert audit["status"] == 200 and audit["card_count"] == 1 and audit["rule_ids"] == "M2"
    assert audit["patient_id"] == "p1"


def test_invalid_card_is_dropped_not_sent(client, monkeypatch):
    bad = {"uuid": "c-2", "summary": "x" * 140, "indicator": "info", "source": {"label": "her2-cds"}}
    monkeypatch.setattr(hooks.advice, "advise", lambda *a, **k: Advice((IssuedCard(bad, "M2", "2026.11"),), None))
    resp = client.post("/cds-services/her2-mbc-patient-view", json=hook_request(prefetch=empty_prefetch()))
    assert resp.status_code == 200 and resp.get_json() == {"cards": []}


def test_card_links_follow_the_host_each_request_came_to(client, requests_today, migrated_db_url):
    from cds_service import create_app
    body = requests_today["p02-no-pertuzumab-order-select"]

    def launch_urls(c, **kw) -> set[str]:
        resp = c.post("/cds-services/her2-mbc-order-select", json=body, **kw)
        assert resp.status_code == 200 and resp.get_json()["cards"]
        return {link["url"] for card in resp.get_json()["cards"] for link in card.get("links", ())}

    assert launch_urls(client) == {"http://localhost/smart/launch"}
    assert launch_urls(client, base_url="https://ehr-gw.example.org:8443/cds/") == {
        "https://ehr-gw.example.org:8443/cds/smart/launch"}
    assert launch_urls(client) == {"http://localhost/smart/launch"}
    behind_proxy = create_app(auth="disabled", database_url=migrated_db_url,
                              public_url="https://cds.example.org/").test_client()
    assert launch_urls(behind_proxy, base_url="http://10.0.0.7:8080/") == {"https://cds.example.org/smart/launch"}
