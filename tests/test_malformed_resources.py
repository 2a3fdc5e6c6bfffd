"""Resources that are not FHIR cost only themselves: a finding, never a 500.

Each case is a fixture request with one edit that the fuzz suite once turned
into a 500 (an unhashable code, a list where a string belongs, ...).
"""

import json
from pathlib import Path

import pytest

REQUESTS = Path(__file__).resolve().parent.parent / "fixtures" / "requests"


def edit(name: str, pointer: str, value):
    body = json.loads((REQUESTS / name).read_text())
    *path, last = pointer.strip("/").split("/")
    node = body
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return body


CASES = [
    ("p24-brain-order-select.json", "/prefetch/her2/entry/0/resource/code/coding/0/system", ["x"]),
    ("p14-er-low-patient-view.json", "/prefetch/otherObservations/entry/0/resource/code/coding/0/code", ["x"]),
    ("p09-discordant-order-select.json", "/prefetch/conditions/entry/1/resource/code/coding/0/code", ["x"]),
    ("p17-on-palbo-patient-view.json", "/prefetch/her2/entry/0/resource/code/coding", True),
    ("p46-tucatinib-2l-order-select.json", "/prefetch/conditions/entry/0/resource/id", {"a": 1}),
    ("p16-maint-patient-view.json", "/prefetch/conditions/entry", 5),
]


@pytest.mark.parametrize("name,pointer,value", CASES, ids=[c[0] + c[1] for c in CASES])
def test_one_bad_resource_does_not_sink_the_request(client, response_validator, name, pointer, value):
    body = edit(name, pointer, value)
    service = "her2-mbc-" + body["hook"]
    resp = client.post(f"/cds-services/{service}", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    response_validator.validate(resp.get_json())


def test_unreadable_resource_is_reported_on_a_data_quality_card(client):
    body = edit("p46-tucatinib-2l-order-select.json", "/prefetch/medicationStatements/entry/0/resource/id", ["x"])
    cards = client.post("/cds-services/her2-mbc-order-select", json=body).get_json()["cards"]
    d4 = [c for c in cards if c["extension"]["org.her2-cds.rule"]["id"] == "D4"]
    assert d4 and "id that is not a string" in d4[0]["detail"]


def test_a_bundle_is_opened_the_same_way_by_the_client_and_the_intake():
    """One reading of a Bundle's entries (core.parse.entry_resources): search outcomes are not part of
    the record; an entry holding no resource is dropped by the FHIR client and reported by the intake."""
    from cds_service.core.criteria.intake import read_resources
    from cds_service.core.parse import bundle_resources
    from criteria_builders import patient, terminology

    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing"}]}
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": patient()}, {"resource": outcome, "search": {"mode": "outcome"}},
        {"fullUrl": "urn:uuid:1"}, "junk"]}
    assert [r["resourceType"] for r in bundle_resources(bundle)] == ["Patient"]
    intake = read_resources([bundle], {"patientId": "p1"}, terminology())
    assert intake.patient is not None
    assert [f.code for f in intake.out.findings] == ["malformed-resource"]
    assert "NoneType" in intake.out.findings[0].message
