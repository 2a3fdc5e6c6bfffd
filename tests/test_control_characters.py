"""NUL and other control characters (issue 13, item 5): refused or stored alike on SQLite and PostgreSQL.

PostgreSQL refuses NUL in text columns, SQLite stores it, so the same
request used to give different answers: a NUL in a feedback comment was a
500 on PostgreSQL, a NUL in ``jti`` a 503 on every retry, and a NUL in
``hookInstance`` a 200 whose audit and issued-card rows were silently
dropped.  Now the fields the service stores refuse control characters with
a 400 naming the field, text that only the audit trail keeps is stored with
such characters escaped, and a token id of any content is remembered.
Every test runs on both databases.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from cds_service import create_app
from cds_service.auth.jwt_tokens import generate_private_key, mint_token, private_key_pem, public_jwk

from conftest import issue_card
from store_rows import feedback_rows, audit_rows

FEEDBACK_URL = "/cds-services/her2-mbc-patient-view/feedback"
HOOK_URL = "/cds-services/her2-mbc-patient-view"
ISS = "urn:test:control-characters"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, migrated_db_url):
    if request.param == "sqlite":
        return migrated_db_url
    url = os.environ.get("HER2CDS_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("HER2CDS_TEST_POSTGRES_URL is not set (deselect with -m 'not postgres').")
    return url


@pytest.fixture
def app(database_url):
    app = create_app(auth="disabled", database_url=database_url)
    yield app
    app.extensions["her2cds.store"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def overridden(card: str, /, **changes) -> dict:
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T08:01:00Z",
            "acceptedSuggestions": [{"id": "s1"}],
            "overrideReason": {"reason": {"system": "https://her2-cds.example.org/override",
                                          "code": "patient-declined", "display": "Patient declined"},
                               "userComment": "discussed"}}
    for path, value in changes.items():
        node = item
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[keys[-1]] = value
    return item


def stored_cards(app, prefix: str) -> list[dict]:
    return [r for r in feedback_rows(app.extensions["her2cds.store"]) if r["card_uuid"].startswith(prefix)]


def audit_row(app, request_id: str) -> dict:
    rows = [r for r in audit_rows(app.extensions["her2cds.store"]) if r["request_id"] == request_id]
    assert len(rows) == 1, rows
    return rows[0]


FEEDBACK_FIELDS = [
    ("card", "/feedback/0/card"),
    ("acceptedSuggestions.0.id", "/feedback/0/acceptedSuggestions/0/id"),
    ("overrideReason.reason.system", "/feedback/0/overrideReason/reason/system"),
    ("overrideReason.reason.code", "/feedback/0/overrideReason/reason/code"),
    ("overrideReason.reason.display", "/feedback/0/overrideReason/reason/display"),
    ("overrideReason.userComment", "/feedback/0/overrideReason/userComment"),
]


@pytest.mark.parametrize("char", ["\u0000", "\u001b", "\u007f", "\u0085"], ids=["NUL", "ESC", "DEL", "NEL"])
@pytest.mark.parametrize("field,where", FEEDBACK_FIELDS, ids=[f for f, _ in FEEDBACK_FIELDS])
def test_control_characters_in_stored_feedback_fields_are_400_with_the_path(app, client, field, where, char):
    card = f"cc-{uuid.uuid4().hex}"
    value = card + char if field == "card" else f"before{char}after"
    resp = client.post(FEEDBACK_URL, json={"feedback": [overridden(card, **{field: value})]})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    issue = resp.get_json()["issue"][0]
    assert issue["expression"] == [where]
    assert "control characters" in issue["diagnostics"]
    assert char not in json.dumps(resp.get_json(), ensure_ascii=False)  # the value is not echoed
    assert stored_cards(app, card) == []


def test_a_comment_keeps_its_tabs_and_line_breaks(app, client):
    card = issue_card(app.extensions["her2cds.store"], f"cc-{uuid.uuid4().hex}", suggestions=["s1"])
    comment = "line one\r\n\tline two\nzwei: Übelkeit, 恶心 😀"
    resp = client.post(FEEDBACK_URL, json={"feedback": [overridden(card, **{"overrideReason.userComment": comment})]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert [r["user_comment"] for r in stored_cards(app, card)] == [comment]


def test_a_lone_surrogate_is_400_with_the_path(app, client):
    card = issue_card(app.extensions["her2cds.store"], f"cc-{uuid.uuid4().hex}", suggestions=["s1"])
    raw = json.dumps({"feedback": [overridden(card)]}).replace('"discussed"', '"dis\\ud800cussed"')
    resp = client.post(FEEDBACK_URL, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["issue"][0]["expression"] == ["/feedback/0/overrideReason/userComment"]
    assert stored_cards(app, card) == []
    # a surrogate *pair* is one character, and fine
    ok = raw.replace("\\ud800", "\\ud83d\\ude00")
    assert client.post(FEEDBACK_URL, data=ok, headers={"Content-Type": "application/json"}).status_code == 200
    assert [r["user_comment"] for r in stored_cards(app, card)] == ["dis😀cussed"]


def test_an_outcome_timestamp_longer_than_its_column_is_400(app, client):
    """The pattern allows any number of fraction digits; the column holds 40 characters."""
    card = f"cc-{uuid.uuid4().hex}"
    resp = client.post(FEEDBACK_URL, json={"feedback": [overridden(
        card, outcomeTimestamp="2026-11-21T08:01:00." + "1" * 40 + "Z")]})
    assert resp.status_code == 400
    assert resp.get_json()["issue"][0]["expression"] == ["/feedback/0/outcomeTimestamp"]


def test_nul_in_hook_instance_and_patient_id_is_400_and_still_audited(app, client):
    rid = uuid.uuid4().hex
    instance = f"hi-{rid[:8]}\u0000tail"
    body = {"hook": "patient-view", "hookInstance": instance,
            "context": {"patientId": "p\u00001", "userId": "Practitioner/dr-1"}}
    resp = client.post(HOOK_URL, json=body, headers={"X-Request-Id": rid})
    assert resp.status_code == 400
    locations = [e for i in resp.get_json()["issue"] for e in i["expression"]]
    assert "/hookInstance" in locations and "/context/patientId" in locations
    row = audit_row(app, rid)
    assert row["status"] == 400
    assert row["hook_instance"] == f"hi-{rid[:8]}\\u0000tail"
    assert row["patient_id"] == "p\\u00001"


def test_nul_in_the_service_path_is_404_and_audited(app, client):
    rid = uuid.uuid4().hex
    resp = client.post("/cds-services/x%00y", json={"hook": "patient-view"}, headers={"X-Request-Id": rid})
    assert resp.status_code == 404
    assert audit_row(app, rid)["service_id"] == "x\\u0000y"


def test_audit_text_is_escaped_and_cut_to_its_column_alike(app):
    store = app.extensions["her2cds.store"]
    rid = uuid.uuid4().hex
    store.record_invocation({"request_id": rid, "service_id": "svc", "hook": "h\u0000\u001b\u0085",
                             "hook_instance": "\u0000" * 100, "patient_id": "p\ud800", "status": 400,
                             "outcome": "structure"}, "svc", "patient-view", [])
    row = audit_row(app, rid)
    assert row["hook"] == "h\\u0000\\u001b\\u0085"
    assert row["hook_instance"] == ("\\u0000" * 17)[:100]
    assert row["patient_id"] == "p\\ud800"


@pytest.fixture
def secured(database_url, tmp_path):
    key = generate_private_key("ES384")
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({ISS: {"jwks": {"keys": [public_jwk(key, "k1", "ES384")]}}}))
    app = create_app(auth="required", database_url=database_url, trusted_issuers=str(issuers))
    yield app.test_client(), private_key_pem(key)
    app.extensions["her2cds.store"].dispose()


@pytest.mark.parametrize("jti", ["nul\u0000", "esc\u001b[2J", "x" * 256], ids=["NUL", "ESC", "longest"])
def test_a_token_id_of_any_content_is_remembered_and_its_replay_refused(secured, jti):
    client, pem = secured
    token = mint_token(pem, "k1", ISS, "http://localhost/cds-services", jti=(uuid.uuid4().hex[:8] + jti)[:256])
    first = client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert first.status_code == 200, first.get_data(as_text=True)
    again = client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401
