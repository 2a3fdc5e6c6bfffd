"""POST /cds-services/{id}/feedback: validated, stored durably, idempotent."""

import pytest

from cds_service import create_app

URL = "/cds-services/her2-mbc-patient-view/feedback"


def accepted(card="card-1", ts="2026-11-21T08:00:00Z"):
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": "sugg-1"}], "outcomeTimestamp": ts}


def overridden(card="card-2", code="patient-declined", display="Patient declined"):
    return {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T08:01:00.123+01:00",
            "overrideReason": {"reason": {"system": "https://her2-cds.example.org/override", "code": code,
                                          "display": display}, "userComment": "discussed"}}


def test_feedback_is_stored_and_survives_recreating_the_app(db_url):
    app = create_app(auth="disabled", database_url=db_url)
    resp = app.test_client().post(URL, json={"feedback": [accepted(), overridden()]})
    assert resp.status_code == 200
    assert resp.get_json() == {"received": 2, "stored": 2, "duplicates": 0}
    app.extensions["her2cds.store"].dispose()

    again = create_app(auth="disabled", database_url=db_url)
    rows = again.extensions["her2cds.store"].feedback_rows()
    assert [(r["card_uuid"], r["outcome"]) for r in rows] == [("card-1", "accepted"), ("card-2", "overridden")]
    assert rows[0]["accepted_suggestions"] == '["sugg-1"]'
    assert rows[1]["override_code"] == "patient-declined" and rows[1]["user_comment"] == "discussed"


def test_repeated_feedback_is_stored_once(app, client):
    for _ in range(3):
        assert client.post(URL, json={"feedback": [accepted()]}).status_code == 200
    assert len(app.extensions["her2cds.store"].feedback_rows()) == 1


def test_a_later_different_outcome_is_a_new_record(app, client):
    client.post(URL, json={"feedback": [accepted(ts="2026-11-21T08:00:00Z")]})
    client.post(URL, json={"feedback": [accepted(ts="2026-11-21T09:00:00Z")]})
    assert len(app.extensions["her2cds.store"].feedback_rows()) == 2


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
