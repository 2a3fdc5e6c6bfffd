"""`her2-cds fixtures load` against a real FHIR server (sekmet-fhir)."""

from __future__ import annotations

import json

import pytest
import requests

from cds_service.commands.fixtures_cmd import default_fixtures_dir

from .conftest import DATA, fixture_paths, free_port, run_cli

pytestmark = pytest.mark.integration


def _count(sekmet, query: str) -> int:
    resp = requests.get(f"{sekmet.base}/{query}", headers={"Authorization": f"Bearer {sekmet.token}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["total"]


def test_reloading_creates_nothing_new(loaded):
    before = {q: _count(loaded, q) for q in ("Patient?_count=1", "Observation?patient=itest-alpha",
                                              "Condition?patient=itest-beta", "Observation?patient=itest-beta")}
    result = run_cli("fixtures", "load", "--fhir-server", loaded.base, "--token", loaded.token, "--quiet",
                     *map(str, fixture_paths()))
    assert result.exit_code == 0, result.output
    assert "Bundle(s): 0 created," in result.stdout.splitlines()[0]
    after = {q: _count(loaded, q) for q in before}
    assert after == before


def test_post_entries_with_ids_land_under_their_ids_with_references_rewritten(loaded):
    """patient-itest-beta.json uses POST + urn:uuid references; the loader turns them into PUTs."""
    headers = {"Authorization": f"Bearer {loaded.token}"}
    obs = requests.get(f"{loaded.base}/Observation/itest-beta-her2", headers=headers, timeout=30)
    assert obs.status_code == 200
    assert obs.json()["subject"]["reference"] == "Patient/itest-beta"
    assert _count(loaded, "Observation?patient=itest-beta") == 3


def test_summary_names_created_resources_per_type(sekmet, tmp_path):
    bundle = json.loads((DATA / "patient-itest-alpha.json").read_text())
    for entry in bundle["entry"]:  # fresh ids, so this run creates them
        res = entry["resource"]
        res["id"] = res["id"].replace("itest-alpha", "itest-summary")
        entry["request"]["url"] = f"{res['resourceType']}/{res['id']}"
        if "subject" in res:
            res["subject"]["reference"] = "Patient/itest-summary"
    path = tmp_path / "one.json"
    path.write_text(json.dumps(bundle))
    result = run_cli("fixtures", "load", "--fhir-server", sekmet.base, "--token", sekmet.token, str(path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    observations = sum(1 for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    assert lines[0] == f"Loaded 1 transaction Bundle(s): {len(bundle['entry'])} created, 0 updated."
    assert any(line.split() == ["Observation", "created", str(observations), "updated", "0"] for line in lines)
    assert "Loading fixtures" in result.stderr  # the progress bar goes to stderr


def test_refusal_without_token_is_a_clear_error(sekmet):
    result = run_cli("fixtures", "load", "--fhir-server", sekmet.base, "--quiet", str(DATA))
    assert result.exit_code == 1
    assert "refused" in result.stderr and "HTTP 401" in result.stderr and "--token" in result.stderr


def test_refusal_of_an_invalid_bundle_names_the_file(sekmet, tmp_path):
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "id": "bad-1", "status": "not-a-status"},
         "request": {"method": "PUT", "url": "Observation/bad-1"}}]}
    (tmp_path / "broken.json").write_text(json.dumps(bad))
    result = run_cli("fixtures", "load", "--fhir-server", sekmet.base, "--token", sekmet.token, "--quiet",
                     str(tmp_path))
    assert result.exit_code == 1
    assert "refused broken.json: HTTP 4" in result.stderr


def test_unreachable_server_is_a_clear_error():
    result = run_cli("fixtures", "load", "--fhir-server", f"http://127.0.0.1:{free_port()}/fhir", "--quiet",
                     str(DATA))
    assert result.exit_code == 1
    assert "cannot reach the FHIR server" in result.stderr


def test_folder_without_bundles_is_an_error(tmp_path):
    (tmp_path / "note.json").write_text('{"resourceType": "Patient", "id": "x"}')
    result = run_cli("fixtures", "load", "--fhir-server", "http://127.0.0.1:9/fhir", str(tmp_path))
    assert result.exit_code == 1
    assert "no transaction Bundles found" in result.stderr


def test_loaded_dates_are_moved_to_the_loading_day(loaded):
    """sekmet (strict validation) stores the fixtures with every date moved from their anchor to today."""
    import datetime as dt

    from cds_service.commands.fixtures_cmd import bundle_anchor
    from cds_service.core.date_shift import shift_resource

    committed = json.loads((default_fixtures_dir() / "p24-brain.json").read_text())
    days = (dt.date.today() - bundle_anchor(committed)).days
    headers = {"Authorization": f"Bearer {loaded.token}"}
    for entry in committed["entry"]:
        res = entry["resource"]
        if res["resourceType"] not in ("Patient", "Observation", "Condition"):
            continue
        stored = requests.get(f"{loaded.base}/{res['resourceType']}/{res['id']}", headers=headers, timeout=30).json()
        want = shift_resource(res, days)
        for key in ("birthDate", "effectiveDateTime", "onsetDateTime", "recordedDate"):
            if key in res:
                assert stored[key] == want[key], (res["id"], key)
                assert days == 0 or stored[key] != res[key]
