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
from conftest import card_rules
from cds_service.config import ConfigError, from_env
from cds_service.protocol import repeats
from cds_service.storage import issued_cards


EXT = "org.her2-cds.rule"
SELECT = "/cds-services/her2-mbc-order-select"
SIGN = "/cds-services/her2-mbc-order-sign"


def two_instances(migrated_db_url, **settings):
    return (create_app(auth="disabled", database_url=migrated_db_url, **settings).test_client(),
            create_app(auth="disabled", database_url=migrated_db_url, **settings).test_client())


def test_order_warnings_fire_at_order_sign_when_order_select_was_not_called(migrated_db_url, requests_today):
    """An EHR integrating only order-sign sees S9 for a man on letrozole alone."""
    one, _ = two_instances(migrated_db_url)
    assert "S9" in card_rules(one.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))


@pytest.fixture
def shared_database(backend_url, migrated_db_url):
    """The database two instances share: a SQLite file, or the PostgreSQL test server (emptied first)."""
    if backend_url != migrated_db_url:
        store = create_app(auth="disabled", database_url=backend_url).extensions["her2cds.store"]
        with store.engine.begin() as conn:
            conn.execute(issued_cards.delete())
    return backend_url


def test_a_card_shown_at_order_select_is_not_repeated_at_order_sign_by_another_instance(shared_database,
                                                                                        requests_today):
    one, two = two_instances(shared_database)
    assert "S9" in card_rules(one.post(SELECT, json=requests_today["p69-male-letrozole-order-select"]))
    assert "S9" not in card_rules(two.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))


def test_other_drafts_or_another_patient_are_shown_again(migrated_db_url, requests_today):
    one, two = two_instances(migrated_db_url)
    card_rules(one.post(SELECT, json=requests_today["p69-male-letrozole-order-select"]))
    other = copy.deepcopy(requests_today["p69-male-letrozole-order-sign"])
    other["context"]["draftOrders"]["entry"][0]["resource"]["medicationCodeableConcept"] = {
        "coding": [{"system": "http://www.whocc.no/atc", "code": "L02BG03", "display": "anastrozole"}]}
    assert "S9" in card_rules(two.post(SIGN, json=other))
    # the 42-year-old's S9-UNKNOWN was never shown at order-select: shown at order-sign
    assert "S9-UNKNOWN" in card_rules(two.post(SIGN, json=requests_today["p67-unknown-42-order-sign"]))


def test_the_window_bounds_the_memory(migrated_db_url, requests_today):
    one, two = two_instances(migrated_db_url, order_sign_repeat_window_hours=12)
    card_rules(one.post(SELECT, json=requests_today["p69-male-letrozole-order-select"]))
    store = one.application.extensions["her2cds.store"]
    with store.engine.begin() as conn:  # the order-select card was 13 hours ago
        conn.execute(issued_cards.update().values(
            issued_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=13)))
    assert "S9" in card_rules(two.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))


def test_window_zero_always_repeats(migrated_db_url, requests_today):
    one, two = two_instances(migrated_db_url, order_sign_repeat_window_hours=0)
    card_rules(one.post(SELECT, json=requests_today["p69-male-letrozole-order-select"]))
    assert "S9" in card_rules(two.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))


