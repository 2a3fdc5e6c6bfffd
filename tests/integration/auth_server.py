"""A small SMART authorization server (and FHIR front door) for the integration tests.

No registry package simulates a SMART *EHR launch*, and sekmet-fhir offers
only backend-services tokens, so this plays the EHR's part:

* ``GET /ehr-launch?patient=ID&launch_uri=URL`` — the clinician clicks the
  app in the chart: a launch id is minted and the browser is sent to
  ``URL?iss=…&launch=…`` (like the SMART launcher's ``/launcher``).
* ``GET /fhir/.well-known/smart-configuration`` — SMART discovery.
* ``GET /authorize`` — checks the SMART parameters (client id, redirect URI,
  ``aud`` = iss, S256 challenge, ``launch`` known or ``launch/patient``
  asked) and redirects back with ``code`` and ``state`` (no login page).
* ``POST /token`` — single-use code, same redirect URI and client, PKCE
  verifier checked; answers ``access_token`` + ``patient``.
* ``GET /fhir/...`` — the FHIR API behind the tokens it issued: the request is
  forwarded to sekmet-fhir with sekmet's own bearer token, so the app can read
  data only with a token obtained through this flow.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests
from flask import Flask, Response, abort, jsonify, redirect, request


@dataclass
class AuthState:
    fhir_upstream: str
    upstream_token: str | None
    client_id: str = "her2-cds"
    standalone_patient: str | None = None
    launches: dict = field(default_factory=dict)
    codes: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    token_requests: list = field(default_factory=list)
    fhir_reads: list = field(default_factory=list)
    failing: set = field(default_factory=set)  # resource types whose searches answer 500
    collapse_slashes: bool = False  # like the SMART launcher's proxy: "//" in the query becomes "/"
    lock: threading.Lock = field(default_factory=threading.Lock)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def create_auth_app(state: AuthState) -> Flask:
    app = Flask("test-auth-server")

    def iss() -> str:
        return request.host_url.rstrip("/") + "/fhir"

    @app.get("/ehr-launch")
    def ehr_launch():
        launch = secrets.token_urlsafe(12)
        state.launches[launch] = request.args["patient"]
        return redirect(request.args["launch_uri"] + "?" + urlencode({"iss": iss(), "launch": launch}))

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration():
        base = request.host_url.rstrip("/")
        return jsonify({
            "issuer": base,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                             "context-standalone-patient", "permission-patient"],
        })

    @app.get("/authorize")
    def authorize():
        a = request.args
        problems = []
        if a.get("response_type") != "code":
            problems.append("response_type must be code")
        if a.get("client_id") != state.client_id:
            problems.append("unknown client_id")
        if not a.get("redirect_uri"):
            problems.append("redirect_uri missing")
        if a.get("aud") != iss():
            problems.append("aud must be the FHIR base URL")
        if a.get("code_challenge_method") != "S256" or not a.get("code_challenge"):
            problems.append("PKCE S256 required")
        if not a.get("state"):
            problems.append("state missing")
        scopes = a.get("scope", "").split()
        if "launch" in a:
            patient = state.launches.pop(a["launch"], None)
            if patient is None or "launch" not in scopes:
                problems.append("unknown launch or scope 'launch' missing")
        elif "launch/patient" in scopes and state.standalone_patient:
            patient = state.standalone_patient
        else:
            patient = None
            problems.append("no launch context")
        if problems:
            return Response("authorization refused: " + "; ".join(problems), status=400, mimetype="text/plain")
        code = secrets.token_urlsafe(16)
        state.codes[code] = {"challenge": a["code_challenge"], "redirect_uri": a["redirect_uri"],
                             "client_id": a["client_id"], "patient": patient, "scope": a.get("scope", "")}
        return redirect(a["redirect_uri"] + "?" + urlencode({"code": code, "state": a["state"]}))

    @app.post("/token")
    def token():
        f = request.form
        state.token_requests.append(f.to_dict())
        grant = state.codes.pop(f.get("code", ""), None)

        def refuse(error: str, description: str):
            return jsonify({"error": error, "error_description": description}), 400

        if f.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type", "authorization_code only")
        if grant is None:
            return refuse("invalid_grant", "unknown or used code")
        if f.get("redirect_uri") != grant["redirect_uri"] or f.get("client_id") != grant["client_id"]:
            return refuse("invalid_grant", "redirect_uri or client_id differs from the authorize request")
        if s256(f.get("code_verifier", "")) != grant["challenge"]:
            return refuse("invalid_grant", "PKCE verification failed")
        access = secrets.token_urlsafe(24)
        state.tokens[access] = grant["patient"]
        return jsonify({"access_token": access, "token_type": "Bearer", "expires_in": 3600,
                        "scope": grant["scope"], "patient": grant["patient"]})

    @app.get("/fhir/<path:path>")
    def fhir(path: str):
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in state.tokens:
            abort(401)
        state.fhir_reads.append(path)
        headers = {"Accept": "application/fhir+json"}
        if state.upstream_token:
            headers["Authorization"] = f"Bearer {state.upstream_token}"
        if path.split("/")[0] in state.failing:
            return Response('{"resourceType":"OperationOutcome"}', status=500, mimetype="application/fhir+json")
        query = request.query_string.decode()
        if state.collapse_slashes:
            while "//" in query:
                query = query.replace("//", "/")
        url = f"{state.fhir_upstream}/{path}" + (f"?{query}" if query else "")
        upstream = requests.get(url, headers=headers, timeout=30)
        # paging links must point at this front door, not at the server behind it
        body = upstream.content.replace(state.fhir_upstream.encode(), iss().encode())
        return Response(body, status=upstream.status_code, mimetype="application/fhir+json")

    return app
