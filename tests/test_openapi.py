"""The OpenAPI 3.1 description: valid, shipped up to date, built from the validation schemas."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from openapi_spec_validator import validate

from cds_service.cli import cli
from cds_service.protocol.openapi import SCHEMA_FILES, build_document, document_text
from cds_service.protocol.validation import load_schema

from shipped import KNOWLEDGE, SERVICES

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "docs" / "openapi.json"


def test_document_is_valid_openapi_3_1():
    document = build_document(KNOWLEDGE.services)
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema or a dangling $ref


def test_shipped_copy_equals_the_generated_document():
    assert SHIPPED.read_text(encoding="utf-8") == document_text(KNOWLEDGE.services), \
        "docs/openapi.json is stale: run `her2-cds openapi --output docs/openapi.json`"


def test_check_option_detects_a_stale_copy(tmp_path):
    stale = tmp_path / "openapi.json"
    stale.write_text("{}")
    result = CliRunner().invoke(cli, ["openapi", "--output", str(stale), "--check"])
    assert result.exit_code == 1 and "out of date" in result.stderr
    assert CliRunner().invoke(cli, ["openapi", "--output", str(stale)]).exit_code == 0
    assert CliRunner().invoke(cli, ["openapi", "--output", str(stale), "--check"]).exit_code == 0


def test_served_document_is_the_generated_one(client):
    resp = client.get("/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json() == build_document(KNOWLEDGE.services)


def test_served_without_a_token(tmp_path):
    from cds_service import create_app
    app = create_app(database_url=f"sqlite:///{tmp_path / 'a.db'}")  # auth required, no issuer
    assert app.test_client().get("/cds-services").status_code == 401
    assert app.test_client().get("/openapi.json").status_code == 200


def test_bodies_are_the_validation_schemas_not_copies():
    """Each schema file appears once, with its $defs lifted beside it and local $refs rewritten."""
    schemas = build_document(KNOWLEDGE.services)["components"]["schemas"]
    for name, component in SCHEMA_FILES.items():
        source = load_schema(name)
        defs = source.pop("$defs", {})
        source.pop("$schema"), source.pop("$id")
        text = json.dumps(source).replace('"#/$defs/', f'"#/components/schemas/{component}_')
        assert schemas[component] == json.loads(text)
        for def_name in defs:
            assert f"{component}_{def_name}" in schemas


def test_every_service_hook_feedback_and_probe_is_described(app):
    document = build_document(KNOWLEDGE.services)
    paths = document["paths"]
    for service in SERVICES.values():
        post = paths[f"/cds-services/{service.id}"]["post"]
        assert post["requestBody"]["content"]["application/json"]["schema"]["allOf"][1] == \
            {"properties": {"hook": {"const": service.hook}}}
        assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/CdsResponse")
        assert post["security"] == [{"cdsClientJwt": []}]
        for status in ("400", "401", "412"):
            assert post["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/OperationOutcome")
        assert f"/cds-services/{service.id}/feedback" in paths
    assert {"/cds-services", "/healthz", "/readyz", "/openapi.json"} <= set(paths)
    assert "security" not in paths["/healthz"]["get"]
    assert document["components"]["securitySchemes"]["cdsClientJwt"] == {
        **document["components"]["securitySchemes"]["cdsClientJwt"], "type": "http", "scheme": "bearer",
        "bearerFormat": "JWT"}
    # every non-SMART route of the app is described
    rules = {r.rule for r in app.url_map.iter_rules()
             if not r.rule.startswith(("/smart", "/static")) and r.endpoint != "static"}
    described = {p.replace(s.id, "<service_id>") for p in paths for s in SERVICES.values() if s.id in p} | set(paths)
    assert rules <= described, rules - described


def test_request_examples_are_answered_as_documented(app, client, response_validator):
    """The document's examples (what Schemathesis sends first) get 200s with schema-valid bodies
    (the feedback example's card issued first, through each service: feedback is taken only for issued cards)."""
    from conftest import issue_card
    from cds_service.storage import issued_cards

    paths = build_document(KNOWLEDGE.services)["paths"]
    for service in SERVICES.values():
        example = paths[f"/cds-services/{service.id}/feedback"]["post"]["requestBody"]["content"]
        card = example["application/json"]["examples"]["synthetic"]["value"]["feedback"][0]["card"]
        store = app.extensions["her2cds.store"]
        with store.write() as conn:  # one card uuid in the example: issued through this service now
            conn.execute(issued_cards.delete().where(issued_cards.c.card_uuid == card))
        issue_card(store, card, service.id)
        for path, kind in ((f"/cds-services/{service.id}", "hook"), (f"/cds-services/{service.id}/feedback", "fb")):
            media = paths[path]["post"]["requestBody"]["content"]["application/json"]
            resp = client.post(path, json=media["examples"]["synthetic"]["value"])
            assert resp.status_code == 200, (path, resp.get_json())
            if kind == "hook":
                response_validator.validate(resp.get_json())
