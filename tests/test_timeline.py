"""The server-side timeline picture: a pure function from the profile (its records for the labels) to SVG.

The picture shows the profile; it derives nothing.  So the lines it draws are
``profile.lines`` (the lines ``therapy.line`` counts), checked over every
fixture request below.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from cds_service.commands.profile import resources_and_context
from cds_service.core.criteria import build_profile
from cds_service.config import Settings
from cds_service.core.knowledge import load_knowledge
from cds_service.smart.presenter import Words
from cds_service.smart.timeline import drug_spans, render_svg, therapy_lines
from criteria_builders import ROOT, SNOMED, cc, condition, med_statement, obs, parameters, patient, profile, terminology

SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2025, 6, 1)
WORSENED = cc(SNOMED, "271299001", "Patient's condition worsened")


def med(mid, name, start, end=None, status="active"):
    return med_statement(name, status=status, start=start, end=end, id=mid)


HISTORY = [
    patient(),
    condition(SNOMED, "254837009", onset="2022-01-10", id="bc"),
    condition(SNOMED, "94381002", onset="2023-01-05", id="liver"),
    obs("85319-2", "2022-01-12", id="her2", valueString="3+"),
    obs("85337-4", "2022-01-12", id="er", valueCodeableConcept={"text": "Positive"}),
    obs("10230-1", "2023-01-20", id="lvef", valueQuantity={"value": 60, "unit": "%"}),
    obs("97509-4", "2024-05-01", id="prog", valueCodeableConcept=WORSENED),
    med("doc", "docetaxel", "2023-02-01", "2023-05-26", "completed"),
    med("tras", "trastuzumab", "2023-02-01", "2024-05-10", "completed"),
    med("pert", "pertuzumab", "2023-02-01", "2024-05-10", "completed"),
    med("letro", "letrozole", "2023-06-15", "2024-05-10", "completed"),
    med("tdxd", "fam-trastuzumab deruxtecan", "2024-05-20"),
]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


def drawn_lines(root: ET.Element) -> list[tuple[int, date]]:
    """(number, start) of every line bracket, read back from its title."""
    out = []
    for g in root.iter(SVG + "g"):
        if g.get("class") == "line":
            m = re.match(r"Line (\d+) from (\d+ \w{3} \d{4})", "".join(g.find(SVG + "title").itertext()))
            out.append((int(m.group(1)), dt.datetime.strptime(m.group(2), "%d %b %Y").date()))
    return out


def picture(*resources, today=TODAY):
    p = profile(*resources, today=today)
    return p, parse(render_svg(p, today))


def test_draws_drugs_biomarkers_events_and_lines():
    _, root = picture(*HISTORY)
    labels = texts(root)
    for expected in ("docetaxel", "trastuzumab", "letrozole", "fam-trastuzumab deruxtecan",
                     "HER2 3+", "ER Positive", "LVEF 60%", "progression", "L1", "L2"):
        assert any(expected in label for label in labels), expected
    assert "L3" not in labels


def test_lines_are_the_profiles_and_maintenance_endocrine_stays_in_the_first_line():
    p, root = picture(*HISTORY)
    assert therapy_lines(p) == [(1, date(2023, 2, 1), date(2024, 5, 20)), (2, date(2024, 5, 20), None)]
    assert drawn_lines(root) == [(1, date(2023, 2, 1)), (2, date(2024, 5, 20))]
    assert p.value("therapy.line") == 2


def test_drug_classes_come_from_the_terminology():
    p, _ = picture(*HISTORY)
    klass = {s.name: s.klass for s in drug_spans(p, Words(load_knowledge(Settings(profiles_dir=ROOT / "fhir_profiles"))))}
    assert klass["fam-trastuzumab deruxtecan"] == "HER2 ADC"
    assert klass["trastuzumab"] == "anti-HER2 antibody"
    assert klass["docetaxel"] == "taxane"
    assert klass["letrozole"] == "endocrine"
    assert {s.class_code for s in drug_spans(p)} >= {"her2-adc", "anti-her2-antibody", "taxane", "endocrine"}


def test_a_drug_class_is_named_by_its_short_name_in_the_codesystem(tmp_path):
    """The picture's class names are data: editing the CodeSystem's clinical short name renames the bar."""
    folder = tmp_path / "fhir_profiles"
    shutil.copytree(ROOT / "fhir_profiles", folder)
    path = folder / "terminology" / "CodeSystem-drug-class.json"
    data = json.loads(path.read_text())

    def rename(concepts):
        for c in concepts:
            for d in c.get("designation", []):
                if c["code"] == "taxane":
                    d["value"] = "taxane (renamed)"
            rename(c.get("concept", []))
    rename(data["concept"])
    path.write_text(json.dumps(data))
    p, _ = picture(*HISTORY)
    klass = {s.name: s.klass for s in drug_spans(p, Words(load_knowledge(Settings(profiles_dir=folder))))}
    assert klass["docetaxel"] == "taxane (renamed)"


def test_an_estimated_taxane_course_gets_the_profiles_count_and_no_invented_dose_dates():
    p, root = picture(*HISTORY)
    # 2023-02-01 .. 2023-05-26 is 114 days: the profile's estimate ⌊114/21⌋ = 5 docetaxel
    # cycles (no +1: the course end is not a known dose date), as on the cards (issue 12).
    # Without administrations or a dosing interval the dose dates are unknown: no ticks (issue 22).
    [course] = [c for c in p.courses if c.ingredients == ("docetaxel",)]
    assert (course.cycles, course.cycles_estimated) == (5, True)
    ticks = [el for el in root.iter(SVG + "line") if el.get("class") == "cycle"]
    assert ticks == []
    assert "docetaxel — about 5 cycles (estimated)" in texts(root)


def paclitaxel_12_cycles(period, unit):
    """A finished paclitaxel course recording 12 completed cycles and its dosing interval."""
    return med_statement("paclitaxel", status="completed", start="2023-02-01", end="2023-04-26", id="pac",
                         extension=[{"url": "http://her2-cds.example.org/fhir/StructureDefinition/completed-cycles",
                                     "valueInteger": 12}],
                         dosage=[{"timing": {"repeat": {"frequency": 1, "period": period, "periodUnit": unit}}}])


def test_cycles_and_interval_from_the_profile_win():
    pac = paclitaxel_12_cycles(period=1, unit="wk")
    p, root = picture(*HISTORY[:3], pac)
    course = next(c for c in p.courses if c.refs == ("MedicationStatement/pac",))
    assert (course.cycles, course.period_days) == (12, 7.0)
    ticks = [el for el in root.iter(SVG + "line") if el.get("class") == "cycle"]
    assert len(ticks) == 12
    assert any("taxane" in "".join(t.itertext()) for t in root.iter(SVG + "title"))


def test_the_metastatic_date_is_drawn_by_its_condition_without_profile_keys():
    p, root = picture(*HISTORY)
    svg = render_svg(p, TODAY)
    titles = ["".join(t.itertext()) for t in root.iter(SVG + "title")]
    assert any("Condition/liver" in t for t in titles)  # the metastatic Condition carries the date
    assert "profile" not in svg and "metastatic.date" not in svg
    assert not re.search(r"\d{4}-\d\d-\d\d", svg)  # dates as "5 Jan 2023", in titles too


def test_ehr_text_is_escaped():
    evil = obs("10230-1", "2024-01-01", id="evil", valueQuantity={"value": 55, "unit": '<script>alert(1)</script> & "q"'})
    _, root = picture(*HISTORY, evil)
    svg = render_svg(profile(*HISTORY, evil), TODAY)
    assert not list(root.iter(SVG + "script")) and not list(root.iter("script"))
    assert "<script>" not in svg


def test_same_input_same_picture():
    assert render_svg(profile(*HISTORY), TODAY) == render_svg(profile(*list(HISTORY)), TODAY)


def test_nothing_dated_gives_a_clear_empty_picture():
    _, root = picture(patient())
    assert any("No dated therapy" in t for t in texts(root))
    assert any("No dated therapy" in t for t in texts(parse(render_svg(None, TODAY))))


def test_malformed_resources_do_not_break_the_picture():
    junk = ["string", None, {"resourceType": "MedicationStatement", "effectivePeriod": "2024-13-45"},
            {"resourceType": "Observation", "code": "not-a-concept", "effectiveDateTime": 5},
            {"resourceType": "Condition", "code": {"text": "Secondary malignant neoplasm of bone"},
             "onsetDateTime": "20"},
            med("ok", "trastuzumab", "2024-01")]
    p = build_profile(junk, {"patientId": "p1"}, terminology(), parameters(), TODAY)
    labels = texts(parse(render_svg(p, TODAY)))
    assert "trastuzumab" in labels


def test_a_value_too_large_for_a_float_is_drawn_as_unreadable():
    huge = obs("10230-1", "2024-01-01", id="huge", valueQuantity={"value": 10 ** 400, "unit": "%"})
    p, root = picture(*HISTORY, huge)
    assert any(t == "LVEF ?%" for t in texts(root))
    assert p.value("lvef.value") == 60


# -- every fixture: the picture's lines are the profile's ------------------------------

REQUESTS = sorted((ROOT / "fixtures" / "requests").glob("*.json"))
ANCHOR = dt.date(2026, 6, 1)  # the committed fixtures' anchor day (fixtures/build_fixtures.py)


@pytest.mark.parametrize("path", REQUESTS, ids=[p.stem for p in REQUESTS])
def test_timeline_lines_equal_the_profile_lines(path: Path):
    resources, context = resources_and_context(json.loads(path.read_text(encoding="utf-8")))
    p = build_profile(resources, context, terminology(), parameters(), ANCHOR)
    root = parse(render_svg(p, ANCHOR))
    assert drawn_lines(root) == [(ln.number, ln.start) for ln in p.lines]
    line = p.value("therapy.line")
    if p.lines:  # the cards act on the same line the picture ends with (or the drafted next one)
        assert line in (len(p.lines), len(p.lines) + 1)


@pytest.mark.parametrize("name", ["p18-on-tucatinib-patient-view", "p22-ild-on-tdxd-order-select"])
def test_p18_and_p22_are_drawn_on_line_1_as_the_cards_say(name):
    path = ROOT / "fixtures" / "requests" / f"{name}.json"
    resources, context = resources_and_context(json.loads(path.read_text(encoding="utf-8")))
    p = build_profile(resources, context, terminology(), parameters(), ANCHOR)
    labels = texts(parse(render_svg(p, ANCHOR)))
    assert p.value("therapy.line") == 1
    assert "L1" in labels and "L2" not in labels


def test_an_absurd_dosing_interval_draws_without_error():
    pac = paclitaxel_12_cycles(period=1e300, unit="d")
    _, root = picture(*HISTORY[:3], pac)
    assert len([el for el in root.iter(SVG + "line") if el.get("class") == "cycle"]) == 1


def test_results_the_criteria_do_not_read_are_not_drawn():
    """One notion of 'final result': a preliminary or status-less HER2 result is not a marker, as it is no fact."""
    prelim = obs("85319-2", "2024-09-01", status="preliminary", id="her2-prelim", valueString="1+")
    bare = obs("85319-2", "2024-10-01", status=None, id="her2-bare", valueString="0")
    bare.pop("status", None)
    _, root = picture(*HISTORY, prelim, bare)
    labels = texts(root)
    assert any("HER2 3+" in label for label in labels)
    assert not any("HER2 1+" in label or "HER2 0" in label for label in labels)
