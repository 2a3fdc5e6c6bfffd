"""POST /cds-services/{id}/feedback: validated, stored durably, idempotent."""

import pytest

from cds_service import create_app

from conftest import issue_card
from store_rows import feedback_rows

URL = "/cds-services/her2-mbc-patient-view/feedback"


def accepted(card="card-1", ts="2026-11-21T08:00:00Z"):
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": "sugg-1"}], "outcomeTimestamp": ts}


def overridden(card="card-2", code="patient-declined", display="Patient declined"):
    return {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T08:01:00.123+01:00",
            "overrideReason": {"reason": {"system": "https://her2-cds.example.org/override", "code": code,
                                          "display": display}, "userComment": "discussed"}}


def test_feedback_is_stored_and_survives_recreating_the_app(migrated_db_url):
    app = create_app(auth="disabled", database_url=migrated_db_url)
    _issue(app)
    resp = app.test_client().post(URL, json={"feedback": [accepted(), overridden()]})
    assert resp.status_code == 200
    assert resp.get_json() == {"received": 2, "stored": 2, "duplicates": 0}
    app.extensions["her2cds.store"].dispose()

    again = create_app(auth="disabled", database_url=migrated_db_url)
    rows = feedback_rows(again.extensions["her2cds.store"])
    assert [(r["card_uuid"], r["outcome"]) for r in rows] == [("card-1", "accepted"), ("card-2", "overridden")]
    assert rows[0]["accepted_suggestions"] == '["sugg-1"]'
    assert rows[1]["override_code"] == "patient-declined" and rows[1]["user_comment"] == "discussed"


def _issue(app):
    store = app.extensions["her2cds.store"]
    issue_card(store, "card-1", suggestions=["sugg-1"])
    issue_card(store, "card-2")


def test_repeated_feedback_is_stored_once(app, client):
    _issue(app)
    for _ in range(3):
        assert client.post(URL, json={"feedback": [accepted()]}).status_code == 200
    assert len(feedback_rows(app.extensions["her2cds.store"])) == 1


def test_a_later_different_outcome_is_a_new_record(app, client):
    _issue(app)
    client.post(URL, json={"feedback": [accepted(ts="2026-11-21T08:00:00Z")]})
    client.post(URL, json={"feedback": [accepted(ts="2026-11-21T09:00:00Z")]})
    assert len(feedback_rows(app.extensions["her2cds.store"])) == 2


@pytest.mark.parametrize("body,where", [
    ({}, "/feedback"),
    ({"feedback": []}, "/feedback"),
    ({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-11-21T08:00:00Z",
                    "acceptedSuggestions": []}]}, "/feedback/0/card"),
    ({"feedback": [{**accepted(), "outcome": "ignored"}]}, "/feedback/0/outcome"),
    ({"feedback": [{k: v for k, v in accepted().items() if k != "acceptedSuggestions"}]},
     "/feedback/0/acceptedSuggestions"),
    ({"feedback": [{**accepted(), "outcomeTimestamp": "yesterday"}]}, "/feedback/0/outcomeTimestamp"),
    ({"feedback": [{**overridden(), "overrideReason": {"reason": {"display": "no code"}}}]},
     "/feedback/0/overrideReason/reason/code"),
])
def test_invalid_feedback_is_400_with_location(client, body, where):
    resp = client.post(URL, json=body)
    assert resp.status_code == 400
    out = resp.get_json()
    assert out["resourceType"] == "OperationOutcome"
    assert where in [e for i in out["issue"] for e in i.get("expression", [])]


def test_feedback_for_unknown_service_is_404(client):
    assert client.post("/cds-services/nope/feedback", json={"feedback": [accepted()]}).status_code == 404


# -- feedback is tied to who received the card (issue 21) ------------------------------------------

import datetime as dt  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from cds_service.auth.jwt_tokens import generate_private_key, mint_token, private_key_pem, public_jwk  # noqa: E402
from cds_service.commands.feedback_report import command as feedback_cmd  # noqa: E402

SIGN = "/cds-services/her2-mbc-order-sign"
P26 = Path(__file__).resolve().parent.parent / "fixtures" / "requests" / "p26-lvef35-order-sign.json"


@pytest.fixture
def two_ehrs(tmp_path, migrated_db_url):
    """An app trusting two issuers (one with tenants); ``call(who, path, body)`` signs as ``who``."""
    keys = {name: generate_private_key("ES384") for name in ("urn:ehr-a", "urn:ehr-b")}
    issuers = {iss: {"jwks": {"keys": [public_jwk(k, "k1", "ES384")]}} for iss, k in keys.items()}
    issuers["urn:ehr-a"]["tenants"] = ["t1", "t2"]
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps(issuers))
    app = create_app(auth="required", database_url=migrated_db_url, trusted_issuers=str(path))
    client = app.test_client()

    def call(who, url, body, tenant=None):
        extra = {"tenant": tenant} if tenant else {}
        token = mint_token(private_key_pem(keys[who]), "k1", who, f"http://localhost{url}", **extra)
        return client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})

    return app, call


