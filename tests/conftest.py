"""Shared test fixtures: an app on a temporary database, and request builders."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from cds_service import create_app
from cds_service.protocol.discovery import PREFETCH

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "cds_service" / "schemas"


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


#: The fake FHIR servers listen on loopback, which the service refuses by default: allow it, explicitly.
LOOPBACK_FHIR = {"fhir_servers": "http://127.0.0.1:*,http://localhost:*",
                 "fhir_allowed_networks": "127.0.0.0/8,::1/128"}


@pytest.fixture
def app(db_url):
    return create_app(auth="disabled", database_url=db_url, **LOOPBACK_FHIR)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def response_validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / "cds-response.schema.json").read_text()))


def searchset(*resources, next_url: str | None = None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
              "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r} for r in resources]}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def empty_prefetch(patient_id: str = "p1") -> dict:
    """Every prefetch key satisfied: a Patient and empty searchsets."""
    out = {key: searchset() for key in PREFETCH}
    out["patient"] = {"resourceType": "Patient", "id": patient_id, "gender": "female", "birthDate": "1968-03-01"}
    return out


def hook_request(hook: str = "patient-view", patient_id: str = "p1", prefetch: dict | None = None,
                 draft_orders: list[dict] | None = None, selections: list[str] | None = None, **extra) -> dict:
    context = {"patientId": patient_id, "userId": "Practitioner/dr-1"}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in draft_orders or []]}
    if hook == "order-select":
        context["selections"] = selections if selections is not None else [
            f"{r['resourceType']}/{r['id']}" for r in draft_orders or []]
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body
