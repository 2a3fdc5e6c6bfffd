"""The clinical words, notations and units the criteria read are data (issue 19).

Each test edits a copy of ``fhir_profiles`` and shows that the reading follows
the artifact (ConceptMap-report-text, ConceptMap-condition-severity-grade,
CodeSystem-neutrophil-count-unit, Parameters-criteria), and that a broken
artifact stops loading with a KnowledgeError naming the file and the JSON path.
"""

from __future__ import annotations

import json
import shutil

import pytest

from cds_service.core.criteria import build_profile
from cds_service.core.criteria.conditions import metastatic_stage, severity_grade
from cds_service.core.criteria.readings import condition_counts, condition_resolved
from cds_service.core.knowledge import KnowledgeError
from cds_service.core.knowledge.parameters import load_criteria_parameters
from cds_service.core.knowledge.terminology import load_terminology
from cds_service.smart.timeline import event_points
from criteria_builders import (LOINC, ROOT, SNOMED, TODAY, cc, condition, her2_ihc, mbc_base, obs, parameters,
                               profile, terminology)

PATTERN = "urn:her2-cds:report-text-pattern"
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def _copy(tmp_path):
    dest = tmp_path / "fhir_profiles"
    shutil.copytree(ROOT / "fhir_profiles" / "terminology", dest / "terminology")
    shutil.copytree(ROOT / "fhir_profiles" / "parameters", dest / "parameters")
    return dest


def _edit(dest, name, change):
    path = dest / "terminology" / name
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _group(data, source):
    return next(g for g in data["group"] if g["source"] == source)


def _element(code, target):
    return {"code": code, "target": [{"code": target, "equivalence": "equivalent"}]}


def _anc(unit, value=1.5):
    return obs("751-8", valueQuantity={"value": value, "unit": unit})


# -- the data drives the reading --------------------------------------------------------------

def test_a_neutrophil_unit_and_its_factor_are_read_from_the_code_system(tmp_path):
    assert profile(*mbc_base(), _anc("10*3/uL")).value("blood.anc_per_mm3") == 1500
    assert profile(*mbc_base(), _anc("10^3/µL")).value("blood.anc_per_mm3") == 1500  # spelling folded
    unknown = profile(*mbc_base(), _anc("thou/uL"))
    assert unknown.value("blood.anc_per_mm3") is None and "unparsed-value" in unknown.value("findings")

    dest = _copy(tmp_path)
    _edit(dest, "CodeSystem-neutrophil-count-unit.json", lambda d: d["concept"].append(
        {"code": "thou/ul", "property": [{"code": "conversion-factor", "valueDecimal": 1000}]}))
    t = load_terminology(dest)
    p = build_profile([*mbc_base(), _anc("thou/uL")], {"patientId": "p1"}, t, parameters(), TODAY)
    assert p.value("blood.anc_per_mm3") == 1500


def test_stage_words_are_report_text_patterns(tmp_path):
    assert metastatic_stage({"text": "Stage IVB"}, terminology())
    assert not metastatic_stage({"text": "distant metastases"}, terminology())
    dest = _copy(tmp_path)
    _edit(dest, "ConceptMap-report-text.json",
          lambda d: _group(d, PATTERN)["element"].append(_element(r"\bdistant\s+metastases\b", "stage-iv-or-m1")))
    assert metastatic_stage({"text": "Distant  metastases"}, load_terminology(dest))


def test_her2_ultralow_wording_is_data(tmp_path):
    text = "0 with membrane staining"
    assert profile(*mbc_base(), her2_ihc(text)).value("her2.ultralow") is True
    dest = _copy(tmp_path)
    _edit(dest, "ConceptMap-report-text.json", lambda d: _group(d, PATTERN).__setitem__(
        "element", [e for e in _group(d, PATTERN)["element"] if "membrane" not in e["code"]]))
    p = build_profile([*mbc_base(), her2_ihc(text)], {"patientId": "p1"}, load_terminology(dest), parameters(), TODAY)
    assert p.value("her2.ultralow") is False


