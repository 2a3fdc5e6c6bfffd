"""The FHIR fallback in production conditions (issue 12): slow servers, refused optional queries.

A client that prefetches nothing leaves every query to the service.  With the
default settings a FHIR server answering each search in 600 ms must still
give the same cards as the prefetched request (the queries run in parallel
within ``fhir_time_budget``); a server that refuses one optional query (400,
403, 404 or 501) costs that data only: no "could not be read" card, a log
line for the integrator.  No timing is asserted here (speed lives in
benchmarks/); the tests assert that the cards arrive.
"""

from __future__ import annotations

import copy
import logging

import pytest

from cds_service.app import create_app
from cds_service.config import Settings

from conftest import LOOPBACK_FHIR, card_rules, fixture_generator
from fake_fhir import FakeFhir, PatientBehaviour, send_json

EXT = "org.her2-cds.rule"
SIGN = "/cds-services/her2-mbc-order-sign"
SELECT = "/cds-services/her2-mbc-order-select"
VIEW = "/cds-services/her2-mbc-patient-view"


@pytest.fixture(scope="module")
def built(fixtures_today):
    """The session's fixtures built for today (shared: tests copy what they change)."""
    patients, requests, _ = fixtures_today
    return fixture_generator(), patients, requests


def resources_of(patients, pid):
    return [e["resource"] for e in patients[pid]["entry"]]


class Records(logging.Handler):
    """The records of one logger, whatever the app's logging set-up does to propagation."""

    def __init__(self, name):
        super().__init__(logging.DEBUG)
        self.logger, self.records = logging.getLogger(name), []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        self.level_before = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self.records

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


def patient_client(migrated_db_url):
    """Generous FHIR timeouts where a test is about data, not speed (the machine may be busy)."""
    return create_app(auth="disabled", database_url=migrated_db_url, fhir_connect_timeout=5, fhir_read_timeout=10,
                      fhir_time_budget=20, **LOOPBACK_FHIR).test_client()


def fallback(request: dict, base: str) -> dict:
    body = {k: v for k, v in request.items() if k != "prefetch"}
    body["fhirServer"] = base
    return body


# A real wait on a slow peer (every query answered in 600 ms): the integration tier, not the quick loop.
@pytest.mark.integration
@pytest.mark.parametrize("name,url", [("p69-male-letrozole-order-select", SELECT),
                                      ("p63-period-only-patient-view", VIEW),
                                      ("p67-unknown-42-order-sign", SIGN)])
def test_defaults_give_the_prefetch_cards_from_a_fhir_server_at_600_ms_per_query(migrated_db_url, built, name, url):
    gen, patients, requests = built
    pid = requests[name]["context"]["patientId"]
    client = create_app(auth="disabled", database_url=migrated_db_url, **LOOPBACK_FHIR).test_client()
    expected = card_rules(client.post(url, json=requests[name]))
    behaviour = PatientBehaviour(resources_of(patients, pid), gen.searchset, delay=0.6)
    # transport of a real server: keep-alive, and a listen backlog that does not drop the
    # call's parallel connections (the fake's default of 5 makes the kernel retry a SYN after 1 s)
    with FakeFhir(behaviour, keep_alive=True, nodelay=True, backlog=64) as fhir:
        got = card_rules(client.post(url, json=fallback(requests[name], fhir.base)))
    assert got == expected and got
    assert "D4" not in got


def test_defaults_are_the_documented_production_budget():
    s = Settings()
    assert (s.fhir_connect_timeout, s.fhir_read_timeout, s.fhir_time_budget) == (1.0, 1.5, 2.5)
    assert s.fhir_read_timeout > 0.6 and s.fhir_time_budget < 5


@pytest.mark.parametrize("status", [400, 403, 404, 501])
def test_a_refused_optional_query_costs_its_data_only(migrated_db_url, built, status):
    gen, patients, requests = built
    name = "p67-unknown-42-order-select"
    pid = requests[name]["context"]["patientId"]
    serve = PatientBehaviour(resources_of(patients, pid), gen.searchset)

    def refuse_procedures(handler, path, query):
        if path.endswith("/Procedure"):
            send_json(handler, {"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "not-supported", "diagnostics": "unsupported search"}]}, status)
        else:
            serve(handler, path, query)

    client = patient_client(migrated_db_url)
    with Records("her2cds.fhir") as records, FakeFhir(refuse_procedures) as fhir:
        resp = client.post(SELECT, json=fallback(requests[name], fhir.base))
    got = card_rules(resp)
    assert "D4" not in got and "S9-UNKNOWN" in got
    s9 = next(c for c in resp.get_json()["cards"] if c["extension"][EXT]["id"] == "S9-UNKNOWN")
    assert "did not return its menopausal-status or procedure records" in s9["detail"]
    refused = [r for r in records if getattr(r, "prefetch_key", None) == "procedures"]
    assert refused and refused[0].status == status


def test_a_refused_required_query_is_still_a_412(migrated_db_url, built):
    gen, patients, requests = built
    name = "p67-unknown-42-order-select"
    client = create_app(auth="disabled", database_url=migrated_db_url, **LOOPBACK_FHIR).test_client()

    def refuse_conditions(handler, path, query):
        send_json(handler, {"resourceType": "OperationOutcome", "issue": []}, 404)

    with FakeFhir(refuse_conditions) as fhir:
        resp = client.post(SELECT, json=fallback(requests[name], fhir.base))
    assert resp.status_code == 412


def test_a_leniently_read_draft_is_logged_not_a_could_not_be_read_card(migrated_db_url, built):
    """The sandbox sends a draft's ``category`` as an object: read leniently, nothing lost."""
    _, _, requests = built
    req = copy.deepcopy(requests["p69-male-letrozole-order-sign"])  # the session's copy stays as built
    draft = req["context"]["draftOrders"]["entry"][0]["resource"]
    draft["category"] = {"coding": [{"code": "outpatient"}]}
    client = create_app(auth="disabled", database_url=migrated_db_url, **LOOPBACK_FHIR).test_client()
    with Records("her2cds.hooks") as records:
        got = card_rules(client.post(SIGN, json=req))
    assert "D4" not in got and "S9" in got
    lenient = [r for r in records if r.getMessage() == "draft order read leniently"]
    assert lenient and lenient[0].resource.startswith("MedicationRequest/")  # logged by the shell, by id