def test_critical_only_setting_restores_hard_stops_only_at_order_sign(migrated_db_url, requests_today):
    one, _ = two_instances(migrated_db_url, order_sign_cards="critical-only")
    assert card_rules(one.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"])) == []
    assert card_rules(one.post(SIGN, json=requests_today["p29-anthracycline-order-sign"])) == ["S3"]


def test_the_database_never_holds_the_patient_id_in_the_repeat_key(migrated_db_url, requests_today):
    one, _ = two_instances(migrated_db_url)
    req = requests_today["p69-male-letrozole-order-select"]
    card_rules(one.post(SELECT, json=req))
    store = one.application.extensions["her2cds.store"]
    with store.engine.connect() as conn:
        keys = [r.repeat_key for r in conn.execute(select(issued_cards.c.repeat_key))]
    assert keys and all(len(k) == 64 and "p69" not in k for k in keys)
    scope = repeats.audience(None, req["context"], req.get("fhirServer"))
    assert repeats.repeat_key(scope, "p69-male-letrozole", "S9", req["context"]) in keys


def test_draft_identity_ignores_ids_and_order():
    a = {"draftOrders": {"entry": [
        {"resource": {"resourceType": "MedicationRequest", "id": "x1", "medicationCodeableConcept": {
            "coding": [{"system": "s", "code": "1"}]}}},
        {"resource": {"resourceType": "MedicationRequest", "id": "x2", "medicationCodeableConcept": {"text": "t"}}}]}}
    b = copy.deepcopy(a)
    b["draftOrders"]["entry"].reverse()
    b["draftOrders"]["entry"][0]["resource"]["id"] = "renumbered"
    assert repeats.repeat_key([], "p", "S9", a) == repeats.repeat_key([], "p", "S9", b)
    assert repeats.repeat_key([], "p", "S9", a) != repeats.repeat_key([], "q", "S9", a)


def test_settings_are_checked():
    with pytest.raises(ConfigError):
        from_env({"HER2CDS_ORDER_SIGN_CARDS": "everything"})
    with pytest.raises(ConfigError):
        from_env({"HER2CDS_ORDER_SIGN_REPEAT_WINDOW_HOURS": "-1"})
    assert from_env({}).order_sign_repeat_window_hours == 12.0


# -- issue 21: hard stops, scope, contained drafts, odd input, the audit trail -------------

def as_order_select(sign_request: dict) -> dict:
    """The order-select call an EHR makes before ``sign_request``: same drafts, all selected."""
    req = copy.deepcopy(sign_request)
    req["hook"] = "order-select"
    req["hookInstance"] = req["hookInstance"][:-4] + "5e1e"
    drafts = [e["resource"] for e in req["context"]["draftOrders"]["entry"]]
    req["context"]["selections"] = [f"{r['resourceType']}/{r['id']}" for r in drafts]
    return req


def feedback(client, card_uuid: str, outcome: str, **extra):
    item = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": "2026-12-02T10:00:00Z", **extra}
    resp = client.post("/cds-services/her2-mbc-order-select/feedback", json={"feedback": [item]})
    assert resp.status_code == 200, resp.get_data(as_text=True)


def critical_uuid(resp, rule="S2-C"):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return next(c["uuid"] for c in resp.get_json()["cards"] if c["extension"][EXT]["id"] == rule)


def test_an_unanswered_hard_stop_is_shown_again_at_order_sign(migrated_db_url, requests_today):
    """The sandbox finding: p26 (LVEF 35 %) critical at order-select, not answered -> critical again at signing."""
    one, two = two_instances(migrated_db_url)
    sign = requests_today["p26-lvef35-order-sign"]
    critical_uuid(one.post(SELECT, json=as_order_select(sign)))
    assert "S2-C" in card_rules(two.post(SIGN, json=sign))


@pytest.mark.parametrize("outcome, extra, repeated", [
    ("accepted", {"acceptedSuggestions": []}, False),
    ("overridden", {"overrideReason": {"reason": {"code": "benefit-outweighs-risk",
                                                  "system": "https://her2-cds.example/override-reason"}}}, False),
    ("overridden", {"overrideReason": {"userComment": "cardiology agreed"}}, False),
    ("overridden", {}, True),  # dismissed without a reason is not an answer
])
def test_a_hard_stop_answered_at_order_select_is_not_repeated(migrated_db_url, requests_today, outcome, extra, repeated):
    one, two = two_instances(migrated_db_url)
    sign = requests_today["p26-lvef35-order-sign"]
    uuid = critical_uuid(one.post(SELECT, json=as_order_select(sign)))
    feedback(one, uuid, outcome, **extra)
    assert ("S2-C" in card_rules(two.post(SIGN, json=sign))) is repeated


def test_another_user_encounter_or_fhir_server_never_suppresses(migrated_db_url, requests_today):
    """Patient ids are local to an EHR: who saw the card is part of the repeat key."""
    sign = requests_today["p69-male-letrozole-order-sign"]
    for field, value in (("userId", "Practitioner/someone-else"), ("encounterId", "enc-other")):
        one, two = two_instances(migrated_db_url)
        other = copy.deepcopy(requests_today["p69-male-letrozole-order-select"])
        other["context"][field] = value
        assert "S9" in card_rules(one.post(SELECT, json=other))
        assert "S9" in card_rules(two.post(SIGN, json=sign)), field


def test_the_audience_holds_issuer_tenant_and_subject():
    ctx = {"userId": "Practitioner/1", "encounterId": "e1"}
    base = repeats.audience({"iss": "ehr-a", "tenant": "t1", "sub": "u1"}, ctx, "https://fhir.example/r4")
    for client in ({"iss": "ehr-b", "tenant": "t1", "sub": "u1"}, {"iss": "ehr-a", "tenant": "t2", "sub": "u1"},
                   {"iss": "ehr-a", "tenant": "t1", "sub": "u2"}):
        assert repeats.repeat_key(repeats.audience(client, ctx, "https://fhir.example/r4"), "X", "S9", ctx) \
            != repeats.repeat_key(base, "X", "S9", ctx)
    assert repeats.repeat_key(repeats.audience({"iss": "ehr-a", "tenant": "t1", "sub": "u1"}, ctx,
                                               "https://other.example/r4"), "X", "S9", ctx) \
        != repeats.repeat_key(base, "X", "S9", ctx)


def contained(code: str, display: str) -> dict:
    return {"draftOrders": {"entry": [{"resource": {
        "resourceType": "MedicationRequest", "id": "d1", "status": "draft", "intent": "order",
        "contained": [{"resourceType": "Medication", "id": "m1", "code": {"coding": [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}]}}],
        "medicationReference": {"reference": "#m1"}}}]}}


