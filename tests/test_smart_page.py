"""The SMART page's view-model and the pieces issue 14 added around it, without Flask or a browser.

Presenter: human words from the terminology, what could not be read, why no card
shows; card detail as sanitized HTML; percent-encoded prefetch queries; card
links with appContext and the absolute link only for a launchable FHIR server;
R4 diagnostics that name a field path.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cds_service.core.advice import Advice
from cds_service.core.cards import IssuedCard
from cds_service import create_app
from cds_service.core.cards import app_links
from cds_service.core.criteria import Finding
from cds_service.core.parse import check_r4
from cds_service.protocol.prefetch import encode_query, render_template
from cds_service.smart import presenter
from cds_service.smart.rich_text import to_html
from cds_service.smart.views import read_app_context

TODAY = dt.date(2026, 6, 1)
LOINC = "http://loinc.org"


@pytest.fixture(scope="module")
def knowledge():
    return create_app(auth="disabled", database_url="sqlite://").extensions["her2cds.knowledge"]


def patient():
    return {"resourceType": "Patient", "id": "p1", "name": [{"given": ["Ada"], "family": "Test"}],
            "gender": "female", "birthDate": "1968-03-01"}


def her2(value="3+", **extra):
    return {"resourceType": "Observation", "id": "her2", "status": "final", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": LOINC, "code": "85319-2"}]}, "effectiveDateTime": "2026-01-10",
            "valueString": value, **extra}


def bone_mets():
    return {"resourceType": "Condition", "id": "bone", "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "94222008",
                                 "display": "Secondary malignant neoplasm of bone"}]},
            "onsetDateTime": "2026-01-05"}


def page_of(knowledge, *resources, **kw):
    return presenter.build_page(list(resources), patient_id="p1", iss="https://ehr.example/fhir",
                                knowledge=knowledge, today=TODAY, **kw)


def test_her2_status_names_the_result_by_its_clinical_short_name(knowledge):
    """Issue 22: "HER2 IHC 3+", not the LOINC long name; the short name is a ValueSet designation."""
    page = page_of(knowledge, patient(), her2(specimen={"display": "Liver core biopsy"}), bone_mets())
    status = page.summary["her2"]
    assert status["value"] == "positive"
    [result] = status["results"]
    assert result == {"test": "HER2 IHC", "value": "3+",
                      "date": "10 Jan 2026", "specimen": "Liver core biopsy", "ref": "Observation/her2"}
    assert page.summary["sites"] == ["bone"]
    assert page.summary["metastatic"] == "yes"


def test_the_integrators_table_keeps_keys_and_gives_labels(knowledge):
    page = page_of(knowledge, patient(), her2())
    row = next(f for f in page.facts if f["name"] == "her2.status")
    assert row["label"] and row["label"] != "her2.status"


def test_an_untreated_de_novo_patient_without_cards_is_told_what_the_record_shows(knowledge, monkeypatch):
    monkeypatch.setattr(presenter, "advise", lambda *a, **k: Advice((), None))
    page = page_of(knowledge, patient(), her2(), bone_mets())
    assert page.cards == []
    text = " ".join(page.no_cards_reasons)
    assert "HER2 status: positive" in text and "metastatic disease: yes" in text
    assert "untreated" in text


def test_unreadable_and_empty_searches_are_named_in_clinical_words(knowledge):
    unread = (Finding("data-missing", "'conditions' could not be read", ("prefetch:conditions",)),)
    page = page_of(knowledge, patient(), her2(), read_findings=unread,
                   empty_queries=("hormoneReceptors", "medicationRequests"))
    assert page.unreadable == ["diagnoses (conditions, metastatic sites)"]
    assert page.empty == ["estrogen and progesterone receptor results"]  # no orders is common: not called out
    assert "No LVEF (ejection fraction) result on record." in page.summary["gaps"]


def test_every_query_is_named_by_its_label_from_the_services_data(knowledge):
    """The labels live in fhir_profiles/services/prefetch.json: no prefetch key is ever shown as a key."""
    keys = list(knowledge.services.queries)
    unread = tuple(Finding("data-missing", f"'{k}' could not be read", (f"prefetch:{k}",)) for k in keys)
    page = page_of(knowledge, patient(), her2(), read_findings=unread, empty_queries=tuple(keys))
    assert "surgical history (bilateral oophorectomy)" in page.unreadable
    assert "administered doses (infusion records)" in page.unreadable
    assert not set(page.unreadable) & set(keys) and len(page.unreadable) == len(keys)
    assert page.empty == [knowledge.services.queries[k].label for k in ("patient", "her2", "hormoneReceptors", "conditions")]


def test_card_detail_is_rendered_markdown_without_scripts_or_javascript_links():
    html = to_html("**Evidence**\n- [CLEOPATRA](https://example.org/c) `x`\n<script>alert(1)</script>"
                   "\n[bad](javascript:alert(1))")
    assert "<strong>Evidence</strong>" in html and "<li>" in html and "<code>x</code>" in html
    assert 'href="https://example.org/c"' in html and 'rel="noopener noreferrer"' in html
    assert "<script" not in html and 'href="javascript' not in html and "**" not in html


def test_the_card_a_link_opened_comes_first(knowledge):
    cards = [IssuedCard({"uuid": "1", "summary": "a", "indicator": "info"}, "A1", "v"),
             IssuedCard({"uuid": "2", "summary": "b", "indicator": "info"}, "B2", "v")]
    assessment = presenter.Assessment(None, cards)
    page = presenter.present(assessment, patient_id="p1", iss="i", today=TODAY, knowledge=knowledge,
                             focus_rule="B2")
    assert [c["rule"] for c in page.cards] == ["B2", "A1"]


def test_the_page_names_the_records_the_profile_read_first_of_a_type_and_id_wins(knowledge):
    """Issue 19: the page reads ``profile.records``, so a repeated type/id shows what the facts were read from."""
    page = page_of(knowledge, patient(), her2("3+"), her2("1+"), bone_mets())
    assert page.summary["her2"]["value"] == "positive"
    assert [r["value"] for r in page.summary["her2"]["results"]] == ["3+"]
    row = next(f for f in page.facts if f["name"] == "her2.status")
    assert [s["ref"] for s in row["sources"]] == ["Observation/her2"]


def test_a_patient_resource_that_is_not_valid_r4_is_not_named_in_the_header(knowledge):
    """What the criteria could not read (a finding says why) is not shown as the patient; the id still is."""
    page = page_of(knowledge, dict(patient(), birthDate="1 March 1968"), her2())
    assert page.patient["name"] == "(Patient resource not readable)"
    assert page.patient_id == "p1"
    assert any(f.startswith("malformed-resource: Patient/p1") for f in page.findings)


def test_both_timeline_layouts_are_in_the_page(knowledge):
    page = page_of(knowledge, patient(), her2(), bone_mets())
    assert 'viewBox="0 0 1000 ' in page.timeline_wide and 'viewBox="0 0 440 ' in page.timeline_compact


# -- queries, links, diagnostics -----------------------------------------------------------------

def test_prefetch_values_are_percent_encoded_once():
    query = render_template("Observation?patient={{context.patientId}}&code=http://loinc.org|85319-2,"
                            "http://loinc.org|18474-7&_count=100", {"patientId": "p1"})
    assert query == ("Observation?patient=p1&code=http%3A%2F%2Floinc.org%7C85319-2,"
                     "http%3A%2F%2Floinc.org%7C18474-7&_count=100")
    assert "//" not in query.partition("?")[2]
    assert encode_query(query) == query
    assert render_template("Patient/{{context.patientId}}", {"patientId": "p1"}) == "Patient/p1"


def test_smart_link_carries_app_context_and_absolute_only_with_a_server():
    links = app_links("https://cds.example.org", "https://ehr.example/fhir", "p1", "F2")
    assert json.loads(links[0]["appContext"]) == {"patient": "p1", "rule": "F2"}
    assert [link["type"] for link in links] == ["smart", "absolute"]
    assert [link["type"] for link in app_links("https://cds.example.org", None, "p1", "F2")] == ["smart"]


def test_app_context_is_only_a_hint():
    assert read_app_context('{"patient":"p1","rule":"F2","x":1}') == {"patient": "p1", "rule": "F2"}
    for bad in (None, "not json", "[1]", '{"patient": 5}', "x" * 600):
        assert read_app_context(bad) == {}


def _hook(client, body):
    return client.post("/cds-services/her2-mbc-patient-view", json=body)


@pytest.mark.parametrize("allowed, offered", [("https://ehr.example/fhir", True), ("", False)])
def test_hook_cards_offer_the_absolute_link_only_for_an_allowed_issuer(allowed, offered):
    from pathlib import Path
    body = json.loads((Path(__file__).parent.parent / "fixtures" / "requests"
                       / "p01-de-novo-thp-order-select.json").read_text())
    body["fhirServer"] = "https://ehr.example/fhir"
    app = create_app(auth="disabled", database_url="sqlite://", smart_allowed_issuers=allowed,
                     fhir_allowed_networks="127.0.0.0/8,::1/128",
                     public_url="https://cds.example.org")
    resp = app.test_client().post("/cds-services/her2-mbc-order-select", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    types = {link["type"] for card in resp.json["cards"] for link in card.get("links", [])}
    assert resp.json["cards"] and "smart" in types
    assert ("absolute" in types) is offered


def test_a_missing_medication_is_named_not_root():
    problem = check_r4({"resourceType": "MedicationRequest", "id": "d1", "status": "draft", "intent": "order",
                        "subject": {"reference": "Patient/p1"}})
    assert problem is not None and "(root)" not in problem[1]
    assert "medication[x] missing (one of medicationCodeableConcept, medicationReference)" in problem[1]
    nested = check_r4({"resourceType": "MedicationRequest", "id": "d2", "status": "draft", "intent": "order",
                       "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"coding": [{"system": 3}]}})
    assert "medicationCodeableConcept.coding[0].system" in nested[1]


def lvef(oid, day, value, status="final"):
    return {"resourceType": "Observation", "id": oid, "status": status, "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": LOINC, "code": "10230-1"}]}, "effectiveDateTime": day,
            "valueQuantity": {"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}


def test_the_lvef_series_is_the_readings_the_rules_use(knowledge):
    """Oldest first, with dates; an entered-in-error or preliminary echo is not a reading (issue 22)."""
    page = page_of(knowledge, patient(), her2(), bone_mets(), lvef("e1", "2025-06-01", 62),
                   lvef("e2", "2025-12-01", 20, status="entered-in-error"), lvef("e3", "2026-03-01", 58),
                   lvef("e4", "2026-05-01", 30, status="preliminary"))
    heart = page.summary["lvef"]
    assert [(v["value"], v["date"], v["latest"]) for v in heart["series"]] == [
        ("62%", "1 Jun 2025", False), ("58%", "1 Mar 2026", True)]
    assert page.profile.value("lvef.value") == 58
    assert heart["flags"] == []  # 58 % is above the default lower limit; no anti-HER2 therapy to check


def test_below_the_lower_limit_is_flagged_by_the_results_own_range(knowledge):
    low = {**lvef("e1", "2026-05-01", 52), "referenceRange": [{"low": {"value": 53, "unit": "%"}}]}
    heart = page_of(knowledge, patient(), her2(), bone_mets(), low).summary["lvef"]
    assert heart["flagged"] and "lower limit of normal 53%" in heart["flags"][0]["text"]
