"""Numbers JSON allows but no float holds, and a draftOrders that is not a Bundle: a finding, never a 500.

An integer of 310–4,300 digits parses in Python but overflows ``float()``;
it may come in a hook request or in a FHIR server's response (issue 13).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REQUESTS = Path(__file__).resolve().parent.parent / "fixtures" / "requests"


def quantities(body):
    """Every prefetched Observation with a valueQuantity."""
    for value in (body.get("prefetch") or {}).values():
        for entry in (value or {}).get("entry") or ():
            res = entry.get("resource") or {}
            if res.get("resourceType") == "Observation" and isinstance(res.get("valueQuantity"), dict):
                yield res


@pytest.mark.parametrize("digits", [310, 1000, 4300])
def test_a_quantity_too_large_for_a_float_is_not_a_500(client, digits):
    body = json.loads((REQUESTS / "p28-lvef-due-patient-view.json").read_text())
    observations = list(quantities(body))
    assert observations
    for res in observations:
        res["valueQuantity"]["value"] = int("9" * digits)
    resp = client.post("/cds-services/her2-mbc-patient-view", data=json.dumps(body),
                       content_type="application/json")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]


@pytest.mark.parametrize("draft_orders", [5, "a string"])
def test_a_draft_orders_that_is_not_a_bundle_is_not_a_500(client, draft_orders):
    body = json.loads((REQUESTS / "p01-de-novo-thp-order-select.json").read_text())
    body["context"]["draftOrders"] = draft_orders
    resp = client.post("/cds-services/her2-mbc-order-select", json=body)
    assert resp.status_code < 500, resp.get_data(as_text=True)[:300]
