"""``her2-cds profile PATH`` on a Bundle and on a CDS Hooks request."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cds_service.cli import cli
from criteria_builders import SNOMED, condition, drafts_context, her2_ihc, med_request, patient


def _bundle():
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": r} for r in (patient(), her2_ihc("3+", id="ihc"), condition(SNOMED, "254837009"),
                                  condition(SNOMED, "94222008", onset="2024-06-01"))]}


def test_profile_of_bundle_as_json(tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle()))
    result = CliRunner().invoke(cli, ["profile", str(path), "--json", "--today", "2025-06-01"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["patientId"] == "p1"
    assert data["facts"]["her2.status"] == {"value": "positive", "refs": ["Observation/ihc"],
                                            "note": data["facts"]["her2.status"]["note"]}
    assert data["facts"]["metastatic.sites"]["value"] == ["bone"]


def test_profile_of_hook_request_as_table(tmp_path):
    ctx = drafts_context(med_request("Enhertu", id="d1", intent=None), selections=["MedicationRequest/d1"])
    request = {"hook": "order-select", "hookInstance": "x", "context": ctx,
               "prefetch": {"patient": patient(), "her2": {"resourceType": "Bundle", "type": "searchset",
                                                             "entry": [{"resource": her2_ihc("1+")}]}}}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    result = CliRunner().invoke(cli, ["profile", str(path)])
    assert result.exit_code == 0, result.output
    assert "her2.status" in result.output and "low" in result.output
    assert "MedicationRequest/d1: fam-trastuzumab deruxtecan" in result.output


def test_profile_rejects_non_fhir_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    result = CliRunner().invoke(cli, ["profile", str(path)])
    assert result.exit_code != 0 and "expected a JSON object" in result.output


def test_profile_json_shows_the_lines_and_courses(tmp_path):
    from criteria_builders import med_statement

    bundle = _bundle()
    bundle["entry"] += [{"resource": med_statement("trastuzumab", start="2024-07-01", id="t")},
                        {"resource": med_statement("pertuzumab", start="2024-07-01", id="p")},
                        {"resource": med_statement("docetaxel", start="2024-07-01", id="d")}]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = CliRunner().invoke(cli, ["profile", str(path), "--json", "--today", "2025-06-01"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["lines"] == [{"number": 1, "start": "2024-07-01", "end": None,
                              "ingredients": ["pertuzumab", "trastuzumab"],
                              "regimen": ["docetaxel", "pertuzumab", "trastuzumab"],
                              "refs": ["MedicationStatement/t", "MedicationStatement/p"]}]
    assert [(c["ingredients"], c["line"], c["end"]) for c in data["courses"]] == [
        (["docetaxel"], 1, None), (["pertuzumab"], 1, None), (["trastuzumab"], 1, None)]
