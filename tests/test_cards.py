"""Card rendering: no duplicate suggestion of an active or ordered drug, deletes target drafts, links."""

from __future__ import annotations

import pytest

from cds_service.core.cards import render
from cds_service.core.criteria.profile import PatientProfile
from cds_service.core.criteria import DraftOrder
from cds_service.core.rules.rulebook import evaluate


def _records(resources) -> dict:
    out, stack = {}, list(resources)
    while stack:
        r = stack.pop(0)
        if r.get("resourceType") == "Bundle":
            stack.extend(e["resource"] for e in r.get("entry", ()))
        else:
            out.setdefault(f"{r['resourceType']}/{r['id']}", r)
    return out


def _render(recs, rulebook, *, facts, patient_id, draft_orders=(), medications=(), resources=(), base_url=None):
    """render() over a profile holding just these facts, drafts, medications and records: the card JSON."""
    profile = PatientProfile(patient_id, facts, draft_orders=tuple(draft_orders), medications=tuple(medications),
                             records=_records(resources))
    return [i.card for i in render(recs, rulebook, profile, base_url=base_url)]



@pytest.fixture(scope="module")
def rulebook(knowledge):
    return knowledge.rulebook


MAINT = {
    "breast_cancer": True, "metastatic": True, "her2.status": "positive", "her2.conflict": False,
    "er.conflict": False, "hr.status": "positive", "er.status": "positive", "pr.status": "positive",
    "taxane.cycles": 6, "taxane.cycles_estimated": False, "taxane.course_ended": True,
    "disease.progression": False, "therapy.line": 1,
    "meds.active.ingredients": ["trastuzumab", "pertuzumab"], "meds.active.classes": ["anti-her2"],
    "draft.all.ingredients": [], "draft.all.classes": [], "draft.ingredients": [], "draft.classes": [],
    "patient.sex": "female", "patient.menopausal": "post", "lvef.value": 60.0, "lvef.days_ago": 20,
}


def _created_ingredients(cards):
    out = []
    for c in cards:
        for s in c.get("suggestions", []):
            for a in s["actions"]:
                if a["type"] == "create" and a["resource"]["resourceType"] == "MedicationRequest":
                    out.append(a["resource"]["medicationCodeableConcept"]["text"])
    return out


def test_l2_never_suggests_a_drug_already_active_or_ordered(rulebook):
    facts = dict(MAINT, **{"brain_mets": True, "brain_mets.activity": "active",
                           "therapy.prior_metastatic_anti_her2": True, "ild": False,
                           "meds.ever.ingredients": ["trastuzumab", "pertuzumab"],
                           "draft.all.ingredients": ["capecitabine"], "draft.ingredients": ["capecitabine"],
                           "draft.classes": ["chemotherapy"], "draft.all.classes": ["chemotherapy"]})
    recs = [r for r in evaluate(rulebook, facts, "order-select") if r.rule.id == "L2"]
    assert recs
    cards = _render(recs, rulebook, facts=facts, patient_id="x",
                   draft_orders=[DraftOrder("MedicationRequest/d1", ("capecitabine",), ("chemotherapy",), "Xeloda")])
    created = " ".join(_created_ingredients(cards))
    assert "tucatinib" in created
    assert "trastuzumab (intravenous)" not in created and "capecitabine" not in created


def test_suggestion_dropped_when_every_create_is_a_duplicate(rulebook):
    facts = dict(MAINT, **{"meds.active.ingredients": ["trastuzumab", "pertuzumab", "tucatinib"]})
    # force M1's tucatinib-only offer (HR-negative) despite active tucatinib: the renderer itself dedupes
    rec = next(r for r in evaluate(rulebook, dict(MAINT, **{"hr.status": "negative"}), "patient-view")
               if r.rule.id == "M1")
    cards = _render([rec], rulebook, facts=facts, patient_id="x")
    assert "suggestions" not in cards[0] and "selectionBehavior" not in cards[0]


