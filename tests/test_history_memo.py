"""The memo of the record's history in ``build_profile`` (issue 23): fast, but never a stale answer.

order-select fires on every selection with the same prefetch, so the part of
the profile read from the history alone is remembered, keyed by the content
of the resources, the draft ids, today and the loaded terminology.  These
tests prove what must never be served from the memo: a changed prefetch, a
changed draft, a changed date, another knowledge load; and that a profile
built through the memo is the profile built without it, for every fixture
request.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from unittest import mock

import pytest

from cds_service.core import cards as cards_mod, criteria
from cds_service.core.advice import advise
from cds_service.core.criteria import build_profile
from criteria_builders import parameters as PARAMS
from memo_helpers import ANCHOR, UUID, empty_memo  # noqa: F401 (empty_memo: an autouse fixture)
from memo_helpers import entries as _entries, nothing_remembered as _nothing_remembered, resources as _resources

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = sorted((ROOT / "fixtures" / "requests").glob("*.json"))


def _load(name_or_path) -> dict:
    path = name_or_path if isinstance(name_or_path, Path) else ROOT / "fixtures" / "requests" / name_or_path
    return json.loads(path.read_text())


def _fresh(req: dict, t, today=ANCHOR):
    """The profile read without the memo (neither looked up nor filled)."""
    with mock.patch.object(criteria, "_memo_key", lambda *a: None):
        return build_profile(_resources(req), req["context"], t, PARAMS(), today=today)


@pytest.mark.parametrize("path", REQUESTS, ids=[p.stem for p in REQUESTS])
def test_a_profile_through_the_memo_is_the_profile_without_it(path, knowledge):
    req = _load(path)
    t = knowledge.terminology
    expected = _fresh(req, t)
    # Fill the memo with the full pipeline (rules and cards read the profile, and must not change it) …
    advise(req["hook"], "svc", req["context"], _resources(copy.deepcopy(req)), [], knowledge, today=ANCHOR)
    assert len(criteria._memo) == 1
    # … then read the same record again: served from the memo (the history is not read), equal to the fresh one.
    with mock.patch.object(criteria, "_history", side_effect=AssertionError("read again, not remembered")):
        again = build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    assert again == expected
    assert build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR) == expected


def _order_select() -> dict:
    return _load("p01-de-novo-thp-order-select.json")


def test_a_changed_prefetch_is_not_served_from_the_memo(knowledge):
    t = knowledge.terminology
    req = _order_select()
    build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    changed = copy.deepcopy(req)
    # The patient's birth date moves by ten years: the age fact must follow.
    patient = next(r for v in _resources(changed) for r in _entries(v) if r.get("resourceType") == "Patient")
    year = int(patient["birthDate"][:4])
    patient["birthDate"] = f"{year - 10}{patient['birthDate'][4:]}"
    got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    assert got == _fresh(changed, t)
    assert got.facts["patient.age"].value != build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR).facts["patient.age"].value
    assert len(criteria._memo) == 2


def test_one_changed_value_deep_in_an_observation_is_a_different_record(knowledge):
    t = knowledge.terminology
    req = _order_select()
    first = build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    changed = copy.deepcopy(req)
    lvef = next(r for v in _resources(changed) for r in _entries(v)
                if r.get("resourceType") == "Observation" and "valueQuantity" in r)
    lvef["valueQuantity"]["value"] = lvef["valueQuantity"]["value"] + 1
    got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    assert got == _fresh(changed, t)
    assert got.records != first.records


def test_a_changed_draft_is_read_fresh_with_the_same_prefetch(knowledge):
    t = knowledge.terminology
    req = _order_select()
    first = build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    assert first.draft_orders, "the fixture selects a draft"
    changed = copy.deepcopy(req)
    changed["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": []}
    got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    assert got.draft_orders == ()
    assert got == _fresh(changed, t)
    # And back: the original draft again gives the original profile, not the empty one.
    assert build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR) == first


def test_a_draft_with_the_same_id_and_another_drug_is_read_fresh(knowledge):
    t = knowledge.terminology
    req = _order_select()
    first = build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    tdm1 = _load("p127-tdm1-first-line-order-select.json")["context"]["draftOrders"]["entry"][0]["resource"]
    changed = copy.deepcopy(req)
    draft = changed["context"]["draftOrders"]["entry"][0]["resource"]
    draft["medicationCodeableConcept"] = copy.deepcopy(tdm1["medicationCodeableConcept"])
    assert draft["medicationCodeableConcept"] != req["context"]["draftOrders"]["entry"][0]["resource"][
        "medicationCodeableConcept"]
    got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    assert got == _fresh(changed, t)
    assert got.draft_orders != first.draft_orders
    assert len(criteria._memo) == 1, "same prefetch and draft ids: the history is shared, the drafts are not"


def test_a_changed_date_is_not_served_from_the_memo(knowledge):
    t = knowledge.terminology
    req = _order_select()
    build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    later = ANCHOR + dt.timedelta(days=800)
    got = build_profile(_resources(req), req["context"], t, PARAMS(), today=later)
    assert got == _fresh(req, t, today=later)
    assert got.facts["patient.age"].value != _fresh(req, t).facts["patient.age"].value
    assert len(criteria._memo) == 2


def test_another_knowledge_load_is_not_served_from_the_memo(knowledge, monkeypatch):
    req = _order_select()
    t = knowledge.terminology
    build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    other = copy.copy(t)  # another Terminology object: a reloaded fhir_profiles/
    calls = []
    real = criteria._history
    monkeypatch.setattr(criteria, "_history", lambda *a: calls.append(a[2]) or real(*a))
    build_profile(_resources(req), req["context"], other, PARAMS(), today=ANCHOR)
    assert calls == [other]
    build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    assert calls == [other], "the first terminology's entry is still there"


def test_the_memo_is_bounded_by_the_records_and_bytes_it_holds(knowledge, monkeypatch):
    t = knowledge.terminology
    req = _order_select()
    size = criteria._history(_resources(req), req["context"], t, PARAMS(), ANCHOR).size
    key_weight = -(-len(criteria._memo_key(_resources(req), t, PARAMS(), ANCHOR)[0]) // 4096)
    assert key_weight >= 1
    monkeypatch.setattr(criteria, "HISTORY_MEMO_RECORDS", (size + key_weight) * 2)
    for days in range(5):
        build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR + dt.timedelta(days=days))
    assert len(criteria._memo) == 2
    assert criteria._memo_records == 2 * (size + key_weight)


def test_a_record_that_is_not_plain_json_is_read_without_the_memo(knowledge):
    t = knowledge.terminology
    req = _order_select()
    changed = copy.deepcopy(req)
    changed["prefetch"]["bigint"] = {"resourceType": "Basic", "id": "x", "extension": [{"valueInteger": 2 ** 80}]}
    got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    assert got == _fresh(req, t)
    assert len(criteria._memo) == 0


def test_the_line_a_draft_starts_is_decided_per_call_with_one_history(knowledge):
    """The lines on record come with the remembered history; whether the drafted regimen starts a new
    line (therapy.line) is decided for each call's drafts: alternating drafts with the same id and the same
    prefetch share one history and each get their own line, as without the memo."""
    t = knowledge.terminology
    req = _load("p21-tdm1-order-select.json")
    draft_id = req["context"]["draftOrders"]["entry"][0]["resource"]["id"]
    variants = []
    for name in ("p06-low-tdxd-order-select.json", "p07-zero-order-select.json"):  # T-DXd: a new line; the other not
        changed = copy.deepcopy(req)
        draft = copy.deepcopy(_load(name)["context"]["draftOrders"]["entry"][0]["resource"])
        draft["id"] = draft_id
        changed["context"]["draftOrders"]["entry"] = [{"resource": draft}]
        variants.append(changed)
    seen = []
    for changed in variants * 2:
        got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
        assert got == _fresh(changed, t)
        seen.append(got.facts["therapy.line"].value)
    assert len(criteria._memo) == 1
    assert seen[0] != seen[1] and seen[:2] == seen[2:], seen


def test_a_new_selection_over_the_same_prefetch_finds_the_history_remembered(knowledge):
    """The order composer's next selection: the same prefetch, a draft with a new id. No draft id names a
    prefetched record, so the history does not depend on it and is served from the memo."""
    t = knowledge.terminology
    req = _order_select()
    build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    changed = copy.deepcopy(req)
    changed["context"]["draftOrders"]["entry"][0]["resource"]["id"] = "the-next-selection"
    changed["context"]["selections"] = ["MedicationRequest/the-next-selection"]
    expected = _fresh(changed, t)
    with mock.patch.object(criteria, "_history", side_effect=AssertionError("read again, not remembered")):
        got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    assert got == expected
    assert "MedicationRequest/the-next-selection" in [d.resource_ref for d in got.draft_orders]
    assert len(criteria._memo) == 1


def test_a_draft_that_names_a_prefetched_order_keys_its_own_history(knowledge):
    """A prefetched MedicationRequest that is one of this call's drafts is read as the draft, not as a record:
    that history differs, and is never served for (or from) the call whose draft is another."""
    t = knowledge.terminology
    req = _load("p51-line-switch-order-select.json")
    prefetched = next(r for v in _resources(req) for r in _entries(v) if r.get("resourceType") == "MedicationRequest")
    ref = f"MedicationRequest/{prefetched['id']}"
    first = build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    assert ref in first.records
    changed = copy.deepcopy(req)
    changed["context"]["draftOrders"]["entry"][0]["resource"]["id"] = prefetched["id"]
    got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    assert ref not in got.records
    assert got == _fresh(changed, t)
    (entry,) = criteria._memo.values()  # one record, two histories: with and without that order
    assert sorted(entry.by_drafts) == [(), (ref,)]
    assert criteria._memo_records == entry.size == entry.key_weight + sum(h.size for h in entry.by_drafts.values())
    assert build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR) == first


@pytest.mark.parametrize("path", REQUESTS, ids=[p.stem for p in REQUESTS])
def test_cards_through_the_remembered_descriptions_are_the_cards_without_them(path, knowledge):
    """"Why this card" describes the records once per remembered history (``cards.Descriptions``): the
    cards of a later call with the same history, read from that cache, equal the cards made without it."""
    req = _load(path)

    def cards(**kw) -> str:
        got = advise(req["hook"], "svc", req["context"], _resources(copy.deepcopy(req)), [], knowledge,
                     today=ANCHOR, base_url="https://cds.example.org", **kw)
        return UUID.sub("<uuid>", json.dumps(got.cards, sort_keys=True))

    with _nothing_remembered():
        expected = cards()  # no memo: a fresh history and an empty description cache
    assert cards() == cards() == expected  # the first fills the cache, the second reads it


def test_a_later_call_reads_the_records_descriptions_from_the_remembered_history(knowledge):
    req = _load("p06-low-tdxd-order-select.json")  # T-DXd for HER2-low: its card names the HER2 results
    first = advise(req["hook"], "svc", req["context"], _resources(req), [], knowledge, today=ANCHOR)
    (entry,) = criteria._memo.values()
    (shared,) = [h.cache["record descriptions"] for h in entry.by_drafts.values()]
    assert shared and all(not r.startswith("context.draftOrders/") for key in shared for r in key)
    assert "(" in first.cards[0]["detail"].split("**Why this card**")[1], "the card names its records"
    real = cards_mod._describe_refs
    asked = []
    with mock.patch.object(cards_mod, "_describe_refs", lambda refs, *a: asked.append(refs) or real(refs, *a)):
        again = advise(req["hook"], "svc", req["context"], _resources(req), [], knowledge, today=ANCHOR)
    assert all(any(r.startswith("context.draftOrders/") for r in refs) for refs in asked), \
        "only references naming a draft are described again"
    assert [UUID.sub("", json.dumps(c)) for c in again.cards] == [UUID.sub("", json.dumps(c)) for c in first.cards]


_PREFETCHES = ("p01-de-novo-thp-order-select.json", "p51-line-switch-order-select.json",
               "p06-low-tdxd-order-select.json", "p101-docetaxel-anc-low-order-select.json")
_DRAFTS = [p.name for p in REQUESTS if p.name.endswith("-order-select.json")][::6]


@pytest.mark.parametrize("prefetch_of", _PREFETCHES)
def test_rules_the_record_rules_out_are_decided_per_record_not_per_draft(prefetch_of, knowledge):
    """``advice`` asks only the rules the record does not rule out, once per remembered history
    (``rules.live_rules``). One prefetch with the drafts of other fixtures in turn (each call's own
    draft facts over one remembered history): every answer equals the answer without the memo."""
    base = _load(prefetch_of)
    seen = set()
    for name in _DRAFTS * 2:
        req = copy.deepcopy(base)
        other = _load(name)["context"]
        req["context"]["draftOrders"] = copy.deepcopy(other["draftOrders"])
        req["context"]["selections"] = list(other.get("selections") or [])

        def cards() -> str:
            got = advise("order-select", "svc", req["context"], _resources(req), [], knowledge, today=ANCHOR)
            return UUID.sub("<uuid>", json.dumps(got.cards, sort_keys=True))

        with _nothing_remembered():
            expected = cards()
        assert cards() == expected, name
        seen.add(expected)
    assert len(criteria._memo) == 1, "one record: one remembered entry"
    assert len(seen) > 1, "the drafts gave different answers over the one record"


def test_a_draft_sent_again_over_the_same_record_is_read_once(knowledge, monkeypatch):
    """Each selection in the order composer sends the earlier drafts again: with one remembered history
    each is read once (``medications.draft_orders``' readings, keyed by its content), a changed one again."""
    from cds_service.core.criteria import medications
    t = knowledge.terminology
    req = _order_select()
    first = build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR)
    with mock.patch.object(medications, "episode", side_effect=AssertionError("read again")):
        assert build_profile(_resources(req), req["context"], t, PARAMS(), today=ANCHOR) == first
    changed = copy.deepcopy(req)
    draft = changed["context"]["draftOrders"]["entry"][0]["resource"]
    draft["status"] = "active" if draft.get("status") != "active" else "draft"
    expected = _fresh(changed, t)
    read = []
    real = medications.episode
    monkeypatch.setattr(medications, "episode", lambda r, *a, **k: read.append(r["id"]) or real(r, *a, **k))
    assert build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR) == expected
    assert read == [draft["id"]], "only the changed draft is read again"
    monkeypatch.setattr(medications, "DRAFT_READINGS", 1)
    draft["id"] = "one-more-draft"
    build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    (entry,) = criteria._memo.values()
    (h,) = entry.by_drafts.values()
    assert len(h.cache["draft readings"]) <= 1


def test_a_patient_id_that_is_not_text_reads_the_drafts_without_remembering_them(knowledge):
    """The request schema keeps this off the HTTP path; ``her2-cds invoke-file`` reads a saved request as it is."""
    t = knowledge.terminology
    req = _order_select()
    changed = copy.deepcopy(req)
    changed["context"]["patientId"] = ["p01", "p02"]
    got = build_profile(_resources(changed), changed["context"], t, PARAMS(), today=ANCHOR)
    assert got.draft_orders and got == _fresh(changed, t)
