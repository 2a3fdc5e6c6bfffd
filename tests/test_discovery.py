"""GET /cds-services: shape, hooks, prefetch tokens (CDS Hooks 2.0 only)."""

import json
import re

import pytest
from pathlib import Path

from cds_service import create_app
from cds_service.config import Settings
from cds_service.core.knowledge import load_knowledge
from cds_service.core.knowledge.services import PORTABLE_PARAMETERS
from cds_service.protocol.discovery import discovery_document

from shipped import KNOWLEDGE, PREFETCH

ROOT = Path(__file__).resolve().parent.parent
TERMINOLOGY = ROOT / "fhir_profiles" / "terminology"
# ValueSets of codes that are read *inside* an Observation found by another query
# (the gene studied is a component of the genetic-variant result), never searched for.
COMPONENT_VALUESETS = {"gene-studied"}

ALLOWED_TOKENS = {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId",
                  "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


def test_three_services_one_per_hook(client):
    resp = client.get("/cds-services")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    services = resp.get_json()["services"]
    assert sorted(s["hook"] for s in services) == ["order-select", "order-sign", "patient-view"]
    for s in services:
        for key in ("id", "hook", "title", "description", "usageRequirements", "prefetch"):
            assert isinstance(s[key], (str, dict)) and s[key], key


def test_prefetch_templates_use_only_2_0_tokens_and_simple_queries(client):
    for service in client.get("/cds-services").get_json()["services"]:
        for key, template in service["prefetch"].items():
            for token in re.findall(r"\{\{\s*([^}]+?)\s*\}\}", template):
                assert token in ALLOWED_TOKENS, (key, token)
            assert "today()" not in template and "%" not in template
            rtype, _, query = template.partition("?")
            assert re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.patientId\}\})?", rtype), template
            for param in filter(None, query.split("&")):
                name = param.split("=", 1)[0]
                assert name in {"patient", "code", "value-concept", "_count", "_sort", "status", "category"}, (key, name)


def test_prefetch_covers_what_the_criteria_need(client):
    prefetch = client.get("/cds-services").get_json()["services"][0]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    joined = " ".join(prefetch.values())
    for code in ["85319-2", "85318-4", "85337-4", "85339-0", "69548-6", "89247-1", "10230-1"]:
        assert f"http://loinc.org|{code}" in joined, code
    for rtype in ("Condition", "MedicationStatement", "MedicationRequest"):
        assert f"{rtype}?patient={{{{context.patientId}}}}" in joined


def test_generated_document_is_the_reviewed_one():
    """The prefetch queries are generated from the ValueSets; this is the document they gave when
    that replaced the hand-kept code lists (tests/data/discovery-document.json). A ValueSet edit
    that changes a query must update the file too, so the change is reviewed as an API change."""
    knowledge = load_knowledge(Settings())
    expected = json.loads((ROOT / "tests" / "data" / "discovery-document.json").read_text())
    assert discovery_document(Settings(), knowledge) == expected


def test_every_observation_valueset_is_queried():
    """A LOINC ValueSet the criteria classify results with must be fetched, or its results never arrive."""
    queried = {vs for q in KNOWLEDGE.services.queries.values() if q.resource_type == "Observation"
               for vs in q.valuesets}
    loinc_sets = set()
    for path in TERMINOLOGY.glob("ValueSet-*.json"):
        vs = json.loads(path.read_text())
        if any(inc["system"] == "http://loinc.org" for inc in vs["compose"]["include"]):
            loinc_sets.add(vs["id"])
    assert loinc_sets - COMPONENT_VALUESETS <= queried
    assert not queried & COMPONENT_VALUESETS


def test_prefetch_keys_and_templates_agree():
    assert tuple(KNOWLEDGE.services.templates) == tuple(KNOWLEDGE.services.queries)


def test_menopausal_status_is_prefetched_by_code_not_value():
    """value-concept is not supported by major EHR FHIR APIs (issue 12): menopausal status is searched by code."""
    codes = KNOWLEDGE.services.codes(KNOWLEDGE.terminology, "menopausalStatus")
    assert {code for _, code in codes} == {"161712005"}
    assert "code=http://snomed.info/sct|161712005" in PREFETCH["menopausalStatus"]


def test_every_template_uses_only_portable_search_parameters():
    """patient, code, category, status and _count: what HAPI and the major EHR FHIR APIs support."""
    for key, template in PREFETCH.items():
        if "?" not in template:
            continue
        params = {pair.split("=", 1)[0] for pair in template.split("?", 1)[1].split("&")}
        assert params <= PORTABLE_PARAMETERS, (key, params)


def test_administrations_and_oophorectomy_procedures_are_prefetched():
    assert PREFETCH["medicationAdministrations"] == "MedicationAdministration?patient={{context.patientId}}&_count=200"
    assert PREFETCH["procedures"].startswith("Procedure?patient={{context.patientId}}&code=")
    assert "http://www.cms.gov/Medicare/Coding/ICD10|0UT20ZZ" in PREFETCH["procedures"]


