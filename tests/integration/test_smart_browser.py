"""The whole SMART EHR launch in headless Chromium (Debian package, driven by Playwright).

EHR (test auth server) → /smart/launch → /authorize → /smart/callback →
/token (PKCE) → /smart/app, which reads sekmet-fhir through the auth
server's FHIR front door with the token it was given.  A screenshot of the
page is kept in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlencode

import pytest

from .auth_server import AuthState, create_auth_app
from .conftest import ServerThread

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = os.environ.get("HER2CDS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"Chromium is not installed ({path}): `apt-get install -y chromium` "
                    "(tests/run-all.sh does it) or set HER2CDS_CHROMIUM.")
    return path


@pytest.fixture
def auth_server(loaded):
    state = AuthState(fhir_upstream=loaded.base, upstream_token=loaded.token)
    server = ServerThread(create_auth_app(state))
    server.state = state
    yield server
    server.stop()


@pytest.fixture
def smart_service(auth_server, tmp_path):
    """The service over real HTTP, allowing exactly the EHR's FHIR base (without it, no launch at all)."""
    from cds_service import create_app

    app = create_app(auth="disabled", database_url=f"sqlite:///{tmp_path / 'smart.db'}",
                     smart_allowed_issuers=auth_server.url + "/fhir")
    server = ServerThread(app)
    yield server
    server.stop()


@pytest.fixture
def browser_page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def test_ehr_launch_in_chromium_renders_profile_recommendations_and_timeline(
        browser_page, auth_server, smart_service, artifacts):
    service = smart_service
    page = browser_page
    launch = auth_server.url + "/ehr-launch?" + urlencode(
        {"patient": "itest-alpha", "launch_uri": service.url + "/smart/launch"})
    page.goto(launch)
    page.wait_for_url(service.url + "/smart/app")
    page.wait_for_load_state("load")
    page.screenshot(path=str(artifacts / "smart-app-itest-alpha.png"), full_page=True)

    assert page.inner_text("#patient-id") == "itest-alpha"
    assert "Alma Integration" in page.inner_text("#patient h2")
    assert page.inner_text('tr[data-fact="her2.status"] td.value .fact-value').strip() == "positive"
    assert page.inner_text('tr[data-fact="metastatic"] td.value .fact-value').strip() == "yes"
    assert "Observation/itest-alpha-her2" in page.inner_text('tr[data-fact="her2.status"]')
    assert page.locator("#recommendations .card").count() >= 1
    assert page.locator("#recommendations .card .summary").first.inner_text().strip()
    # the timeline picture is really there: loaded and drawn
    width = page.eval_on_selector("#timeline-img", "img => img.complete ? img.naturalWidth : 0")
    assert width > 0
    # the flow itself: one token request with a PKCE verifier, FHIR read only with the issued token
    [token_request] = auth_server.state.token_requests
    assert token_request["code_verifier"] and token_request["client_id"] == "her2-cds"
    assert any(path.startswith("Observation") for path in auth_server.state.fhir_reads)
    # the access token never reached the browser
    cookies = page.context.cookies()
    issued = list(auth_server.state.tokens)
    assert issued and all(tok not in c["value"] for c in cookies for tok in issued)
    assert all(tok not in page.content() for tok in issued)


def test_reopening_the_app_in_a_fresh_browser_without_session_shows_relaunch_page(browser_page, service):
    response = browser_page.goto(service.url + "/smart/app")
    assert response.status == 401
    assert "Launch the app again" in browser_page.inner_text("#error")


def test_launch_from_an_ehr_the_service_does_not_allow_is_refused(browser_page, auth_server, service):
    """The session-wide service allows no FHIR server: the EHR's launch ends on a clear page, nothing fetched."""
    launch = auth_server.url + "/ehr-launch?" + urlencode(
        {"patient": "itest-alpha", "launch_uri": service.url + "/smart/launch"})
    response = browser_page.goto(launch)
    assert response.status == 403
    assert "SMART launch not configured" in browser_page.inner_text("#error")
    assert auth_server.state.token_requests == [] and auth_server.state.fhir_reads == []
