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
                     smart_allowed_issuers=auth_server.url + "/fhir",
                     fhir_allowed_networks="127.0.0.0/8,::1/128")  # the fake EHR is on loopback
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
    assert page.inner_text("#sum-her2 .status").strip() == "positive"
    page.click("#integrators summary")
    assert page.inner_text('tr[data-fact="her2.status"] td.value .fact-value').strip() == "positive"
    assert page.inner_text('tr[data-fact="metastatic"] td.value .fact-value').strip() == "yes"
    assert "Observation/itest-alpha-her2" in page.inner_text('tr[data-fact="her2.status"]')
    assert page.locator("#recommendations .card").count() >= 1
    assert page.locator("#recommendations .card .summary").first.inner_text().strip()
    # the timeline picture is really there: drawn in the page
    assert page.locator(".tl-wide svg text").count() > 5
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


# -- the page as a clinician reads it: four fixture patients, two widths -------------------------------

PATIENTS = ["p01-de-novo-thp", "p22-ild-on-tdxd", "p24-brain", "p47-third-line"]
WIDTHS = [420, 1280]
# every fact key of the rulebook's contract: none may show outside the "for integrators" section
FACT_KEY = r"\b(her2|hr|er|pr|lvef|meds|therapy|taxane|metastatic|brain_mets|patient|draft|liver|ild|ecog)\.[a-z_.]+"

OVERLAPS_JS = """
(svg) => {
  const out = {overlaps: [], outside: [], count: 0};
  const frame = svg.getBoundingClientRect();
  const boxes = [...svg.querySelectorAll('text')].map(t => ({t: t.textContent, r: t.getBoundingClientRect()}))
      .filter(b => b.r.width > 0);
  out.count = boxes.length;
  for (const b of boxes) {
    if (b.r.left < frame.left - 0.5 || b.r.right > frame.right + 0.5 || b.r.top < frame.top - 0.5
        || b.r.bottom > frame.bottom + 0.5) out.outside.push(b.t);
  }
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i].r, c = boxes[j].r;
    const w = Math.min(a.right, c.right) - Math.max(a.left, c.left);
    const h = Math.min(a.bottom, c.bottom) - Math.max(a.top, c.top);
    if (w > 0.5 && h > 0.5) out.overlaps.push([boxes[i].t, boxes[j].t]);
  }
  return out;
}
"""


def open_app(page, auth_server, service, patient: str, width: int):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(auth_server.url + "/ehr-launch?" + urlencode(
        {"patient": patient, "launch_uri": service.url + "/smart/launch"}))
    page.wait_for_url(service.url + "/smart/app")
    page.wait_for_load_state("load")


def visible_timeline(page):
    svgs = [s for s in page.query_selector_all("#timeline .tl svg") if s.is_visible()]
    assert len(svgs) == 1, "exactly one timeline layout is shown at a width"
    return svgs[0]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("patient", PATIENTS)
def test_the_page_reads_in_clinical_words_at_every_width(browser_page, auth_server, smart_service, artifacts,
                                                         patient, width):
    import re

    page = browser_page
    open_app(page, auth_server, smart_service, patient, width)
    page.screenshot(path=str(artifacts / f"smart-page-{patient}-{width}.png"), full_page=True)

    summary = page.inner_text("#summary")
    # HER2 status with the result it came from, by the terminology's test name
    assert page.inner_text("#sum-her2 .status").strip() in {"positive", "low", "0 (HER2-zero)", "unknown"}
    assert "HER2" in page.inner_text("#sum-her2 .src") and not re.search(r"\b\d{4,5}-\d\b", summary)
    for heading in ("Hormone receptors", "Metastatic disease", "Current treatment", "Courses", "Heart (LVEF)"):
        assert heading in summary
    # no internal keys and no raw markdown where clinicians read
    readable = summary + page.inner_text("#recommendations") + page.inner_text("#timeline")
    assert not re.search(FACT_KEY, readable), re.search(FACT_KEY, readable)
    recommendations = page.inner_text("#recommendations")
    for raw in ("**", "](", "`", "- **"):
        assert raw not in recommendations
    if page.locator("#recommendations .card").count():
        assert page.locator("#recommendations .card .detail").first.inner_html().count("<") > 0
    else:
        assert page.locator("#no-cards li").count() >= 2  # says what the record shows
    # the keys are there for integrators, folded
    assert not page.is_visible('tr[data-fact="her2.status"]')
    page.click("#integrators summary")
    assert page.is_visible('tr[data-fact="her2.status"]')
    # the timeline: a legend, and no two labels overlap or leave the picture
    svg = visible_timeline(page)
    measured = svg.evaluate(OVERLAPS_JS)
    assert measured["count"] > 5
    assert measured["overlaps"] == [], measured["overlaps"]
    assert measured["outside"] == [], measured["outside"]
    assert "Legend" in svg.text_content() and "LVEF result" in svg.text_content()
    # readable: the labels are drawn at 10 px or more on screen
    smallest = svg.evaluate("s => Math.min(...[...s.querySelectorAll('text')].map(t => t.getBoundingClientRect().height))")
    assert smallest >= 10


def test_a_search_that_fails_is_named_on_the_page(browser_page, auth_server, smart_service, artifacts):
    auth_server.state.failing.add("Condition")
    open_app(browser_page, auth_server, smart_service, "p22-ild-on-tdxd", 1280)
    browser_page.screenshot(path=str(artifacts / "smart-page-conditions-unreadable.png"), full_page=True)
    notice = browser_page.inner_text("#data-notice")
    assert "could not be read" in notice and "diagnoses" in notice


def test_coded_searches_survive_a_proxy_that_collapses_double_slashes(browser_page, auth_server, smart_service):
    """The SMART launcher's proxy turns ``http://loinc.org`` into ``http:/loinc.org``; encoded values pass."""
    auth_server.state.collapse_slashes = True
    open_app(browser_page, auth_server, smart_service, "itest-alpha", 1280)
    assert browser_page.inner_text("#sum-her2 .status").strip() == "positive"
    assert not browser_page.is_visible("#data-notice") or "HER2" not in browser_page.inner_text("#data-notice")
