"""`her2-cds fixtures load` moves the fixtures' dates to the loading day (issue 22).

The loader posts to a recording fake FHIR server (pytest-httpserver); what it
posted is then asked of the service, on the real today, exactly as the
sandbox would after loading, and must give the cards the committed fixtures
give on their anchor day.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Response

from cds_service.cli import cli
from cds_service.commands.fixtures_cmd import ANCHOR_TAG_SYSTEM
from cds_service.core import advice
from cds_service.core.date_shift import shift_resource
from cds_service.protocol import prefetch as service_prefetch
from cds_service.protocol.discovery import prefetch_templates

from conftest import fixture_generator
from shipped import SERVICES

ROOT = Path(__file__).resolve().parent.parent
PATIENTS = ROOT / "fixtures" / "patients"
REQUESTS = ROOT / "fixtures" / "requests"
EXT = "org.her2-cds.rule"
SERVICE_FOR_HOOK = {s.hook: s.id for s in SERVICES.values()}


def _accepting(posted: list[dict]):
    """A FHIR transaction endpoint's handler: every entry 201 Created, each Bundle kept in ``posted``."""

    def handle(request):
        bundle = json.loads(request.get_data())
        posted.append(bundle)
        body = {"resourceType": "Bundle", "type": "transaction-response",
                "entry": [{"response": {"status": "201 Created"}} for _ in bundle.get("entry") or []]}
        return Response(json.dumps(body), status=200, content_type="application/fhir+json")

    return handle


@pytest.fixture
def recording_fhir(httpserver):
    """A FHIR base that accepts every transaction and keeps what it was sent."""
    posted: list[dict] = []
    httpserver.expect_request("/fhir", method="POST").respond_with_handler(_accepting(posted))
    return httpserver.url_for("/fhir"), posted


def _load(base: str, *args: str):
    return CliRunner().invoke(cli, ["fixtures", "load", "--fhir-server", base, "--quiet", *args],
                              catch_exceptions=False)


def _resources(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle["entry"]]


def _anchor(bundle: dict) -> str:
    return next(t["code"] for t in bundle["meta"]["tag"] if t["system"] == ANCHOR_TAG_SYSTEM)


def test_load_moves_dates_to_the_day_given(recording_fhir):
    base, posted = recording_fhir
    path = PATIENTS / "p16-maint.json"
    committed = json.loads(path.read_text())
    result = _load(base, "--today", "2026-12-04", str(path))
    assert result.exit_code == 0, result.output
    assert "Dates in 1 Bundle(s) moved by +186 day(s): their 2026-06-01 is 2026-12-04." in result.stdout
    (sent,) = posted
    assert _anchor(sent) == "2026-12-04"
    assert _resources(sent) == _resources(shift_resource(committed, 186))
    assert _resources(sent) != _resources(committed)


def test_load_defaults_to_the_day_of_loading(recording_fhir):
    base, posted = recording_fhir
    result = _load(base, str(PATIENTS / "p01-de-novo-thp.json"))
    assert result.exit_code == 0, result.output
    assert _anchor(posted[0]) == dt.date.today().isoformat()


def test_keep_dates_loads_them_as_written(recording_fhir):
    base, posted = recording_fhir
    path = PATIENTS / "p01-de-novo-thp.json"
    result = _load(base, "--keep-dates", str(path))
    assert result.exit_code == 0, result.output
    assert "Dates in 1 Bundle(s) kept: written for 2026-06-01." in result.stdout
    assert _resources(posted[0]) == _resources(json.loads(path.read_text()))


def test_keep_dates_and_today_together_are_refused(recording_fhir):
    base, posted = recording_fhir
    result = CliRunner().invoke(cli, ["fixtures", "load", "--fhir-server", base, "--keep-dates",
                                      "--today", "2026-12-04", str(PATIENTS / "p01-de-novo-thp.json")])
    assert result.exit_code == 2
    assert "contradict" in result.output
    assert posted == []


def test_a_bundle_without_an_anchor_is_loaded_as_written(recording_fhir, tmp_path):
    base, posted = recording_fhir
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "x1", "birthDate": "1970-01-01"},
         "request": {"method": "PUT", "url": "Patient/x1"}}]}
    (tmp_path / "x.json").write_text(json.dumps(bundle))
    result = _load(base, "--today", "2030-01-01", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "1 Bundle(s) name no anchor day" in result.stdout
    assert posted == [bundle]


def _cards(cards: list[dict]) -> list[tuple]:
    return sorted((c["extension"][EXT]["id"], c["indicator"], c["summary"]) for c in cards)


@pytest.fixture(scope="module")
def loaded_today():
    """What `fixtures load` (no options: moved to today) posts for the repository's fixtures, by patient id."""
    posted: list[dict] = []
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/fhir", method="POST").respond_with_handler(_accepting(posted))
    server.start()
    try:
        result = _load(server.url_for("/fhir"))
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    return {b["entry"][0]["resource"]["id"]: b for b in posted}


def test_every_fixture_patient_is_loaded_moved(loaded_today):
    assert set(loaded_today) == {p.stem for p in PATIENTS.glob("*.json")}
    assert {_anchor(b) for b in loaded_today.values()} == {dt.date.today().isoformat()}


@pytest.mark.parametrize("path", sorted(REQUESTS.glob("*.json")), ids=lambda p: p.stem)
def test_loaded_fixtures_give_on_the_loading_day_the_cards_of_the_anchor_day(path, loaded_today, client, knowledge):
    """A fixture request answered by the service today from what `fixtures load` posted today equals
    the committed request answered on the anchor day (2026-06-01).

    The drafts are moved with the data (an EHR writes them today); the prefetch
    is filled from the loaded resources the way the fixtures' own is, and a
    prefetch the fixture marks as failed stays failed.
    """
    gen = fixture_generator()
    committed = json.loads(path.read_text())
    service_id = SERVICE_FOR_HOOK[committed["hook"]]
    # The anchor day's cards by the service's own steps (prefetch read with its findings, then the
    # advice), with the day given: the HTTP service always answers for the real today.
    gathered = service_prefetch.gather(committed, prefetch_templates(knowledge), None, 5.0)
    then = advice.advise(committed["hook"], service_id, committed["context"], gathered.resources,
                         gathered.findings, knowledge, today=gen.ANCHOR).cards
    context = dict(committed["context"])
    if "draftOrders" in context:
        context["draftOrders"] = shift_resource(context["draftOrders"], (dt.date.today() - gen.ANCHOR).days)
    prefetch = gen.prefetch_for(_resources(loaded_today[context["patientId"]]))
    prefetch.update({k: v for k, v in committed["prefetch"].items() if v.get("resourceType") == "OperationOutcome"})
    resp = client.post(f"/cds-services/{service_id}", json={**committed, "context": context, "prefetch": prefetch})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert _cards(resp.get_json()["cards"]) == _cards(then)