def test_contained_medications_are_told_apart_by_what_they_order():
    trastuzumab, pertuzumab = contained("224905", "trastuzumab"), contained("1298944", "pertuzumab")
    assert repeats.draft_identity(trastuzumab) != repeats.draft_identity(pertuzumab)
    assert repeats.draft_identity(trastuzumab) == ["http://www.nlm.nih.gov/research/umls/rxnorm|224905"]


@pytest.mark.parametrize("coding", [5, True, 1.5, "text", None, [5, None, {"code": 7}], {"code": "x"}])
def test_odd_codings_give_a_key_never_an_exception(coding):
    ctx = {"draftOrders": {"entry": [{"resource": {"resourceType": "MedicationRequest", "id": "d1",
                                                   "medicationCodeableConcept": {"coding": coding, "text": 5}}}]}}
    assert len(repeats.repeat_key([], "p", "S2-C", ctx)) == 64


def test_odd_codings_at_order_sign_still_return_the_hard_stop(migrated_db_url, requests_today):
    one, _ = two_instances(migrated_db_url)
    sign = copy.deepcopy(requests_today["p26-lvef35-order-sign"])
    extra = copy.deepcopy(sign["context"]["draftOrders"]["entry"][0])
    extra["resource"]["id"] = "odd-1"
    extra["resource"]["medicationCodeableConcept"] = {"coding": 5}
    sign["context"]["draftOrders"]["entry"].append(extra)
    resp = one.post(SIGN, json=sign)
    assert resp.status_code == 200 and "S2-C" in card_rules(resp)


def test_every_suppression_is_in_the_audit_trail(migrated_db_url, requests_today):
    one, two = two_instances(migrated_db_url)
    select_req = requests_today["p69-male-letrozole-order-select"]
    card_rules(one.post(SELECT, json=select_req))
    assert "S9" not in card_rules(two.post(SIGN, json=requests_today["p69-male-letrozole-order-sign"]))
    store = one.application.extensions["her2cds.store"]
    from cds_service.storage import audit
    with store.engine.connect() as conn:
        row = conn.execute(select(audit).where(audit.c.hook == "order-sign")).one()
    assert f"S9@{select_req['hookInstance']}" in row.suppressed.split(",")


from hypothesis import given, strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["coding", "code", "system", "text", "reference", "display",
                                          "resourceType", "id", "contained", "code"]), inner, max_size=4),
                     max_leaves=12)


@given(concept=_json, reference=_json, contained_=_json)
def test_fuzz_the_repeat_key_never_raises(concept, reference, contained_):
    ctx = {"draftOrders": {"entry": [{"resource": {"resourceType": "MedicationRequest", "id": "d1",
                                                   "medicationCodeableConcept": concept,
                                                   "medicationReference": reference, "contained": contained_}}]}}
    assert len(repeats.repeat_key(repeats.audience(None, ctx, concept), "p", "S2-C", ctx)) == 64
