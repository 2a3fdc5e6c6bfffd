"""The criteria thresholds live in fhir_profiles/parameters and are checked at start-up."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from cds_service.core.criteria.receptors import percent_category
from cds_service.core.knowledge import KnowledgeError
from cds_service.core.knowledge.parameters import FILE, load_criteria_parameters
from cds_service.core.criteria import build_profile
from cds_service.core.knowledge import load_knowledge
from cds_service.config import Settings
from criteria_builders import ROOT, TODAY, mbc_base, med_statement, obs, parameters, pct, profile, terminology


def copy_profiles(tmp_path):
    target = tmp_path / "fhir_profiles"
    shutil.copytree(ROOT / "fhir_profiles", target)
    return target


def edit(profiles, change):
    path = profiles / FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def by_name(data, name):
    return next(p for p in data["parameter"] if p["name"] == name)


def test_the_shipped_parameters_load_with_the_knowledge():
    params = parameters()
    assert params == load_criteria_parameters(ROOT / "fhir_profiles")
    assert (params.line_of_therapy_window_days, params.receptor_positive_min_percent, params.er_low_max_percent) \
        == (30, 1.0, 10.0)


@pytest.mark.parametrize("change,where", [
    (lambda d: d["parameter"].pop(0), "$.parameter: missing line-of-therapy-window-days"),
    (lambda d: by_name(d, "er-low-max-percent").update(valueDecimal=250), "er-low-max-percent must be a number"),
    (lambda d: by_name(d, "min-cycle-gap-days").update(valueInteger="14"), "$.parameter[2]"),
    (lambda d: d["parameter"].append({"name": "staleness-dayz", "valueInteger": 3}), "unknown criteria parameter"),
    (lambda d: by_name(d, "reflex-ish-pairing-days").pop("extension"), "needs its why"),
    (lambda d: d.update(resourceType="Basic"), "$.resourceType"),
    (lambda d: by_name(d, "default-uln-alt")["valueQuantity"].pop("code"), "needs its unit"),
    (lambda d: by_name(d, "default-uln-ast").update(valueQuantity={"value": 900, "code": "U/L"}), "from 10 to 200"),
])
def test_a_broken_parameter_is_a_knowledge_error_naming_file_and_path(tmp_path, change, where):
    profiles = copy_profiles(tmp_path)
    path = edit(profiles, change)
    with pytest.raises(KnowledgeError) as err:
        load_knowledge(Settings(profiles_dir=profiles))
    assert str(path) in str(err.value) and where in str(err.value)


def test_a_missing_parameters_file_is_a_knowledge_error(tmp_path):
    profiles = copy_profiles(tmp_path)
    (profiles / FILE).unlink()
    with pytest.raises(KnowledgeError, match="Parameters-criteria.json"):
        load_criteria_parameters(profiles)


def test_er_low_bounds_come_from_the_parameters():
    params = parameters()
    assert [percent_category(v, None, True, params) for v in (0.5, 1, 10, 11)] == ["negative", "low", "low", "positive"]
    wider = replace(params, er_low_max_percent=20.0)
    assert percent_category(15, None, True, wider) == "low"
    assert percent_category(15, None, False, wider) == "positive"  # PR has no low band


def test_the_line_window_is_read_from_the_parameters():
    """Two anti-HER2 starts 40 days apart after a stop are two lines at 30 days, one line at 60."""
    meds = [med_statement("trastuzumab", "stopped", start="2024-07-01", end="2024-07-20"),
            med_statement("fam-trastuzumab deruxtecan", "active", start="2024-08-10")]
    assert profile(*mbc_base(), *meds).value("therapy.line") == 2
    wider = replace(parameters(), line_of_therapy_window_days=60)
    assert build_profile([*mbc_base(), *meds], {"patientId": "p1"}, terminology(), wider, TODAY) \
        .value("therapy.line") == 1


def test_er_percent_reading_uses_the_bounds():
    assert profile(obs("85329-1", **pct(5))).value("er.status") == "low"


def test_a_default_upper_limit_is_used_only_in_its_own_unit():
    """ALT without a reference range: divided by the default ULN (40 U/L) when the result is in U/L;
    the unit is the parameter's own (valueQuantity.code), so a result in another unit gets no ×ULN."""
    alt = obs("1742-6", date="2025-03-01", id="alt", valueQuantity={"value": 80, "unit": "U/L"})
    assert parameters().default_uln_alt.value == 40 and parameters().default_uln_alt.unit == "U/L"
    p = profile(alt)
    assert p.value("liver.alt_x_uln") == 2.0 and "default ULN 40 U/L" in p.facts["liver.alt_x_uln"].note
    other = replace(parameters(), default_uln_alt=replace(parameters().default_uln_alt, unit="ukat/L"))
    q = build_profile([alt], {"patientId": "p1"}, terminology(), other, TODAY)
    assert q.value("liver.alt_x_uln") is None
    assert "unparsed-value" in {f.code for f in q.findings}
