"""The OpenAPI 3.1 description of the service (``GET /openapi.json``, ``docs/openapi.json``).

Built, not written: the request, response and feedback bodies are the very
JSON Schemas the service validates with (``cds_service/schemas``), lifted
into ``components/schemas`` (their ``$defs`` become sibling components and
local ``$ref``s are rewritten to point at them), so the description cannot
drift from what the service accepts and sends.  The service list and the
examples' prefetch keys come from the knowledge's ``Services`` the caller passes
(the app's own at ``GET /openapi.json``; the command loads its settings' one).  Only the small bodies that have no schema file of
their own (discovery, feedback receipt, probes, OperationOutcome) are
described here.

``her2-cds openapi --output docs/openapi.json`` writes the shipped copy; a
test checks that it equals what this module builds.
"""

from __future__ import annotations

import json
from importlib.metadata import version

from flask import Blueprint, current_app

from .validation import load_schema

PATH = "/openapi.json"

#: schema file -> component name
SCHEMA_FILES = {"cds-request": "CdsRequest", "cds-response": "CdsResponse", "cds-feedback": "CdsFeedback"}

_OPERATION_OUTCOME = {
    "title": "FHIR R4 OperationOutcome (error body)",
    "description": "Every error the service answers carries one; `expression` says where the problem is "
                   "(a JSON pointer into the body, `header:<name>`, `body` or the path).",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code", "diagnostics"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

def _discovery(service_ids: list[str]) -> dict:
    """The discovery response body: its service ids are the ones this document describes."""
    return {
        "title": "CDS Hooks 2.0 discovery response",
        "type": "object",
        "required": ["services"],
        "properties": {
            "services": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["hook", "description", "id"],
                    "properties": {
                        "hook": {"type": "string"},
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                        "id": {"enum": service_ids},
                        "prefetch": {"type": "object", "additionalProperties": {"type": "string"}},
                        "usageRequirements": {"type": "string"},
                    },
                },
            }
        },
    }


_FEEDBACK_RECEIPT = {
    "title": "Feedback receipt",
    "description": "How many entries arrived and how many were new (the same entry sent twice is stored once).",
    "type": "object",
    "required": ["received", "stored", "duplicates"],
    "properties": {k: {"type": "integer", "minimum": 0} for k in ("received", "stored", "duplicates")},
}

_HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}

