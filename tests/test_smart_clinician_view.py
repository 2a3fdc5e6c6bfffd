"""What a clinician must see on the SMART page of the fixture patients (issue 22).

Each page is rendered as ``/smart/app`` renders it (the presenter, then the
Jinja template), from the committed fixture bundle at its anchor date, and
read back as the text a person sees.  The checks are the issue's findings:
one course and one line derivation (the profile's), the heart flagged from
the rulebook's own LVEF rules, clinical names and dates, no profile keys or
setting names.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest
from flask import render_template

from cds_service import create_app
from cds_service.commands.profile import resources_and_context
from cds_service.smart.presenter import build_page

ROOT = Path(__file__).resolve().parent.parent
PATIENTS = ROOT / "fixtures" / "patients"
ANCHOR = dt.date(2026, 6, 1)  # fixtures/build_fixtures.py ANCHOR: the committed bundles' "today"
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


@pytest.fixture(scope="module")
def smart_app():
    return create_app(auth="disabled", database_url="sqlite://")


def _page(smart_app, pid: str):
    exact = PATIENTS / f"{pid}.json"
    [path] = [exact] if exact.exists() else list(PATIENTS.glob(f"{pid}-*.json"))
    resources, context = resources_and_context(json.loads(path.read_text()))
    page = build_page(resources, patient_id=context["patientId"], iss="https://ehr.example/fhir",
                      knowledge=smart_app.extensions["her2cds.knowledge"], today=ANCHOR)
    with smart_app.test_request_context("/smart/app"):
        markup = render_template("smart_app.html", page=page, timeline_url="/smart/timeline.svg")
    return page, markup


def _text(markup: str) -> str:
    """The page as read: tags gone (SVG titles, the hover text, stay), entities decoded, spaces collapsed."""
    markup = re.sub(r"<style.*?</style>", " ", markup, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))


def _section(markup: str, element_id: str) -> str:
    m = re.search(rf'<dd id="{element_id}"[^>]*>(.*?)</dd>', markup, re.S)
    assert m, element_id
    return _text(m.group(1))


@pytest.mark.parametrize("pid", ["p16-maint", "p24-brain"])
def test_one_docetaxel_course_of_six_cycles_on_page_and_timeline(smart_app, pid):
    """A MedicationStatement and the six MedicationAdministrations of one course are one course."""
    page, markup = _page(smart_app, pid)
    docetaxel = [c for c in page.summary["courses"] if c["name"] == "docetaxel"]
    assert len(docetaxel) == 1
    assert (docetaxel[0]["cycles"], docetaxel[0]["estimated"]) == (6, False)
    courses = _section(markup, "sum-courses")
    assert courses.count("docetaxel") == 1 and "6 cycles" in courses
    timeline = _text(page.timeline_wide)
    assert "docetaxel — 6 cycles" in timeline and "12 cycles" not in timeline
    assert page.profile.value("taxane.cycles") == 6  # what the cards say


def test_capecitabine_after_metastasis_is_metastatic_therapy_not_untreated(smart_app):
    """p06, HER2-low: capecitabine after the metastatic diagnosis was given; the page does not say untreated."""
    page, markup = _page(smart_app, "p06")
    line = _section(markup, "sum-line")
    assert "metastatic-setting therapy given: capecitabine (5 Aug 2025 – 2 Apr 2026)" in line
    assert "No therapy for metastatic disease recorded" not in line
    text = _text(markup)
    assert "untreated" not in text
    assert "no metastatic-setting therapy found" not in _text(page.timeline_wide)
    assert [c["name"] for c in page.summary["other_metastatic"]] == ["capecitabine"]


def test_lvef_35_is_flagged_below_the_lower_limit_of_normal(smart_app):
    page, markup = _page(smart_app, "p26")
    assert re.search(r'<dd id="sum-lvef" class="flagged"', markup)
    lvef = _section(markup, "sum-lvef")
    assert "35% · 18 May 2026" in lvef
    # the limit is the profile's (Parameters lvef-default-lln-percent without a reference range)
    assert "Latest LVEF 35% is below the lower limit of normal 50%" in lvef
    assert "Heart: Latest LVEF 35%" in _text(markup)  # also in "what the record shows" beside "no card"


def test_a_falling_lvef_series_is_shown_with_dates_and_flagged_by_the_lvef_rules(smart_app):
    page, markup = _page(smart_app, "p138-lvef-falling")
    lvef = _section(markup, "sum-lvef")
    assert [(v["value"], v["date"]) for v in page.summary["lvef"]["series"]] == [
        ("62%", "7 May 2025"), ("55%", "13 Nov 2025"), ("48%", "12 May 2026")]
    assert "Fall of 14 points from 62% on 7 May 2025" in lvef
    rules = [f["rule"] for f in page.summary["lvef"]["flags"]]
    assert "S2-W" in rules  # the card the next trastuzumab order gets (expected_cards.csv)
    assert "below the lower limit of normal" in lvef
    assert page.cards == []  # at chart opening a flag, not a card


def test_lvef_overdue_on_trastuzumab_is_flagged_with_the_rulebooks_interval(smart_app):
    page, markup = _page(smart_app, "p28")
    flags = page.summary["lvef"]["flags"]
    assert [f["rule"] for f in flags] == ["S2-DUE"]
    assert "last measured 150 days ago" in _section(markup, "sum-lvef")
    assert "No LVEF in the last 3 months" in _section(markup, "sum-lvef")


def test_a_stable_lvef_series_shows_its_trend_without_a_flag(smart_app):
    page, markup = _page(smart_app, "p16")
    assert [v["value"] for v in page.summary["lvef"]["series"]] == ["62%", "61%", "60%"]
    assert page.summary["lvef"]["flags"] == []
    assert not re.search(r'<dd id="sum-lvef" class="flagged"', markup)


def test_results_are_named_by_clinical_short_names(smart_app):
    page, markup = _page(smart_app, "p16")
    her2 = _section(markup, "sum-her2")
    assert "HER2 IHC 3+ · 7 Apr 2025" in her2
    assert "[Presence]" not in her2 and "Immune stain" not in her2
    assert "ER IHC 80% · 7 Apr 2025" in _section(markup, "sum-hr")
    assert "Cells.estrogen receptor" not in _text(markup.split('id="integrators"')[0])


@pytest.mark.parametrize("path", sorted(PATIENTS.glob("*.json")), ids=lambda p: p.stem.split("-")[0])
def test_no_profile_keys_iso_dates_or_setting_names_on_any_page(smart_app, path):
    _, markup = _page(smart_app, path.stem)
    text = _text(markup)
    assert "profile:" not in text and "[profile" not in text
    assert not ISO_DATE.search(text), ISO_DATE.search(text).group(0)
    assert "HER2CDS_" not in text


@pytest.mark.parametrize("path", ["/smart/app", "/smart/timeline.svg"])
def test_the_session_expired_page_names_no_setting(smart_app, path):
    resp = smart_app.test_client().get(path)
    assert resp.status_code == 401
    body = resp.get_data(as_text=True)
    assert "Session expired" in body and "Launch the app again" in body
    assert "HER2CDS_" not in body
