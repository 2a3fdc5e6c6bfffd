"""A progression opens the next-line card at chart opening once per event, not at every opening (issue 20).

Knowledge file §2.6: "gets the next-line card at patient-view (L1/L2/L3
content), once per progression event, not at every chart opening".  The
memory is the issued-cards table (shared by every worker and instance), keyed
by the clinician (issuer, tenant, user) and the progression's FHIR reference.
"""

from __future__ import annotations

import copy

import pytest

from cds_service.app import create_app
from conftest import card_rules
from store_rows import audit_rows

VIEW = "/cds-services/her2-mbc-patient-view"

@pytest.fixture(scope="module")
def requests_today(fixtures_today):
    return fixtures_today[1]

def test_the_next_line_card_opens_once_per_progression(migrated_db_url, requests_today):
    req = requests_today["p90-progression-on-hp-patient-view"]
    one = create_app(auth="disabled", database_url=migrated_db_url).test_client()
    other_instance = create_app(auth="disabled", database_url=migrated_db_url).test_client()
    assert card_rules(one.post(VIEW, json=req)) == ["L4"]
    assert card_rules(other_instance.post(VIEW, json=req)) == []  # the same clinician, the same progression
    store = one.application.extensions["her2cds.store"]
    assert audit_rows(store)[-1]["suppressed"].startswith("L4@")

def test_another_clinician_or_a_new_progression_sees_it(migrated_db_url, requests_today):
    req = requests_today["p90-progression-on-hp-patient-view"]
    client = create_app(auth="disabled", database_url=migrated_db_url).test_client()
    assert card_rules(client.post(VIEW, json=req)) in (["L4"], [])
    colleague = copy.deepcopy(req)
    colleague["context"]["userId"] = "Practitioner/covering-oncologist"
    assert card_rules(client.post(VIEW, json=colleague)) == ["L4"]
    newer = copy.deepcopy(req)
    obs = next(e["resource"] for e in newer["prefetch"]["otherObservations"]["entry"]
               if e["resource"]["code"]["coding"][0]["code"] == "97509-4")
    obs["id"] = obs["id"] + "-rescan"  # a second CT showing progression: another event
    assert card_rules(client.post(VIEW, json=newer)) == ["L4"]

def test_a_database_that_cannot_answer_costs_the_memory_not_the_card(migrated_db_url, requests_today, monkeypatch):
    req = requests_today["p90-progression-on-hp-patient-view"]
    client = create_app(auth="disabled", database_url=migrated_db_url).test_client()
    card_rules(client.post(VIEW, json=req))
    store = client.application.extensions["her2cds.store"]

    def down(*a, **k):
        raise RuntimeError("database down")
    monkeypatch.setattr(store, "earlier_cards", down)
    assert card_rules(client.post(VIEW, json=req)) == ["L4"]
