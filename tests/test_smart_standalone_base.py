"""A card's fallback link in the documented sandbox + SMART App Launcher set-up (issue 22).

The launcher v2 keeps a standalone launch's options in its FHIR base
(``/v/r4/sim/<base64url JSON>/fhir``).  The sandbox pointed at that base sends
it as ``fhirServer``; the card's ``/smart/open`` link must carry it unchanged,
and the standalone authorization request must name it unchanged as ``aud``
and ask for no ``launch``: the launcher reads the options from that very path
(a launch at its plain ``/v/r4/fhir`` has none and fails there).  The real
launcher runs this in tests/real_tools (step ``sandbox-card-link``); here a
fake authorization server at the same kind of path.
"""

from __future__ import annotations

import base64
import copy
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from cds_service import create_app

OPTIONS = [2, "p24-brain", "an-oncologist", "NONE", 1, 1, 0, "", "", "", "", "", "", "", 0, 1, ""]
SIM = base64.urlsafe_b64encode(json.dumps(OPTIONS).encode()).decode().rstrip("=")


@pytest.fixture
def standalone_base(httpserver) -> str:
    prefix = f"/v/r4/sim/{SIM}"
    httpserver.expect_request(f"{prefix}/fhir/.well-known/smart-configuration").respond_with_json({
        "authorization_endpoint": httpserver.url_for(f"{prefix}/auth/authorize"),
        "token_endpoint": httpserver.url_for(f"{prefix}/auth/token"),
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["launch-ehr", "launch-standalone", "client-public"],
    })
    return httpserver.url_for(f"{prefix}/fhir")


@pytest.fixture
def launcher_client(migrated_db_url, standalone_base, httpserver):
    plain = httpserver.url_for("/v/r4/fhir")
    app = create_app(auth="disabled", database_url=migrated_db_url, fhir_allowed_networks="127.0.0.0/8",
                     smart_allowed_issuers=f"{plain},{standalone_base}")
    return app.test_client()


def _fallback(cards: list[dict]) -> list[str]:
    return [ln["url"] for c in cards for ln in c.get("links") or [] if ln.get("type") == "absolute"]


def test_a_card_for_the_standalone_base_opens_a_standalone_launch_there(launcher_client, standalone_base,
                                                                       requests_today):
    body = copy.deepcopy(requests_today["p24-brain-patient-view"])
    body["fhirServer"] = standalone_base
    resp = launcher_client.post("/cds-services/her2-mbc-patient-view", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    links = _fallback(resp.get_json()["cards"])
    assert links, "a card names the standalone base: the fallback link is offered"
    query = parse_qs(urlsplit(links[0]).query)
    assert query == {"iss": [standalone_base], "patient": ["p24-brain"]}

    opened = launcher_client.get(urlsplit(links[0]).path + "?" + urlsplit(links[0]).query)
    assert opened.status_code == 302
    location = urlsplit(opened.headers["Location"])
    assert location.path == f"/v/r4/sim/{SIM}/auth/authorize"
    params = parse_qs(location.query)
    assert params["aud"] == [standalone_base]  # the options travel in the path, unchanged
    assert "launch" not in params
    assert "launch/patient" in params["scope"][0].split()


def test_the_readme_set_up_offers_no_fallback_link(launcher_client, requests_today):
    """The sandbox on the plain FHIR server (no SMART issuer): only the SMART link, which the sandbox disables."""
    body = copy.deepcopy(requests_today["p24-brain-patient-view"])
    body["fhirServer"] = "http://127.0.0.1:8090/fhir"
    resp = launcher_client.post("/cds-services/her2-mbc-patient-view", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    cards = resp.get_json()["cards"]
    assert cards and _fallback(cards) == []
    assert all(any(ln.get("type") == "smart" for ln in c.get("links") or []) for c in cards)
