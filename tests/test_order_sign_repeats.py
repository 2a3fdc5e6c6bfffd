"""order-sign carries the order warnings, without repeating what order-select just showed (issue 12).

Two app instances share one database, as two gunicorn workers or two service
instances do: a card returned at order-select by one is not repeated at
order-sign by the other, for the same patient, rule and draft orders, within
the window; anything else is shown again.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from sqlalchemy import select

from cds_service.app import create_app
from cds_service.config import ConfigError, from_env
from cds_service.protocol import repeats
from cds_service.storage import issued_cards


EXT = "org.her2-cds.rule"
SELECT = "/cds-services/her2-mbc-order-select"
SIGN = "/cds-services/her2-mbc-order-sign"


@pytest.fixture(scope="module")
def requests_today(fixtures_today):
    """The session's fixture requests built for today (shared: a test copies what it changes)."""
    return fixtures_today[1]


def rules(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return sorted(c["extension"][EXT]["id"] for c in resp.get_json()["cards"])


def two_instances(db_url, **settings):
    return (create_app(auth="disabled", database_url=db_url, **settings).test_client(),
            create_app(auth="disabled", database_url=db_url, **settings).test_client())


def test_order_warnings_fire_at_order_sign_when_order_select_was_not_called(db_url, requests_today):
    """An EHR integrating only order-sign sees S9 for a man on letrozole alone."""
    one, _ = two_instances(db_url)
    assert "S9" in rules(one.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))


@pytest.fixture
def shared_database(backend_url, db_url):
    """The database two instances share: a SQLite file, or the PostgreSQL test server (emptied first)."""
    if backend_url != db_url:
        store = create_app(auth="disabled", database_url=backend_url).extensions["her2cds.store"]
        with store.engine.begin() as conn:
            conn.execute(issued_cards.delete())
    return backend_url


def test_a_card_shown_at_order_select_is_not_repeated_at_order_sign_by_another_instance(shared_database,
                                                                                        requests_today):
    one, two = two_instances(shared_database)
    assert "S9" in rules(one.post(SELECT, json=requests_today["p69-male-letrozole-order-select"]))
    assert "S9" not in rules(two.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))


def test_other_drafts_or_another_patient_are_shown_again(db_url, requests_today):
    one, two = two_instances(db_url)
    rules(one.post(SELECT, json=requests_today["p69-male-letrozole-order-select"]))
    other = copy.deepcopy(requests_today["p69-male-letrozole-order-sign"])
    other["context"]["draftOrders"]["entry"][0]["resource"]["medicationCodeableConcept"] = {
        "coding": [{"system": "http://www.whocc.no/atc", "code": "L02BG03", "display": "anastrozole"}]}
    assert "S9" in rules(two.post(SIGN, json=other))
    # the 42-year-old's S9-UNKNOWN was never shown at order-select: shown at order-sign
    assert "S9-UNKNOWN" in rules(two.post(SIGN, json=requests_today["p67-unknown-42-order-sign"]))


def test_the_window_bounds_the_memory(db_url, requests_today):
    one, two = two_instances(db_url, order_sign_repeat_window_hours=12)
    rules(one.post(SELECT, json=requests_today["p69-male-letrozole-order-select"]))
    store = one.application.extensions["her2cds.store"]
    with store.engine.begin() as conn:  # the order-select card was 13 hours ago
        conn.execute(issued_cards.update().values(
            issued_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=13)))
    assert "S9" in rules(two.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))


def test_window_zero_always_repeats(db_url, requests_today):
    one, two = two_instances(db_url, order_sign_repeat_window_hours=0)
    rules(one.post(SELECT, json=requests_today["p69-male-letrozole-order-select"]))
    assert "S9" in rules(two.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))


def test_critical_only_setting_restores_hard_stops_only_at_order_sign(db_url, requests_today):
    one, _ = two_instances(db_url, order_sign_cards="critical-only")
    assert rules(one.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"])) == []
    assert rules(one.post(SIGN, json=requests_today["p29-anthracycline-order-sign"])) == ["S3"]


def test_the_database_never_holds_the_patient_id_in_the_repeat_key(db_url, requests_today):
    one, _ = two_instances(db_url)
    req = requests_today["p69-male-letrozole-order-select"]
    rules(one.post(SELECT, json=req))
    store = one.application.extensions["her2cds.store"]
    with store.engine.connect() as conn:
        keys = [r.repeat_key for r in conn.execute(select(issued_cards.c.repeat_key))]
    assert keys and all(len(k) == 64 and "p69" not in k for k in keys)
    assert repeats.repeat_key("p69-male-letrozole", "S9", req["context"]) in keys


def test_draft_identity_ignores_ids_and_order():
    a = {"draftOrders": {"entry": [
        {"resource": {"resourceType": "MedicationRequest", "id": "x1", "medicationCodeableConcept": {
            "coding": [{"system": "s", "code": "1"}]}}},
        {"resource": {"resourceType": "MedicationRequest", "id": "x2", "medicationCodeableConcept": {"text": "t"}}}]}}
    b = copy.deepcopy(a)
    b["draftOrders"]["entry"].reverse()
    b["draftOrders"]["entry"][0]["resource"]["id"] = "renumbered"
    assert repeats.repeat_key("p", "S9", a) == repeats.repeat_key("p", "S9", b)
    assert repeats.repeat_key("p", "S9", a) != repeats.repeat_key("q", "S9", a)


def test_settings_are_checked():
    with pytest.raises(ConfigError):
        from_env({"HER2CDS_ORDER_SIGN_CARDS": "everything"})
    with pytest.raises(ConfigError):
        from_env({"HER2CDS_ORDER_SIGN_REPEAT_WINDOW_HOURS": "-1"})
    assert from_env({}).order_sign_repeat_window_hours == 12.0
