"""Review of today's fast paths (history memo by bytes, live rules, shared descriptions, draft readings,
orjson answer/copy): every answer through them must equal the answer with every memo disabled, and the
caches must stay within their stated bounds.

Written by an independent reviewer of issue 23's third round, who had not written the fast paths. The two
``test_bound_*`` tests failed on the code reviewed (memory bounds broken, no wrong card) and hold since the
fixes (the memo weighs its key's bytes; only record-only reference sets are shared); the rest are
differential checks that held (seeded, so a failure reproduces).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import random
import shutil
import struct
from pathlib import Path

import orjson

from cds_service import create_app
from cds_service.core import criteria, parse as fp
from cds_service.core.advice import _ADDED_PER_CALL, _rule_facts, advise
from cds_service.core.criteria import build_profile, clear_history_memo
from cds_service.core.criteria.profile import Finding
from cds_service.core.rules import rulebook as rules_mod
from memo_helpers import ANCHOR, UUID, empty_memo  # noqa: F401 (empty_memo: an autouse fixture)
from memo_helpers import entries as _entries, nothing_remembered as _plain, resources as _resources

ROOT = Path(__file__).resolve().parent.parent
REQS = {p.name: json.loads(p.read_text()) for p in sorted((ROOT / "fixtures" / "requests").glob("*.json"))}
SERVICES = {"patient-view": "her2-mbc-patient-view", "order-select": "her2-mbc-order-select",
            "order-sign": "her2-mbc-order-sign"}


def _cards(knowledge, hook, ctx, resources, findings=(), today=ANCHOR) -> str:
    got = advise(hook, "svc", copy.deepcopy(ctx), copy.deepcopy(resources), list(findings), knowledge,
                 today=today, base_url="https://cds.example.org")
    return UUID.sub("<uuid>", json.dumps(got.cards, sort_keys=True))


def _both(knowledge, *args, **kw) -> tuple[str, str]:
    got = _cards(knowledge, *args, **kw)
    with _plain():
        expected = _cards(knowledge, *args, **kw)
    return got, expected


def _bundle(*drafts: dict) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]}


# -- bugs ----------------------------------------------------------------------------------------

def test_bound_the_history_memo_bound_counts_the_bytes_it_keeps(knowledge, monkeypatch):
    """The memo is keyed by the orjson bytes of *every* resource (8a34a79; a 20-byte blake2b digest
    before); its bound counted only the records the intake accepted (fixed: the key weighs its bytes).  A prefetch whose bulk is
    irrelevant to the criteria (vital signs, a DocumentReference with an attachment, labs outside every
    ValueSet) weighs 1-2 "records" and keeps megabytes alive: the documented budget (about 4 KB a record
    plus "under 1 KB a record" of bytes, 20-30 MB at 5,000 records) does not hold.  With 2 MB bodies and
    one Patient each, 2,500 entries are ~5 GB per worker; FHIR-fetched pages are not even capped by the body
    limit."""
    monkeypatch.setattr(criteria, "HISTORY_MEMO_RECORDS", 40)
    patient = {"resourceType": "Patient", "id": "big", "gender": "female", "birthDate": "1970-01-01"}
    for n in range(20):
        note = {"resourceType": "DocumentReference", "id": f"doc{n}", "status": "current",
                "content": [{"attachment": {"contentType": "application/pdf", "data": "QUJD" * 50_000}}]}
        build_profile([patient, note], {"patientId": "big"}, knowledge.terminology, knowledge.parameters,
                      today=ANCHOR)
    held = sum(len(k[0]) for k in criteria._memo)
    assert criteria._memo_records <= 40
    # generous: 8 KB a counted record (the docs say about 5)
    assert held <= 8 * 1024 * criteria._memo_records, (
        f"{held / 1e6:.1f} MB of key bytes held for {criteria._memo_records} counted records")


def test_bound_record_descriptions_do_not_grow_with_each_new_draft_id(knowledge):
    """``cards.Descriptions`` keeps every set of references that has no ``context.draftOrders/`` ref in the
    history's cache, for as long as the history is remembered.  But a draft is also cited as
    ``MedicationRequest/<draft id>`` (the data-quality finding of a draft that could not be read, which
    D4's "Data-quality findings" line describes): each new draft id over one chart adds an entry, without
    bound (the draft readings next to it are capped at DRAFT_READINGS).  Fixed: only a set whose references
    are all records is shared.  The cards themselves stay right."""
    req = REQS["p01-de-novo-thp-order-select.json"]

    def select(i: int) -> str:
        ctx = copy.deepcopy(req["context"])
        draft = {"resourceType": "MedicationRequest", "id": f"selection-{i}", "status": "draft", "intent": "order",
                 "subject": {"reference": f"Patient/{ctx['patientId']}"}, "medicationCodeableConcept": "docetaxel"}
        ctx["draftOrders"], ctx["selections"] = _bundle(draft), [f"MedicationRequest/selection-{i}"]
        got, expected = _both(knowledge, "order-select", ctx, _resources(req))
        assert got == expected
        return got

    assert "could not be read" in select(0)  # D4 fires and lists the finding
    for i in range(1, 300):
        advise("order-select", "svc", {**req["context"], "draftOrders": _bundle(
            {"resourceType": "MedicationRequest", "id": f"selection-{i}", "status": "draft", "intent": "order",
             "medicationCodeableConcept": "docetaxel"})}, _resources(req), [], knowledge, today=ANCHOR)
    (entry,) = criteria._memo.values()
    sizes = [len(h.cache.get("record descriptions", {})) for h in entry.by_drafts.values()]
    assert max(sizes) <= 64, f"{max(sizes)} description sets kept for one chart after 300 selections"


# -- what held -------------------------------------------------------------------------------------

def test_held_named_draft_sequences_over_one_prefetch(knowledge):
    """Drafts that take a prefetched order out of the history and put it back, alternating with
    drafts that name nothing, a referenced and a contained Medication, an unknown antineoplastic and an
    unreadable draft, across the three hooks: each answer equals the answer without any memo."""
    req = REQS["p51-line-switch-order-select.json"]
    resources = _resources(req)
    mr = next(r for v in resources for r in _entries(v) if r.get("resourceType") == "MedicationRequest")
    base_draft = req["context"]["draftOrders"]["entry"][0]["resource"]
    med = {"resourceType": "Medication", "id": "med-x", "code": copy.deepcopy(base_draft["medicationCodeableConcept"])}
    with_med = resources + [med]

    def draft(i, **change):
        d = copy.deepcopy(base_draft)
        d["id"] = i
        d.update(change)
        return d

    as_draft = copy.deepcopy(mr)
    as_draft["status"] = "draft"
    variants = [
        [draft(mr["id"])],
        [],
        [draft("fresh-1")],
        [as_draft],
        [draft("fresh-2", medicationCodeableConcept=None, medicationReference={"reference": "Medication/med-x"})],
        [draft("fresh-3", medicationCodeableConcept=None, medicationReference={"reference": "#m"},
               contained=[dict(med, id="m")])],
        [draft("fresh-4", medicationCodeableConcept={"coding": [{"system": "http://www.whocc.no/atc",
                                                                 "code": "L01XX99"}], "text": "newmab"})],
        [draft("fresh-5", medicationCodeableConcept="junk")],
        [draft(mr["id"]), draft("fresh-1")],
    ]
    seen = set()
    for rounds in range(2):
        for drafts in variants:
            for d in drafts:
                if d.get("medicationCodeableConcept") is None:
                    d.pop("medicationCodeableConcept", None)
            for hook in ("order-select", "order-sign", "patient-view"):
                for pool in (resources, with_med):
                    ctx = copy.deepcopy(req["context"])
                    ctx["draftOrders"] = _bundle(*drafts)
                    ctx["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts][:1]
                    got, expected = _both(knowledge, hook, ctx, pool)
                    assert got == expected, (hook, [d["id"] for d in drafts])
                    seen.add(expected)
    assert len(seen) > 5


def test_held_random_sequences_through_advise(knowledge):
    """Seeded random sequences of calls over one record each: drafts from the fixtures (ids new, reused,
    or a prefetched order's), contained/referenced Medications, unknown and unreadable drafts, selections
    (also naming no draft), another patientId, prefetch findings, the three hooks and two dates."""
    rng = random.Random(20260601)
    drafts = [e["resource"] for r in REQS.values() for e in (r["context"].get("draftOrders") or {}).get("entry", [])
              if isinstance(e.get("resource"), dict)]
    names = sorted(REQS)
    calls = cards = 0
    for _ in range(25):
        clear_history_memo()
        base = REQS[rng.choice(names)]
        resources = _resources(base)
        mrs = [r for v in resources for r in _entries(v) if r.get("resourceType") == "MedicationRequest"]
        for _ in range(10):
            hook = rng.choice(list(SERVICES))
            ctx = {k: v for k, v in base["context"].items() if k not in ("draftOrders", "selections")}
            chosen = []
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                d = copy.deepcopy(rng.choice(mrs) if mrs and rng.random() < 0.15 else rng.choice(drafts))
                d["status"] = "draft"
                x = rng.random()
                if x < 0.2 and mrs:
                    d["id"] = rng.choice(mrs)["id"]
                elif x < 0.5:
                    d["id"] = f"n{rng.randrange(40)}"
                if rng.random() < 0.08:
                    d["medicationCodeableConcept"] = "junk"
                chosen.append(d)
            if chosen or rng.random() < 0.5:
                ctx["draftOrders"] = _bundle(*chosen)
            if hook == "order-select" and rng.random() < 0.7:
                ctx["selections"] = [f"MedicationRequest/{d['id']}" for d in chosen if rng.random() < 0.6]
            if rng.random() < 0.2:
                ctx["patientId"] = "someone-else"
            findings = [Finding(rng.choice(["data-refused", "data-partial", "data-missing"]), f"{k}", (f"prefetch:{k}",))
                        for k in base["prefetch"] if rng.random() < 0.06]
            today = ANCHOR + dt.timedelta(days=rng.choice([0, 0, 0, 1]))
            got, expected = _both(knowledge, hook, ctx, resources, findings, today)
            assert got == expected
            calls += 1
            cards += got.count("<uuid>")
    assert calls == 250 and cards > 300


def test_held_live_rules_against_the_whole_book_for_any_per_call_values(knowledge):
    """``rules.live_rules`` sorted with one call's facts, then evaluated with per-call facts (draft.*,
    therapy.*, taxane.*, findings, data.unavailable, hook) drawn from every fixture, or absent: the same
    recommendations (ids, suggestions, notes, summary) as the whole rulebook."""
    rng = random.Random(7)
    rb = knowledge.rulebook
    cases, values = [], {}
    for name in sorted(REQS)[::3]:
        r = REQS[name]
        with _plain():
            p = build_profile(_resources(r), r["context"], knowledge.terminology, knowledge.parameters, today=ANCHOR)
        for hook in SERVICES:
            facts = _rule_facts(p, [], hook)
            cases.append((p, facts, hook))
            for k, v in facts.items():
                values.setdefault(k, []).append(v)
    for p, facts, hook in cases:
        per_call = p.per_call_facts | _ADDED_PER_CALL
        live = rules_mod.live_rules(rb, hook, facts, per_call)
        for _ in range(8):
            other = dict(facts)
            for k in per_call:
                if rng.random() < 0.15:
                    other.pop(k, None)
                elif k in values:
                    other[k] = rng.choice(values[k])
            whole = [(x.rule.id, x.suggestions, x.notes, x.summary, x.facts) for x in rules_mod.evaluate(rb, other, hook)]
            fast = [(x.rule.id, x.suggestions, x.notes, x.summary, x.facts) for x in rules_mod.evaluate(rb, other, hook, live)]
            assert fast == whole, (hook, p.patient_id)


def _play(db_url: str, sequence) -> list:
    app = create_app(auth="disabled", database_url=db_url)
    client = app.test_client()
    out = []
    for hook, body in sequence:
        r = client.post(f"/cds-services/{SERVICES[hook]}", json=body)
        out.append((r.status_code, UUID.sub("<uuid>", json.dumps(r.get_json(), sort_keys=True))))
    return out


def test_held_http_sequences_with_prefetch_failures(knowledge, migrated_sqlite, tmp_path):
    """Over HTTP (prefetch gathering, order-sign repeats, patient-view once-per-event, orjson answer): the
    same request sequence on two fresh databases, with and without the memos, gives the same statuses
    and cards.  Prefetch keys are sent as an OperationOutcome, null, left out, or as a Bundle with a next
    link, between calls over one record."""
    rng = random.Random(11)
    pool = [r["context"]["draftOrders"] for r in REQS.values() if "draftOrders" in r["context"]]
    sequence = []
    for name in sorted(REQS)[::12]:
        for _ in range(6):
            body = copy.deepcopy(REQS[name])
            hook = rng.choice([*SERVICES, body["hook"]])
            body["hook"] = hook
            body["hookInstance"] = f"00000000-0000-4000-8000-{rng.randrange(10 ** 12):012d}"
            ctx = body["context"]
            ctx.pop("draftOrders", None)
            ctx.pop("selections", None)
            if hook != "patient-view":
                ctx["draftOrders"] = copy.deepcopy(rng.choice(pool))
                if rng.random() < 0.5:
                    for e in ctx["draftOrders"]["entry"]:
                        e["resource"]["id"] = f"n{rng.randrange(20)}"
                if hook == "order-select":
                    ctx["selections"] = [f"MedicationRequest/{e['resource']['id']}"
                                         for e in ctx["draftOrders"]["entry"]][:1]
            for k, v in list(body["prefetch"].items()):
                x = rng.random()
                if x < 0.06:
                    body["prefetch"][k] = {"resourceType": "OperationOutcome",
                                           "issue": [{"severity": "error", "code": "exception"}]}
                elif x < 0.08:
                    body["prefetch"][k] = None
                elif x < 0.12 and isinstance(v, dict) and v.get("resourceType") == "Bundle":
                    v["link"] = [{"relation": "next", "url": "https://fhir.example.org/next"}]
            sequence.append((hook, body))
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    shutil.copyfile(migrated_sqlite, a)
    shutil.copyfile(migrated_sqlite, b)
    got = _play(f"sqlite:///{a}", sequence)
    with _plain():
        expected = _play(f"sqlite:///{b}", sequence)
    assert got == expected
    assert {s for s, _ in got} >= {200}


def test_held_json_copy_is_exact_for_parsed_json():
    rng = random.Random(3)
    for _ in range(20_000):
        x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(x):
            (y,) = fp.json_copy([x])
            assert y == x and math.copysign(1, y) == math.copysign(1, x)
    for v in (2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, -2 ** 63, -2 ** 63 - 1, 2 ** 64, 2 ** 80, True, None, "\ud800"):
        (y,) = fp.json_copy([v])
        assert y == v and type(y) is type(v)


def test_held_orjson_answer_equals_jsonify(knowledge, app):
    from flask import jsonify

    from cds_service.protocol.hooks import cards_answer
    with app.test_request_context("/"):
        for name in sorted(REQS)[::4]:
            r = REQS[name]
            answer = {"cards": advise(r["hook"], "svc", r["context"], _resources(r), [], knowledge,
                                      today=ANCHOR, base_url="https://x").cards}
            assert orjson.loads(cards_answer(answer).get_data()) == json.loads(jsonify(answer).get_data())
