"""The fixture table end to end through HTTP: every request, the expected cards, valid cards.

The requests are rebuilt relative to today (``build(today)``) so that "LVEF two
weeks ago" stays two weeks ago; a separate test checks that the committed JSON
is what the generator writes for its anchor date, so the reviewed files and the
tested requests are the same scenarios.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.servicerequest import ServiceRequest

from conftest import fixture_generator
from shipped import PREFETCH, SERVICES

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
EXT = "org.her2-cds.rule"
SERVICE_FOR_HOOK = {s.hook: s.id for s in SERVICES.values()}


def _table():
    with open(FIXTURES / "expected_cards.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_committed_fixtures_match_the_generator():
    patients, requests, rows = fixture_generator().build(fixture_generator().ANCHOR)
    assert len(patients) >= 40
    for pid, bundle in patients.items():
        assert json.loads((FIXTURES / "patients" / f"{pid}.json").read_text()) == bundle
    for name, req in requests.items():
        assert json.loads((FIXTURES / "requests" / f"{name}.json").read_text()) == req
    assert [r["request"] for r in _table()] == [r["request"] for r in rows]
    assert {r["hook"] for r in rows} == {"patient-view", "order-select", "order-sign"}


def test_patients_are_valid_r4_transactions_with_put():
    for path in sorted((FIXTURES / "patients").glob("*.json")):
        data = json.loads(path.read_text())
        Bundle.model_validate(data)
        assert data["type"] == "transaction"
        for e in data["entry"]:
            assert e["request"]["method"] == "PUT"
            assert e["request"]["url"] == f"{e['resource']['resourceType']}/{e['resource']['id']}"


def test_requests_use_discovery_prefetch_keys():
    for path in sorted((FIXTURES / "requests").glob("*.json")):
        req = json.loads(path.read_text())
        assert set(req["prefetch"]) == set(PREFETCH), path.name


def test_every_rule_and_the_scope_gate_are_covered(knowledge):
    rulebook = knowledge.rulebook
    expected = {tok.split(":")[0] for r in _table() for tok in r["expected"].split()}
    # Rules off by default (enabled_by a rulebook flag, e.g. F1) are covered in test_rules_evaluator.
    assert {r.id for r in rulebook.rules if rulebook.enabled(r)} <= expected
    silent = {r["patient"] for r in _table() if not r["expected"]}
    assert {"p41-lung-primary", "p42-early"} <= silent


@pytest.mark.parametrize("row", _table(), ids=lambda r: r["request"])
def test_fixture_request_over_http(row, client, fixtures_today, response_validator):
    _, requests, _ = fixtures_today
    body = requests[row["request"]]
    resp = client.post(f"/cds-services/{SERVICE_FOR_HOOK[body['hook']]}", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    cards = resp.get_json()["cards"]
    got = sorted(f"{c['extension'][EXT]['id']}:{c['indicator']}" for c in cards)
    assert got == sorted(row["expected"].split()), row["scenario"]
    assert not list(response_validator.iter_errors({"cards": cards}))
    draft_ids = {f"MedicationRequest/{e['resource']['id']}"
                 for e in (body["context"].get("draftOrders") or {}).get("entry", [])}
    for card in cards:
        _check_card(card, body, draft_ids)


def _check_card(card, body, draft_ids):
    assert len(card["summary"]) < 140
    assert card["source"]["label"] and card["source"]["topic"]["code"] == card["extension"][EXT]["id"]
    assert card["extension"][EXT]["rulebookVersion"]
    assert "**Evidence**" in card["detail"]
    why = card["detail"].rsplit("**Why this card**", 1)
    assert len(why) == 2 and card["extension"][EXT]["id"] in why[1]
    assert all(o["display"] for o in card.get("overrideReasons", []))
    if card.get("suggestions"):
        assert card["selectionBehavior"] in ("at-most-one", "any")
        if card["selectionBehavior"] == "at-most-one":
            assert sum(bool(s.get("isRecommended")) for s in card["suggestions"]) <= 1
    for s in card.get("suggestions", []):
        assert s["uuid"] and s["actions"]
        for a in s["actions"]:
            assert a["description"]
            if a["type"] == "delete":
                assert a["resourceId"] in draft_ids
            elif a["type"] == "update":
                # stop_active: the patient's own active medication record, whole, with status stopped
                res = a["resource"]
                assert res["resourceType"] in ("MedicationRequest", "MedicationStatement")
                assert res["status"] == "stopped" and res["id"]
                assert f"{res['resourceType']}/{res['id']}" in _record_refs(body)
                model = MedicationRequest if res["resourceType"] == "MedicationRequest" else MedicationStatement
                model.model_validate(res)
            else:
                res = a["resource"]
                assert res["status"] == "draft"
                assert res["subject"]["reference"] == f"Patient/{body['context']['patientId']}"
                model = MedicationRequest if res["resourceType"] == "MedicationRequest" else ServiceRequest
                model.model_validate(res)


def _record_refs(body):
    """``Type/id`` of every resource the request's prefetch holds."""
    refs = set()
    for value in body["prefetch"].values():
        for e in (value or {}).get("entry", []) if (value or {}).get("resourceType") == "Bundle" else ():
            r = e.get("resource") or {}
            refs.add(f"{r.get('resourceType')}/{r.get('id')}")
    return refs