def _critical_card(call, who="urn:ehr-a", tenant="t1"):
    resp = call(who, SIGN, json.loads(P26.read_text()), tenant=tenant)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["cards"][0]


def _override(card):
    return {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                          "outcomeTimestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "overrideReason": {"reason": card["overrideReasons"][0]}}]}


def _report(migrated_db_url):
    result = CliRunner().invoke(feedback_cmd, ["report", "--json", "--database-url", migrated_db_url])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_another_issuers_override_is_refused_and_not_counted(two_ehrs, migrated_db_url):
    app, call = two_ehrs
    card = _critical_card(call)
    resp = call("urn:ehr-b", SIGN + "/feedback", _override(card))
    assert resp.status_code == 404
    assert resp.get_json()["issue"][0]["expression"] == ["/feedback/0/card"]
    assert feedback_rows(app.extensions["her2cds.store"]) == []
    [row] = [r for r in _report(migrated_db_url) if r["rule_id"] == "S2-C"]
    assert row["overridden"] == 0
    # the same override from the client that received the card is stored, with its issuer, and counted
    assert call("urn:ehr-a", SIGN + "/feedback", _override(card), tenant="t1").get_json()["stored"] == 1
    assert [r["client_iss"] for r in feedback_rows(app.extensions["her2cds.store"])] == ["urn:ehr-a"]
    [row] = [r for r in _report(migrated_db_url) if r["rule_id"] == "S2-C"]
    assert row["overridden"] == 1


def test_another_tenant_of_the_same_issuer_is_refused(two_ehrs):
    app, call = two_ehrs
    card = _critical_card(call, tenant="t1")
    assert call("urn:ehr-a", SIGN + "/feedback", _override(card), tenant="t2").status_code == 404
    assert feedback_rows(app.extensions["her2cds.store"]) == []


def test_feedback_through_another_service_is_refused(two_ehrs):
    _, call = two_ehrs
    card = _critical_card(call)
    assert call("urn:ehr-a", "/cds-services/her2-mbc-patient-view/feedback", _override(card),
                tenant="t1").status_code == 404


def test_a_made_up_suggestion_uuid_is_refused(app, client):
    issue_card(app.extensions["her2cds.store"], "card-9", suggestions=["real-suggestion"])
    resp = client.post(URL, json={"feedback": [accepted(card="card-9") | {"acceptedSuggestions": [{"id": "made-up"}]}]})
    assert resp.status_code == 400
    assert resp.get_json()["issue"][0]["expression"] == ["/feedback/0/acceptedSuggestions/0/id"]
    assert client.post(URL, json={"feedback": [accepted(card="card-9") | {
        "acceptedSuggestions": [{"id": "real-suggestion"}]}]}).status_code == 200


def test_feedback_for_a_card_never_issued_is_refused(app, client):
    resp = client.post(URL, json={"feedback": [overridden(card="never-issued")]})
    assert resp.status_code == 404 and resp.get_json()["resourceType"] == "OperationOutcome"
    assert feedback_rows(app.extensions["her2cds.store"]) == []


def test_the_suggestions_a_hook_issued_are_recorded(client, app):
    resp = client.post(SIGN, json=json.loads(P26.read_text()))
    card = resp.get_json()["cards"][0]
    recorded = app.extensions["her2cds.store"].issued_card(card["uuid"])
    assert recorded["suggestion_ids"] == [s["uuid"] for s in card.get("suggestions", [])]
    assert recorded["client_iss"] is None and recorded["service_id"] == "her2-mbc-order-sign"


def test_a_flood_of_feedback_gets_429_with_retry_after(migrated_db_url):
    app = create_app(auth="disabled", database_url=migrated_db_url, feedback_per_minute=10)
    store = app.extensions["her2cds.store"]
    client = app.test_client()
    statuses = []
    for i in range(15):
        issue_card(store, f"flood-{i}")
        resp = client.post(URL, json={"feedback": [overridden(card=f"flood-{i}")]})
        statuses.append(resp.status_code)
    assert statuses == [200] * 10 + [429] * 5
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.get_json()["resourceType"] == "OperationOutcome" and resp.get_json()["issue"][0]["code"] == "throttled"
    assert len(feedback_rows(store)) == 10
    # another client is not held back by the first one's flood
    other = client.post(URL, json={"feedback": [overridden(card="flood-14")]}, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 200