def test_delete_targets_only_matching_drafts_and_issued_triples(rulebook):
    facts = dict(MAINT, **{"meds.active.ingredients": [], "meds.active.classes": [], "taxane.cycles": 8,
                           "draft.ingredients": ["docetaxel"], "draft.classes": ["taxane", "chemotherapy"],
                           "draft.all.ingredients": ["docetaxel", "trastuzumab", "pertuzumab"],
                           "draft.all.classes": ["taxane", "chemotherapy", "anti-her2"]})
    drafts = [DraftOrder("MedicationRequest/a", ("docetaxel",), ("taxane", "chemotherapy"), "Taxotere"),
              DraftOrder("MedicationRequest/b", ("trastuzumab",), ("anti-her2",), "Herceptin")]
    recs = evaluate(rulebook, facts, "order-select")
    assert [r.rule.id for r in recs] == ["F4"]
    cards = _render(recs, rulebook, facts=facts, patient_id="p", draft_orders=drafts, base_url="https://cds.example")
    deletes = [a for s in cards[0]["suggestions"] for a in s["actions"] if a["type"] == "delete"]
    assert [a["resourceId"] for a in deletes] == ["MedicationRequest/a"]
    assert cards[0]["links"][0]["url"] == "https://cds.example/smart/launch"
    rendered = render(recs, rulebook, PatientProfile("p", facts, draft_orders=tuple(drafts)))
    assert [i.row() for i in rendered] == [(rendered[0].card["uuid"], "F4", str(rulebook.version))]
    assert rendered[0].card["extension"][rulebook.extension_key]["id"] == "F4"  # the EHR still sees the rule


def test_no_links_without_base_url_and_why_lists_fact_refs(rulebook):
    class F:
        def __init__(self, v, refs=()):
            self.value, self.refs = v, refs
    facts = {k: F(v) for k, v in MAINT.items()}
    facts["hr.status"] = F("positive", ("Observation/er-1",))
    recs = [r for r in evaluate(rulebook, facts, "patient-view") if r.rule.id == "M1"]
    er = {"resourceType": "Observation", "id": "er-1", "status": "final", "code": {"text": "ER % (breast)"},
          "valueQuantity": {"value": 90, "unit": "%"}, "effectiveDateTime": "2025-04-07"}
    card = _render(recs, rulebook, facts=facts, patient_id="p", resources=[er])[0]
    assert "links" not in card
    why = card["detail"].split("**Why this card**")[1]
    # clinical label, the result's own name, value and date; never the profile key
    assert "- Hormone-receptor status: positive (ER % (breast), 90%, 7 Apr 2025)" in why
    assert "hr.status" not in card["detail"] and "`" not in card["detail"]


def test_cards_link_to_the_smart_app_and_offer_an_absolute_fallback():
    from urllib.parse import parse_qs, urlsplit
    from cds_service.core.cards import app_links
    links = app_links("https://cds.example.org/", "https://ehr.example.org/fhir", "p 1")
    assert [l["type"] for l in links] == ["smart", "absolute"]
    assert links[0]["url"] == "https://cds.example.org/smart/launch"
    fallback = urlsplit(links[1]["url"])
    assert fallback.path == "/smart/open"
    assert parse_qs(fallback.query) == {"iss": ["https://ehr.example.org/fhir"], "patient": ["p 1"]}
    # No FHIR server in the request: only the SMART link (the fallback would have nowhere to go).
    assert [l["type"] for l in app_links("https://cds.example.org", None, "p1")] == ["smart"]


def test_stop_active_updates_only_active_records_and_labels_a_statement(rulebook):
    from cds_service.core.criteria import MedEpisode
    facts = dict(MAINT, **{"draft.ingredients": ["fam-trastuzumab deruxtecan"], "draft.classes": ["her2-adc", "anti-her2"],
                           "draft.all.ingredients": ["fam-trastuzumab deruxtecan"],
                           "meds.ordered.ingredients": MAINT["meds.active.ingredients"],
                           "draft.all.classes": ["her2-adc", "anti-her2"]})
    recs = [r for r in evaluate(rulebook, facts, "order-select") if r.rule.id == "S4-SWITCH"]
    assert recs
    order = {"resourceType": "MedicationRequest", "id": "h1", "status": "active", "intent": "order",
             "medicationCodeableConcept": {"text": "Herceptin"}, "subject": {"reference": "Patient/p"}}
    statement = {"resourceType": "MedicationStatement", "id": "p1", "status": "active",
                 "medicationCodeableConcept": {"text": "Perjeta"}, "subject": {"reference": "Patient/p"}}
    old = {"resourceType": "MedicationStatement", "id": "p0", "status": "completed",
           "medicationCodeableConcept": {"text": "Perjeta"}, "subject": {"reference": "Patient/p"}}
    meds = [MedEpisode("MedicationRequest/h1", ("trastuzumab",), ("anti-her2",), "active", None, None, "Herceptin",
                       "MedicationRequest"),
            MedEpisode("MedicationStatement/p1", ("pertuzumab",), ("anti-her2",), "active", None, None, "Perjeta",
                       "MedicationStatement"),
            MedEpisode("MedicationStatement/p0", ("pertuzumab",), ("anti-her2",), "past", None, None, "Perjeta",
                       "MedicationStatement")]
    card = _render(recs, rulebook, facts=facts, patient_id="p", medications=meds,
                  resources=[{"resourceType": "Bundle", "entry": [{"resource": r} for r in (order, statement, old)]}])[0]
    actions = [a for s in card["suggestions"] for a in s["actions"]]
    assert [(a["type"], a["resource"]["id"], a["resource"]["status"]) for a in actions] == [
        ("update", "h1", "stopped"), ("update", "p1", "stopped")]
    assert order["status"] == "active"  # the request's own resource is not modified
    assert "medication list" in actions[1]["description"] and "Stop the active order" in actions[0]["description"]


