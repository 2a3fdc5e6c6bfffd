"""The server-side timeline picture: a pure function from profile + resources to SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from types import SimpleNamespace

from cds_service.smart.timeline import drug_spans, render_svg, therapy_lines

SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2025, 6, 1)


def med(mid, name, start, end=None, status="active"):
    res = {"resourceType": "MedicationStatement", "id": mid, "status": status,
           "medicationCodeableConcept": {"text": name}, "effectivePeriod": {"start": start}}
    if end:
        res["effectivePeriod"]["end"] = end
    return res


def obs(oid, code, when, **value):
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "effectiveDateTime": when, **value}


def cond(cid, text, onset):
    return {"resourceType": "Condition", "id": cid, "code": {"text": text}, "onsetDateTime": onset}


HISTORY = [
    cond("bc", "Malignant neoplasm of breast", "2022-01-10"),
    cond("liver", "Secondary malignant neoplasm of liver", "2023-01-05"),
    obs("her2", "85319-2", "2022-01-12", valueCodeableConcept={"text": "3+"}),
    obs("er", "85337-4", "2022-01-12", valueCodeableConcept={"text": "Positive"}),
    obs("lvef", "10230-1", "2023-01-20", valueQuantity={"value": 60, "unit": "%"}),
    obs("prog", "97509-4", "2024-05-01", valueCodeableConcept={"coding": [{"code": "271299001"}]}),
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


def test_draws_drugs_biomarkers_events_and_lines():
    root = parse(render_svg(None, HISTORY, TODAY))
    labels = texts(root)
    for expected in ("docetaxel", "trastuzumab", "letrozole", "fam-trastuzumab deruxtecan",
                     "HER2 3+", "ER Positive", "LVEF 60%", "progression", "L1", "L2"):
        assert any(expected in label for label in labels), expected
    assert "L3" not in labels


def test_maintenance_endocrine_stays_in_the_first_line():
    spans = drug_spans(HISTORY)
    lines = therapy_lines(spans, date(2023, 1, 5))
    assert [(n, start) for n, start, _ in lines] == [(1, date(2023, 2, 1)), (2, date(2024, 5, 20))]
    assert lines[0][2] == date(2024, 5, 20) and lines[1][2] is None


def test_taxane_bar_has_one_tick_per_21_day_cycle():
    root = parse(render_svg(None, HISTORY, TODAY))
    ticks = [el for el in root.iter(SVG + "line") if el.get("class") == "cycle"]
    # 2023-02-01 .. 2023-05-26 is 114 days: cycles on days 0, 21, ..., 105
    assert len(ticks) == 6


def test_recorded_cycles_and_interval_from_the_profile_win():
    episode = SimpleNamespace(ref="MedicationStatement/pac", ingredients=("paclitaxel",), classes=("taxane",),
                              state="past", start=date(2023, 2, 1), end=date(2023, 4, 26), text="paclitaxel",
                              cycles=12, period_days=7.0)
    profile = SimpleNamespace(facts={}, medications=(episode,))
    root = parse(render_svg(profile, [], TODAY))
    ticks = [el for el in root.iter(SVG + "line") if el.get("class") == "cycle"]
    assert len(ticks) == 12
    assert any("taxane" in "".join(t.itertext()) for t in root.iter(SVG + "title"))


def test_metastatic_date_from_the_profile_marks_the_lines():
    profile = SimpleNamespace(facts={"metastatic.date": SimpleNamespace(value="2023-01-05")}, medications=())
    labels = texts(parse(render_svg(profile, HISTORY, TODAY)))
    assert "metastatic (profile)" in labels


def test_ehr_text_is_escaped():
    evil = med("x", '<script>alert(1)</script> & "quoted"', "2024-01-01")
    svg = render_svg(None, [evil], TODAY)
    root = parse(svg)
    assert not list(root.iter(SVG + "script")) and not list(root.iter("script"))
    assert "<script>" not in svg


def test_same_input_same_picture():
    assert render_svg(None, HISTORY, TODAY) == render_svg(None, list(HISTORY), TODAY)


def test_nothing_dated_gives_a_clear_empty_picture():
    root = parse(render_svg(None, [{"resourceType": "Patient", "id": "p"}], TODAY))
    assert any("No dated therapy" in t for t in texts(root))


def test_malformed_resources_do_not_break_the_picture():
    junk = ["string", None, {"resourceType": "MedicationStatement", "effectivePeriod": "2024-13-45"},
            {"resourceType": "Observation", "code": "not-a-concept", "effectiveDateTime": 5},
            {"resourceType": "Condition", "code": {"text": "Secondary malignant neoplasm of bone"},
             "onsetDateTime": "20"},
            med("ok", "trastuzumab", "2024-01")]
    labels = texts(parse(render_svg(None, junk, TODAY)))
    assert "trastuzumab" in labels
