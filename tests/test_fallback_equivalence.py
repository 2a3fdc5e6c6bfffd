"""Fetching from the EHR gives the same cards as prefetch: the fallback path reads the same queries.

Each fixture request's prefetch is made by running discovery's queries
against the patient (``fixtures/build_fixtures.py``), so serving that patient from a FHIR server and sending
the request without prefetch must give exactly the same cards.  This also
exercises ``fake_fhir.PatientBehaviour``, the server the fallback benchmark
uses.
"""

from __future__ import annotations

import copy

import pytest

from cds_service import create_app

from conftest import LOOPBACK_FHIR, searchset
from fake_fhir import FakeFhir, PatientBehaviour

CASES = ["p16-maint-patient-view", "p18-on-tucatinib-order-select", "p26-lvef35-order-sign",
         "p09-discordant-patient-view"]
EXT = "org.her2-cds.rule"


@pytest.fixture
def patient_client(migrated_db_url):
    """Generous FHIR timeouts: this compares data, not speed, and the machine may be busy."""
    return create_app(auth="disabled", database_url=migrated_db_url, fhir_connect_timeout=5, fhir_read_timeout=10,
                      fhir_time_budget=20, **LOOPBACK_FHIR).test_client()


def _resources(prefetch: dict) -> list[dict]:
    seen, out = set(), []
    for value in prefetch.values():
        found = [e["resource"] for e in value.get("entry", [])] if value.get("resourceType") == "Bundle" else [value]
        for r in found:
            if (r["resourceType"], r["id"]) not in seen:
                seen.add((r["resourceType"], r["id"]))
                out.append(r)
    return out


def _cards(resp) -> list[str]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return sorted(f"{c['extension'][EXT]['id']}:{c['indicator']}" for c in resp.get_json()["cards"])


@pytest.mark.parametrize("name", CASES)
def test_fetched_data_gives_the_prefetch_cards(patient_client, fixtures_today, name):
    body = copy.deepcopy(fixtures_today[1][name])  # the session's copy stays as built
    service = {"patient-view": "her2-mbc-patient-view", "order-select": "her2-mbc-order-select",
               "order-sign": "her2-mbc-order-sign"}[body["hook"]]
    with_prefetch = _cards(patient_client.post(f"/cds-services/{service}", json=body))
    assert with_prefetch, "a fixture with no cards would make this comparison vacuous"

    prefetch = body.pop("prefetch")
    with FakeFhir(PatientBehaviour(_resources(prefetch), lambda found: searchset(*found))) as fhir:
        body["fhirServer"] = fhir.base
        fetched = _cards(patient_client.post(f"/cds-services/{service}", json=body))
    assert len(fhir.requests) == len(prefetch)
    assert fetched == with_prefetch