def test_a_gene_named_in_text_is_a_report_text_phrase(tmp_path):
    variant = obs("69548-6", valueCodeableConcept=cc(LOINC, "LA9633-4"),
                  component=[{"code": cc(LOINC, "48018-6"), "valueCodeableConcept": {"text": "PIK3CA (p110 alpha)"}}])
    assert profile(variant).value("pik3ca") == "mutated"
    dest = _copy(tmp_path)
    _edit(dest, "ConceptMap-report-text.json",
          lambda d: _group(d, "urn:her2-cds:report-text")["element"].__setitem__(0, _element("p110 alpha", "pik3ca-named")))
    t = load_terminology(dest)
    assert build_profile([variant], {"patientId": "p1"}, t, parameters(), TODAY).value("pik3ca") == "mutated"
    other = obs("69548-6", valueCodeableConcept=cc(LOINC, "LA9633-4"),
                component=[{"code": cc(LOINC, "48018-6"), "valueCodeableConcept": {"text": "PIK3CA"}}])
    assert build_profile([other], {"patientId": "p1"}, t, parameters(), TODAY).value("pik3ca") == "unknown"


@pytest.mark.parametrize("text, grade", [("Grade 2", 2), ("CTCAE grade 3 pneumonitis", 3), ("G1", 1),
                                         ("Grade 3, improved from grade 1", 3), ("grade 1, was grade 3", 1),
                                         ("HER2 grade", None), ("Grade 12", None)])
def test_the_grade_written_first_decides(text, grade):
    assert severity_grade({"severity": {"text": text}}, terminology()) == grade


def test_grade_words_are_data(tmp_path):
    ild = {"severity": {"text": "Gr 2 pneumonitis"}}
    assert severity_grade(ild, terminology()) is None
    dest = _copy(tmp_path)
    _edit(dest, "ConceptMap-condition-severity-grade.json",
          lambda d: _group(d, PATTERN)["element"].append(_element(r"\bgr\s*2\b", "2")))
    assert severity_grade(ild, load_terminology(dest)) == 2
    # the coded severity is still the SNOMED group of the same ConceptMap
    assert severity_grade({"severity": cc(SNOMED, "24484000")}, load_terminology(dest)) == 3


def test_the_default_lvef_lower_limit_is_only_the_parameter(tmp_path):
    lvef = obs("10230-1", valueQuantity={"value": 52, "unit": "%"})
    assert profile(*mbc_base(), lvef).value("lvef.below_lln") is False
    dest = _copy(tmp_path)
    path = dest / "parameters" / "Parameters-criteria.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    lln = next(p for p in data["parameter"] if p["name"] == "lvef-default-lln-percent")
    lln.pop("valueInteger", None)
    lln["valueDecimal"] = 55
    path.write_text(json.dumps(data), encoding="utf-8")
    p = build_profile([*mbc_base(), lvef], {"patientId": "p1"}, terminology(), load_criteria_parameters(dest), TODAY)
    assert p.value("lvef.below_lln") is True
    assert "55%" in p.facts["lvef.below_lln"].note


# -- broken artifacts -------------------------------------------------------------------------

def test_a_pattern_that_is_not_a_regular_expression_names_file_and_path(tmp_path):
    dest = _copy(tmp_path)
    _edit(dest, "ConceptMap-report-text.json", lambda d: _group(d, PATTERN)["element"][0].__setitem__("code", "ultra(low"))
    with pytest.raises(KnowledgeError, match=r"ConceptMap-report-text\.json: \$\.group\[1\]\.element\[0\]\.code: "
                                             r"not a regular expression"):
        load_terminology(dest)


def test_a_pattern_target_must_be_a_finding(tmp_path):
    dest = _copy(tmp_path)
    added = []
    _edit(dest, "ConceptMap-report-text.json", lambda d: added.append(
        _group(d, PATTERN)["element"].append(_element("stage v", "stage-v")) or len(_group(d, PATTERN)["element"]) - 1))
    with pytest.raises(KnowledgeError, match=rf"ConceptMap-report-text\.json: \$\.group\[1\]\.element\[{added[0]}\]\.target\[0\]"):
        load_terminology(dest)


@pytest.mark.parametrize("change, where", [
    (lambda d: d["concept"][0]["property"][0].__setitem__("valueDecimal", 0), r"\$\.concept\[0\]\.property"),
    (lambda d: d["concept"][0]["property"].clear(), r"\$\.concept\[0\]\.property"),
    (lambda d: d["concept"][0].__setitem__("code", "K/uL"), r"\$\.concept\[0\]\.code: 'K/uL' must be written"),
])
def test_a_broken_unit_factor_names_file_and_path(tmp_path, change, where):
    dest = _copy(tmp_path)
    _edit(dest, "CodeSystem-neutrophil-count-unit.json", change)
    with pytest.raises(KnowledgeError, match=r"CodeSystem-neutrophil-count-unit\.json: " + where):
        load_terminology(dest)


@pytest.mark.parametrize("name", ["ConceptMap-report-text.json", "CodeSystem-neutrophil-count-unit.json",
                                  "ConceptMap-condition-severity-grade.json"])
