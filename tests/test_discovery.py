"""GET /cds-services: shape, hooks, prefetch tokens (CDS Hooks 2.0 only)."""

import re

from cds_service import create_app
from cds_service.protocol.discovery import HER2_CODES, HR_CODES, OTHER_OBS_CODES

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


def test_discovery_codes_are_known_to_the_terminology():
    """Every Observation code discovery asks for is one the criteria can read."""
    codes = set()
    from pathlib import Path
    for path in Path("fhir_profiles").rglob("*.json"):
        text = path.read_text()
        codes.update(re.findall(r'"code"\s*:\s*"([0-9]+-[0-9])"', text))
    if not codes:  # terminology artifacts not written yet would make this vacuous
        raise AssertionError("no LOINC codes found in fhir_profiles/")
    missing = [c for c in HER2_CODES + HR_CODES + OTHER_OBS_CODES if c not in codes]
    assert not missing, missing


def test_menopausal_status_is_prefetched_by_value():
    """S9/M1 need menopausal status; it is coded in the value, so it is searched by value-concept."""
    from cds_service.protocol.discovery import MENOPAUSAL_VALUES, PREFETCH
    import json as _json
    from pathlib import Path
    vs = _json.loads(Path("fhir_profiles/terminology/ValueSet-menopausal-status.json").read_text())
    codes = {c["code"] for inc in vs["compose"]["include"] for c in inc.get("concept", [])}
    assert set(MENOPAUSAL_VALUES) == codes
    assert "value-concept=http://snomed.info/sct|309606002" in PREFETCH["menopausalStatus"]


def test_disabled_auth_is_announced_in_usage_requirements(db_url):
    app = create_app(auth="disabled", database_url=db_url)
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