_READY = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"enum": ["ready", "not ready"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_ERRORS = {
    400: "The body is not JSON, too deep, or does not conform to the request schema (the hook must be this service's)",
    401: "No valid CDS client JWT (missing, expired, untrusted issuer, wrong `aud`, or a replayed `jti`)",
    404: "No such CDS service (feedback: a card this service did not issue to this client)",
    429: "Too many requests from this client; send again after the time in `Retry-After`",
    412: "Required data is neither prefetched nor retrievable from `fhirServer`",
    413: "The body is larger than `HER2CDS_MAX_BODY_BYTES`",
    415: "The Content-Type is not `application/json` (or `application/fhir+json`)",
    500: "Unexpected error; the body names the request id to look up in the service log",
    503: "A dependency (the JWT replay cache's database) is temporarily unavailable",
}


def _lift(name: str, component: str, components: dict) -> None:
    """Add ``schemas/<name>.schema.json`` as ``component``, its ``$defs`` as ``<component>_<def>``."""
    schema = load_schema(name)
    prefix = f"#/components/schemas/{component}_"
    defs = schema.pop("$defs", {})
    schema.pop("$schema", None)
    schema.pop("$id", None)

    def rewrite(node):
        if isinstance(node, dict):
            return {k: (prefix + v[len("#/$defs/"):] if k == "$ref" and isinstance(v, str)
                        and v.startswith("#/$defs/") else rewrite(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    components[component] = rewrite(schema)
    for def_name, definition in defs.items():
        components[f"{component}_{def_name}"] = rewrite(definition)


def _json(schema_ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}


def _errors(*statuses: int) -> dict:
    out = {}
    for status in statuses:
        out[str(status)] = {"description": _ERRORS[status], "content": _json("OperationOutcome")}
        if status == 401:
            out["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return out


def _request_body(component: str, extra: dict | None = None, example: dict | None = None) -> dict:
    schema = {"$ref": f"#/components/schemas/{component}"}
    if extra:
        schema = {"allOf": [schema, extra]}
    media = {"schema": schema}
    if example is not None:
        media["examples"] = {"synthetic": {"summary": "A synthetic patient with no findings", "value": example}}
    return {"required": True, "content": {"application/json": media}}


def _hook_example(hook: str, prefetch_keys) -> dict:
    """A complete call for a synthetic patient: every prefetch key answered (empty searchsets)."""
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []} for key in prefetch_keys}
    prefetch["patient"] = {"resourceType": "Patient", "id": "example-patient", "gender": "female",
                           "birthDate": "1970-01-01"}
    context = {"patientId": "example-patient", "userId": "Practitioner/example-practitioner"}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": []}
    if hook == "order-select":
        context["selections"] = []
    return {"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "context": context,
            "prefetch": prefetch}


_FEEDBACK_EXAMPLE = {"feedback": [{"card": "9368d37b-283f-44a0-93ea-547cebab93ac", "outcome": "overridden",
                                   "overrideReason": {"userComment": "Discussed with the patient"},
                                   "outcomeTimestamp": "2026-01-01T12:00:00Z"}]}


def _document(services) -> str:
    components: dict = {
        "OperationOutcome": _OPERATION_OUTCOME,
        "Discovery": _discovery(list(services.by_id)),
        "FeedbackReceipt": _FEEDBACK_RECEIPT,
        "Health": _HEALTH,
        "Readiness": _READY,
    }
    for name, component in SCHEMA_FILES.items():
        _lift(name, component, components)
    secured = [{"cdsClientJwt": []}]
    paths: dict = {
        "/cds-services": {"get": {
            "operationId": "discovery",
            "summary": "CDS Hooks discovery: the services and their prefetch templates",
            "tags": ["CDS Hooks"],
            "security": secured,
            "responses": {"200": {"description": "The service list", "content": _json("Discovery")},
                          **_errors(401, 503)},
        }},
    }
    for service in services.by_id.values():
        paths[f"/cds-services/{service.id}"] = {"post": {
            "operationId": f"invoke-{service.id}",
            "summary": service.title,
            "description": f"The `{service.hook}` hook. {service.description}",
            "tags": ["CDS Hooks"],
            "security": secured,
            "requestBody": _request_body("CdsRequest", {"properties": {"hook": {"const": service.hook}}},
                                         _hook_example(service.hook, services.templates)),
            "responses": {"200": {"description": "Cards (possibly none)", "content": _json("CdsResponse")},
                          **_errors(400, 401, 412, 413, 415, 500, 503)},
        }}
        paths[f"/cds-services/{service.id}/feedback"] = {"post": {
            "operationId": f"feedback-{service.id}",
            "summary": f"Feedback on cards of {service.id} (accepted or overridden)",
            "tags": ["CDS Hooks"],
            "security": secured,
            "requestBody": _request_body("CdsFeedback", example=_FEEDBACK_EXAMPLE),
            "responses": {"200": {"description": "Stored (idempotently)", "content": _json("FeedbackReceipt")},
                          **_errors(400, 401, 404, 413, 415, 429, 500, 503)},
        }}
    paths["/healthz"] = {"get": {
        "operationId": "healthz", "summary": "Liveness: the process answers", "tags": ["Operations"],
        "responses": {"200": {"description": "Alive", "content": _json("Health")}},
    }}
    paths["/readyz"] = {"get": {
        "operationId": "readyz", "summary": "Readiness: the database answers and the knowledge is loaded",
        "tags": ["Operations"],
        "responses": {"200": {"description": "Ready", "content": _json("Readiness")},
                      "503": {"description": "Not ready; `checks` says what failed", "content": _json("Readiness")}},
    }}
    paths["/metrics"] = {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics (all workers), when HER2CDS_METRICS=enabled",
        "tags": ["Operations"],
        "security": [{}, {"metricsToken": []}],
        "responses": {
            "200": {"description": "Prometheus text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": {"description": "HER2CDS_METRICS_TOKEN is set and the request did not carry it",
                    "content": _json("OperationOutcome"),
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
            "404": {"description": "Metrics are disabled on this instance", "content": _json("OperationOutcome")},
        },
    }}
    paths[PATH] = {"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["Operations"],
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {
            "schema": {"type": "object"}}}}},
    }}
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "her2-cds",
            "version": version("her2-cds"),  # the installed distribution's (importing the package would be a cycle)
            "summary": "CDS Hooks 2.0 decision support for HER2-positive metastatic breast cancer",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "tags": [{"name": "CDS Hooks"}, {"name": "Operations"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"metricsToken": {
                "type": "http", "scheme": "bearer",
                "description": "The static HER2CDS_METRICS_TOKEN, when the operator set one.",
            }, "cdsClientJwt": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "CDS Hooks 2.0 client JWT: signed (ES384 or RS384) by an issuer in "
                               "HER2CDS_TRUSTED_ISSUERS, `aud` = the exact URL called, short-lived, "
                               "a fresh `jti` per call (replays are refused).",
            }},
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def build_document(services) -> dict:
    """The OpenAPI document of ``services`` (a knowledge's ``Services``) as a fresh dict."""
    return json.loads(_document(services))


def document_text(services) -> str:
    """The document as written to ``docs/openapi.json`` (2-space indent, trailing newline)."""
    return _document(services)


bp = Blueprint("openapi", __name__)


@bp.get(PATH)
def openapi():
    """Public like the probes: the description holds no secret and integrators read it before they have keys."""
    ext = current_app.extensions
    text = ext.get("her2cds.openapi")
    if text is None:  # built once per app, from the app's own knowledge
        text = ext["her2cds.openapi"] = _document(ext["her2cds.knowledge"].services)
    return current_app.response_class(text, mimetype="application/json")