def test_a_missing_text_or_unit_artifact_stops_loading(tmp_path, name):
    """Without them the criteria would silently read no stage words, grades or neutrophil counts."""
    dest = _copy(tmp_path)
    (dest / "terminology" / name).unlink()
    with pytest.raises(KnowledgeError, match="terminology: the criteria need " + name[:-len(".json")].replace("-", "/", 1)):
        load_terminology(dest)


# -- one test of a Condition that counts ------------------------------------------------------

def _verification(*codes):
    return {"coding": [{"system": VER, "code": c} for c in codes]}


def test_condition_counts_reads_every_coding_and_ignores_clinical_status():
    assert condition_counts({"verificationStatus": _verification("confirmed")})
    assert condition_counts({})
    assert not condition_counts({"verificationStatus": _verification("refuted")})
    assert not condition_counts({"verificationStatus": _verification("confirmed", "entered-in-error")})
    resolved = condition(SNOMED, "94222008", clinical="resolved")
    assert condition_counts(resolved) and condition_resolved(resolved)
    assert condition_resolved({"abatementDateTime": "2024-01-01"})
    assert not condition_resolved(condition(SNOMED, "94222008"))


def test_the_criteria_and_the_timeline_drop_the_same_conditions():
    """A metastasis whose verificationStatus carries entered-in-error in any coding is neither a fact nor a point."""
    wrong = condition(SNOMED, "94381002", onset="2024-09-01", id="liver",
                      verificationStatus=_verification("confirmed", "entered-in-error"))
    p = profile(*mbc_base(), wrong)
    assert "liver" not in p.value("metastatic.sites")
    assert "Condition/liver" not in {pt.ref for pt in event_points(p)}
    kept = condition(SNOMED, "94381002", onset="2024-09-01", id="liver2", verificationStatus=_verification("confirmed"))
    p = profile(*mbc_base(), kept)
    assert "liver" in p.value("metastatic.sites")
    assert "Condition/liver2" in {pt.ref for pt in event_points(p)}


def test_metastatic_sites_are_listed_in_the_code_system_order(tmp_path):
    records = [*mbc_base(), condition(SNOMED, "94381002", onset="2024-07-01")]  # bone (base) and liver
    assert profile(*records).value("metastatic.sites") == ["bone", "liver"]
    dest = _copy(tmp_path)
    _edit(dest, "CodeSystem-metastatic-site.json", lambda d: d["concept"].reverse())
    p = build_profile(records, {"patientId": "p1"}, load_terminology(dest), parameters(), TODAY)
    assert p.value("metastatic.sites") == ["liver", "bone"]


@pytest.mark.parametrize("text", ["HER2 IHC 0 (null): no membrane staining observed", "IHC 0", "HER2 IHC 0",
                                  "HER2: 0", "IHC 0, no staining", "HER2/neu IHC score 0", "HER2 IHC: 0"])
def test_a_zero_written_as_the_report_line_is_ihc_0(text):
    """Fifth independent review, case 27: a zero after 'HER2 IHC' was unread, and the only card said no
    HER2 result was on record. The pattern is data (ConceptMap-report-text, target her2-ihc-0)."""
    p = profile(*mbc_base(), her2_ihc(text))
    assert (p.value("her2.ihc"), p.value("her2.status")) == ("0", "zero")


@pytest.mark.parametrize("text", ["HER2 IHC 0.5", "IHC 0-1+", "0,5", "HER2 IHC 0/3", "HER2 IHC 0 to 1+",
                                  # a code review of the case-27 pattern: ultralow descriptions and non-scores
                                  "HER2 IHC 0, with faint incomplete membrane staining in <10% of cells",
                                  "HER2 IHC 0: faint incomplete membrane staining in 5% of cells",
                                  "HER2 IHC 0; weak incomplete membrane staining <10%",
                                  "HER2 IHC 0 (faint incomplete staining in <=10% of cells)",
                                  "IHC 0 (faint incomplete staining)",
                                  "HER2 IHC 0, equivocal, repeat requested", "HER2: 0, insufficient tumour",
                                  "IHC 0, no tumour cells present"])
def test_a_zero_that_is_not_the_score_alone_is_not_read_as_ihc_0(text):
    """Never a confident HER2-zero from a text that says more than the zero: it may be HER2-ultralow
    (DESTINY-Breast06: IHC 0 with membrane staining) or no score at all."""
    p = profile(*mbc_base(), her2_ihc(text))
    assert p.value("her2.ihc") != "0" or p.value("her2.ultralow") is True
