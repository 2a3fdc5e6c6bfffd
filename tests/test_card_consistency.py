"""Over every fixture request: no two cards undo each other, and every detail reads short and clinical.

Why: the oncologist's review (issue 16) found cards that contradicted each other
(M4 "remove palbociclib" beside S8 "monitor palbociclib") and details that named
profile keys (``her2.status = positive``) in a narrow EHR panel.  These tests
hold every card the fixtures produce to both properties, so a new rule cannot
bring either back unnoticed.

"Undo" is checked on ingredients (after the service's own normalization):
a card *removes* X when a suggestion deletes a draft of X or stops an active X;
another card *creates* X when a suggestion creates a MedicationRequest for X,
and *keeps* X when it is an information card whose rule requires a drafted X
(monitoring or endorsing what is being ordered: S5, S8, S6-TDXD, F3, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.core.cards import DETAIL_LIMIT

from test_fixtures_table import EXT, SERVICE_FOR_HOOK

ROOT = Path(__file__).resolve().parents[1]

DRAFT_FACTS = {"draft.ingredients", "draft.all.ingredients"}
DRAFT_CLASS_FACTS = {"draft.classes", "draft.all.classes"}


@pytest.fixture(scope="module")
def rulebook(knowledge):
    return knowledge.rulebook


@pytest.fixture(scope="module")
def terminology(knowledge):
    return knowledge.terminology


@pytest.fixture(scope="module")
def responses(tmp_path_factory, fixtures_today):
    """(request name, request body, cards) for every fixture request, evaluated as of today."""
    db = tmp_path_factory.mktemp("consistency") / "test.db"
    client = create_app(auth="disabled", database_url=f"sqlite:///{db}").test_client()
    _, requests, _ = fixtures_today
    out = []
    for name, body in requests.items():
        resp = client.post(f"/cds-services/{SERVICE_FOR_HOOK[body['hook']]}", json=body)
        assert resp.status_code == 200, name
        out.append((name, body, resp.get_json()["cards"]))
    return out


def _positive_draft_tests(node, rulebook, out):
    """(fact, operand) of every draft test the condition requires (not under a ``not``)."""
    if isinstance(node, dict):
        if "all" in node or "any" in node:
            for child in node.get("all") or node.get("any"):
                _positive_draft_tests(child, rulebook, out)
        elif "scope" in node:
            _positive_draft_tests(rulebook.scopes[node["scope"]].source, rulebook, out)
        elif "fact" in node and node["fact"] in DRAFT_FACTS | DRAFT_CLASS_FACTS:
            for op in ("contains", "contains_any", "contains_all"):
                if op in node:
                    operand = node[op]
                    out.append((node["fact"], set(operand if isinstance(operand, list) else [operand])))
    return out


def _drafts(body, terminology):
    entries = (body["context"].get("draftOrders") or {}).get("entry", [])
    out = {}
    for e in entries:
        r = e["resource"]
        drugs = terminology.drugs_for_codeable(r.get("medicationCodeableConcept"))
        out[f"MedicationRequest/{r['id']}"] = ({i for d in drugs for i in d.ingredients},
                                               {k for d in drugs for k in d.classes})
    return out


def _effects(card, rulebook, terminology, drafts):
    """(removed, created, kept) ingredient sets of one card."""
    removed, created, kept = set(), set(), set()
    drafted = {i for ingredients, _ in drafts.values() for i in ingredients}
    for s in card.get("suggestions", []):
        for a in s["actions"]:
            if a["type"] == "delete":
                removed |= drafts.get(a["resourceId"], (set(), set()))[0]
            elif a["resource"]["resourceType"] in ("MedicationRequest", "MedicationStatement"):
                drugs = terminology.drugs_for_codeable(a["resource"].get("medicationCodeableConcept"))
                ingredients = {i for d in drugs for i in d.ingredients}
                if a["type"] == "update":
                    # stopping an old record of a drug the drafts continue (IV trastuzumab when Phesgo
                    # is ordered) ends that record, not the drug
                    removed.update(ingredients - drafted)
                else:
                    created.update(ingredients)
    if card["indicator"] == "info":
        rule = rulebook.rule(card["extension"][EXT]["id"])
        for fact, operand in _positive_draft_tests(rule.when.source, rulebook, []):
            for ingredients, classes in drafts.values():
                if (fact in DRAFT_FACTS and ingredients & operand) or (fact in DRAFT_CLASS_FACTS and classes & operand):
                    kept |= ingredients & operand if fact in DRAFT_FACTS else ingredients
    return removed, created, kept


def test_no_card_undoes_another(responses, rulebook, terminology):
    problems = []
    for name, body, cards in responses:
        drafts = _drafts(body, terminology)
        effects = [(c["extension"][EXT]["id"], *_effects(c, rulebook, terminology, drafts)) for c in cards]
        for rid_a, removed, _, _ in effects:
            for rid_b, _, created, kept in effects:
                if rid_a != rid_b and removed & (created | kept):
                    problems.append(f"{name}: {rid_a} removes {sorted(removed & (created | kept))} "
                                    f"that {rid_b} creates or keeps")
    assert problems == []


def test_the_checker_sees_a_contradiction(rulebook, terminology):
    """The checker itself can fail: M4 (remove palbociclib) beside S8 (monitor the palbociclib order)."""
    drafts = {"MedicationRequest/d1": ({"palbociclib"}, {"cdk46-inhibitor"})}
    m4 = {"indicator": "warning", "extension": {EXT: {"id": "M4"}},
          "suggestions": [{"actions": [{"type": "delete", "resourceId": "MedicationRequest/d1"}]}]}
    s8 = {"indicator": "info", "extension": {EXT: {"id": "S8"}}}
    removed, _, _ = _effects(m4, rulebook, terminology, drafts)
    _, _, kept = _effects(s8, rulebook, terminology, drafts)
    assert removed & kept == {"palbociclib"}


def _profile_keys(rulebook):
    """Fact names that cannot occur in clinical prose: dotted or underscored keys."""
    return sorted(n for n in rulebook.facts if "." in n or "_" in n)


def test_every_detail_is_short_and_names_no_profile_key(responses, rulebook):
    keys = _profile_keys(rulebook)
    assert "her2.status" in keys and "breast_cancer" in keys
    for name, _, cards in responses:
        for card in cards:
            detail = card["detail"]
            rid = card["extension"][EXT]["id"]
            assert len(detail) <= DETAIL_LIMIT, f"{name} {rid}: {len(detail)} characters"
            assert "`" not in detail, f"{name} {rid}"
            leaked = [k for k in keys if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", detail)]
            assert leaked == [], f"{name} {rid}: {leaked}"
            advice = detail.split("\n\n", 1)[0]
            assert len([ln for ln in advice.splitlines() if ln.strip()]) <= 5, f"{name} {rid}"
            evidence = detail.split("**Evidence**\n", 1)[1].split("\n\n", 1)[0].splitlines()
            assert evidence and all(ln.startswith("- ") for ln in evidence), f"{name} {rid}"
            why = detail.split("**Why this card**\n", 1)[1].splitlines()
            assert why and all(ln.startswith("- ") for ln in why), f"{name} {rid}"


def test_f8_after_progression_does_not_offer_first_line_blockade(responses):
    """p24: new brain metastases after THP, capecitabine drafted alone: one card (L2-CHEMO), HER2CLIMB first, no pertuzumab."""
    cards = next(c for n, _, c in responses if n == "p24-brain-order-select")
    assert [c["extension"][EXT]["id"] for c in cards] == ["L2-CHEMO"]
    labels = [s["label"] for s in cards[0].get("suggestions", [])]
    assert labels == ["Add tucatinib + trastuzumab (HER2CLIMB)", "Add trastuzumab"]
    assert cards[0]["suggestions"][0].get("isRecommended") is True


def test_accepted_her2climb_is_not_offered_again(responses):
    """p24 after accepting HER2CLIMB (capecitabine + tucatinib + trastuzumab drafted): no brain card."""
    cards = next(c for n, _, c in responses if n == "p24-brain-order-select-2")
    assert not {"L2", "L2-CHEMO", "F8"} & {c["extension"][EXT]["id"] for c in cards}


def test_l2_names_no_regimen_the_patient_progresses_on(responses):
    cards = next(c for n, _, c in responses if n == "p61-brain-on-tucatinib-patient-view")
    l2 = next(c for c in cards if c["extension"][EXT]["id"] == "L2")
    assert "tucatinib" not in l2["summary"].lower()
    assert not any("ucatinib" in s["label"] for s in l2.get("suggestions", []))


def test_line_switch_stops_the_active_therapy(responses):
    cards = next(c for n, _, c in responses if n == "p51-line-switch-order-select")
    assert [c["indicator"] for c in cards] == ["warning"]
    actions = [a for s in cards[0]["suggestions"] for a in s["actions"]]
    assert {a["type"] for a in actions} == {"update"}
    by_type = {a["resource"]["resourceType"]: a for a in actions}
    assert by_type["MedicationRequest"]["resource"]["status"] == "stopped"
    assert "Stop the active order" in by_type["MedicationRequest"]["description"]
    # a medication-list entry is labelled as such: the treatment must be stopped in the plan too
    assert "medication list" in by_type["MedicationStatement"]["description"]


def test_maintenance_summary_names_only_the_additions_still_open(responses):
    """p69: letrozole drafted on HP maintenance: M1 no longer offers endocrine therapy in its summary."""
    cards = next(c for n, _, c in responses if n == "p69-male-letrozole-order-select")
    m1 = next(c for c in cards if c["extension"][EXT]["id"] == "M1")
    assert m1["summary"].startswith("Induction completed: palbociclib or tucatinib can be added")
    assert not any("letrozole" in s["label"].lower() for s in m1.get("suggestions", []))
    hr_negative = next(c for n, _, c in responses if n == "p15-hrneg-maint-patient-view")
    m1 = next(c for c in hr_negative if c["extension"][EXT]["id"] == "M1")
    assert "tucatinib can be added" in m1["summary"] and "palbociclib" not in m1["summary"]


def test_why_this_card_writes_values_in_words_not_tokens(responses, knowledge):
    """No drug-class code ("anti-her2-antibody") or enum token ("equivocal_pending") in "Why this card"."""
    import json as _json
    classes = [c["code"] for c in _walk(_json.loads((ROOT / "fhir_profiles" / "terminology" /
                                                     "CodeSystem-drug-class.json").read_text())["concept"])]
    tokens = {v for t in knowledge.rulebook.facts.values() for v in t.split("|") if "_" in v}
    assert "equivocal_pending" in tokens and "anti-her2-antibody" in classes
    for name, _, cards in responses:
        for card in cards:
            why = card["detail"].split("**Why this card**\n", 1)[1]
            for line in why.splitlines()[:-1]:  # the last line is the rule's own id and title
                value = line.split(": ", 1)[1] if ": " in line else line
                shown = value.split(" (", 1)[0]
                assert not tokens & set(re.split(r",\s*", shown)), (name, line)
                assert not set(classes) & set(re.split(r",\s*", shown)), (name, line)


def _walk(concepts):
    for c in concepts:
        yield c
        yield from _walk(c.get("concept") or ())