def test_per_dose_administrations_are_named_once_per_drug():
    """An infusion suite's six docetaxel doses read as one line, not six."""
    from cds_service.core.cards import _describe_refs

    doce = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "72962"}], "text": "docetaxel"}
    index = {f"MedicationAdministration/a{i}": {"resourceType": "MedicationAdministration", "status": "completed",
                                                  "medicationCodeableConcept": doce,
                                                  "effectiveDateTime": f"2025-0{i + 1}-10"} for i in range(6)}
    index["MedicationStatement/s1"] = {"resourceType": "MedicationStatement", "status": "completed",
                                       "medicationCodeableConcept": doce,
                                       "effectivePeriod": {"start": "2025-01-10", "end": "2025-07-01"}}
    described = _describe_refs(sorted(index), index, {})
    assert described == ["docetaxel, completed, 10 Jan 2025 to 1 Jul 2025",
                         "docetaxel: 6 doses given, 10 Jan 2025 to 10 Jun 2025"]


def test_stop_targets_are_the_profiles_active_medications(knowledge):
    """One owner of "active": an on-hold statement is current therapy in the profile, so it is also what a
    stop suggestion updates; a given dose (MedicationAdministration) is never a stop target."""
    import datetime as dt

    from cds_service.core.cards import active_medications
    from cds_service.core.criteria import build_profile

    def statement(rid, status, text):
        return {"resourceType": "MedicationStatement", "id": rid, "status": status, "subject": {"reference": "Patient/p"},
                "medicationCodeableConcept": {"text": text}, "effectivePeriod": {"start": "2026-03-01"}}
    dose = {"resourceType": "MedicationAdministration", "id": "a1", "status": "completed",
            "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "Perjeta"},
            "effectiveDateTime": "2026-05-20"}
    resources = [{"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1970-01-01"},
                 statement("held", "on-hold", "Herceptin"), statement("done", "completed", "Tukysa"), dose]
    profile = build_profile(resources, {"patientId": "p"}, knowledge.terminology, knowledge.parameters, today=dt.date(2026, 6, 1))
    states = {m.ref: m.state for m in profile.medications}
    assert states["MedicationStatement/held"] == "active" and states["MedicationAdministration/a1"] == "active"
    index = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    assert [res["id"] for _, res in active_medications(profile.medications, index)] == ["held"]


def test_cards_render_from_the_facts_and_findings_the_rules_read(knowledge):
    """The seam advice → cards is one frozen RuleFacts (issue 19): the call's reading findings, which the
    profile does not hold, are what a show_findings card lists; without one, the profile's own."""
    from cds_service.core.advice import advise
    from cds_service.core.criteria import Finding
    from cds_service.core.rules.model import RuleFacts
    from criteria_builders import mbc_base

    unread = Finding("data-missing", "'conditions' could not be read from the FHIR server", ("prefetch:conditions",))
    advice = advise("patient-view", "her2-mbc-patient-view", {"patientId": "p1"}, mbc_base(), [unread],
                    knowledge=knowledge)
    [d4] = [i.card for i in advice.issued if i.rule_id == "D4"]
    assert "conditions' could not be read" in d4["detail"]
    assert unread not in advice.profile.findings  # the profile stays the record's; the call's findings ride beside it

    profile = advice.profile
    basis = RuleFacts(dict(profile.facts), (unread,))
    [rec] = [r for r in evaluate(knowledge.rulebook, {"breast_cancer": True, "findings": ["data-missing"]},
                                 "patient-view") if r.rule.id == "D4"]
    with_call = render([rec], knowledge.rulebook, profile, basis)[0].card["detail"]
    own = render([rec], knowledge.rulebook, profile)[0].card["detail"]
    assert "could not be read from the FHIR server" in with_call and "could not be read from the FHIR server" not in own
    assert RuleFacts.of(profile) == RuleFacts(profile.facts, tuple(profile.findings))