def test_disabled_auth_is_announced_in_usage_requirements(migrated_db_url):
    app = create_app(auth="disabled", database_url=migrated_db_url)
    services = app.test_client().get("/cds-services").get_json()["services"]
    assert all("DISABLED" in s["usageRequirements"] for s in services)


def test_cors_preflight_allows_browser_clients(client):
    resp = client.options("/cds-services/her2-mbc-patient-view", headers={
        "Origin": "https://sandbox.cds-hooks.org",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type, Authorization"})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]


def test_cors_on_actual_response(client):
    resp = client.get("/cds-services", headers={"Origin": "http://localhost:3000"})
    assert resp.headers.get("Access-Control-Allow-Origin") in ("*", "http://localhost:3000")


def _services_copy(tmp_path):
    import shutil
    dest = tmp_path / "profiles"
    shutil.copytree(ROOT / "fhir_profiles", dest)
    return dest


def test_services_are_data_and_a_broken_service_file_is_named(tmp_path):
    """One JSON per CDS service (fhir_profiles/services/), as CQL Services keeps one per hook: a service
    naming a key the prefetch does not define, or a query naming an unknown ValueSet, stops the load
    with the file and the place."""
    from cds_service.core.knowledge import KnowledgeError
    from cds_service.core.knowledge.services import load_services

    terminology = load_knowledge(Settings()).terminology
    services = load_services(ROOT / "fhir_profiles", terminology)
    assert sorted(s.hook for s in services.by_id.values()) == ["order-select", "order-sign", "patient-view"]
    assert services.required == {"patient", "her2", "conditions", "medicationStatements", "medicationRequests"}
    assert all(q.why for q in services.queries.values())

    broken = _services_copy(tmp_path)
    path = broken / "services" / "her2-mbc-order-sign.json"
    doc = json.loads(path.read_text())
    doc["prefetch"].append("labs")
    path.write_text(json.dumps(doc))
    with pytest.raises(KnowledgeError, match=r"her2-mbc-order-sign.json: \$.prefetch: keys not in prefetch.json: labs"):
        load_services(broken, terminology)

    doc["prefetch"] = [k for k in doc["prefetch"] if k not in ("labs", "her2")]
    path.write_text(json.dumps(doc))
    with pytest.raises(KnowledgeError, match="required keys missing: her2"):
        load_services(broken, terminology)

    path.write_text(json.dumps(dict(doc, prefetch=list(services.queries))))
    pre = broken / "services" / "prefetch.json"
    pdoc = json.loads(pre.read_text())
    pdoc["queries"][1]["valuesets"].append("her2-fish")
    pre.write_text(json.dumps(pdoc))
    with pytest.raises(KnowledgeError, match=r"prefetch.json: \$.queries\[1\].valuesets: no ValueSet with id 'her2-fish'"):
        load_services(broken, terminology)


def test_every_query_has_the_label_the_smart_page_names_it_by_checked_at_load(tmp_path):
    """The page's words for a query are data (issue 19): a query without a label, or without saying
    whether an empty answer is called out, stops the load with the place."""
    from cds_service.core.knowledge import KnowledgeError
    from cds_service.core.knowledge.services import load_services

    terminology = load_knowledge(Settings()).terminology
    services = load_services(ROOT / "fhir_profiles", terminology)
    assert all(q.label and q.label != q.key for q in services.queries.values())
    assert [k for k, q in services.queries.items() if q.expected] == ["patient", "her2", "hormoneReceptors", "conditions"]

    profiles = _services_copy(tmp_path)
    pre = profiles / "services" / "prefetch.json"
    pdoc = json.loads(pre.read_text())
    del pdoc["queries"][5]["label"]
    pre.write_text(json.dumps(pdoc))
    with pytest.raises(KnowledgeError, match=r"prefetch.json: \$.queries\[5\].label: say what the query reads"):
        load_services(profiles, terminology)
    pdoc["queries"][5]["label"] = "surgical history"
    pdoc["queries"][5]["expected"] = "yes"
    pre.write_text(json.dumps(pdoc))
    with pytest.raises(KnowledgeError, match=r"prefetch.json: \$.queries\[5\].expected: say whether"):
        load_services(profiles, terminology)


def test_a_required_key_is_data(tmp_path, monkeypatch):
    """Marking a query optional in prefetch.json is all it takes: the loaded services say so."""
    from cds_service.core.knowledge.services import load_services

    profiles = _services_copy(tmp_path)
    pre = profiles / "services" / "prefetch.json"
    pdoc = json.loads(pre.read_text())
    for q in pdoc["queries"]:
        if q["key"] == "medicationRequests":
            q["required"] = False
    pre.write_text(json.dumps(pdoc))
    services = load_services(profiles, load_knowledge(Settings()).terminology)
    assert "medicationRequests" not in services.required and "medicationStatements" in services.required
