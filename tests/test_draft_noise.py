"""No "record could not be read" card for drafts the advice does not read (issue 22).

The CDS Hooks sandbox's Rx View sends a draft with no medication[x] until a
drug is picked, and its drafts carry ``category``/``reasonCode`` shapes that
are not valid R4.  Neither is data the advice depends on: logged, not carded.
"""

from __future__ import annotations

import copy

from cds_service.app import create_app

SELECT = "/cds-services/her2-mbc-order-select"
EXT = "org.her2-cds.rule"

SANDBOX_NO_DRUG = {"resourceType": "MedicationRequest", "id": "request-123", "status": "draft",
                   "intent": "order", "subject": {"reference": "Patient/x"},
                   "category": {"coding": [{"code": "outpatient"}]}}
SANDBOX_NAPROXEN = {"resourceType": "MedicationRequest", "id": "request-456", "status": "draft",
                    "intent": "order", "subject": {"reference": "Patient/x"},
                    "category": {"coding": [{"code": "outpatient"}]},
                    "reasonCode": {"text": "pain"},
                    "medicationCodeableConcept": {"text": "Naproxen sodium 220 MG Oral Tablet", "coding": [
                        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "849574",
                         "display": "Naproxen sodium 220 MG Oral Tablet"}]}}


def cards_for(migrated_db_url, request_json):
    client = create_app(auth="disabled", database_url=migrated_db_url).test_client()
    resp = client.post(SELECT, json=request_json)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["cards"]


def with_draft(req: dict, draft: dict, select_only: bool = True) -> dict:
    req = copy.deepcopy(req)
    draft = dict(draft, subject={"reference": f"Patient/{req['context']['patientId']}"})
    req["context"]["draftOrders"]["entry"].append({"resource": draft})
    if select_only:
        req["context"]["selections"] = [f"MedicationRequest/{draft['id']}"]
    return req


def test_a_sandbox_draft_without_a_drug_gets_no_data_quality_card(migrated_db_url, fixtures_today):
    req = with_draft(fixtures_today[1]["p01-de-novo-thp-order-select"], SANDBOX_NO_DRUG)
    rules = [c["extension"][EXT]["id"] for c in cards_for(migrated_db_url, req)]
    assert "D4" not in rules


def test_a_non_oncology_sandbox_draft_gets_no_data_quality_card(migrated_db_url, fixtures_today):
    req = with_draft(fixtures_today[1]["p01-de-novo-thp-order-select"], SANDBOX_NAPROXEN)
    rules = [c["extension"][EXT]["id"] for c in cards_for(migrated_db_url, req)]
    assert "D4" not in rules


def test_the_thp_advice_is_unchanged_beside_a_sandbox_draft(migrated_db_url, fixtures_today):
    base = fixtures_today[1]["p02-no-pertuzumab-order-select"]
    before = sorted(c["extension"][EXT]["id"] for c in cards_for(migrated_db_url, base))
    req = with_draft(base, SANDBOX_NAPROXEN, select_only=False)
    after = sorted(c["extension"][EXT]["id"] for c in cards_for(migrated_db_url, req))
    assert before == after and before
