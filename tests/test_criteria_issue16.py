"""Profile facts added for the oncologist's review (issue 16), each with the codings EHRs use.

HER2-ultralow wording, ILD grade and resolution on T-DXd, the age of the ECOG,
endocrine therapy in the metastatic setting, and the interval from adjuvant
trastuzumab-based therapy to relapse.  Synthetic patients only.
"""

from __future__ import annotations

import pytest

from criteria_builders import ICD, RXNORM, SNOMED, cc, condition, her2_ihc, mbc_base, med_statement, obs, profile

TDXD = cc(RXNORM, "2267581", "Enhertu")
TRASTUZUMAB = cc(RXNORM, "224905", "trastuzumab")
LETROZOLE = cc(RXNORM, "72965", "letrozole")


# -- HER2-ultralow ---------------------------------------------------------------

@pytest.mark.parametrize("text", ["0 (ultralow)", "ultralow", "0+ (ultralow)", ">0 <1+", "HER2-ultralow",
                                  "Score 0 with faint membrane staining", "> 0 but < 1+"])
def test_ultralow_wordings_are_zero_with_the_ultralow_flag(text):
    p = profile(*mbc_base(), her2_ihc(text))
    assert (p.value("her2.status"), p.value("her2.ihc"), p.value("her2.ultralow")) == ("zero", "0", True), text
    assert p.facts["her2.ultralow"].refs


@pytest.mark.parametrize("text", ["0", "Score 0", "0 without membrane staining", "0 (null, not ultralow)"])
def test_plain_zero_is_not_ultralow(text):
    p = profile(*mbc_base(), her2_ihc(text))
    assert (p.value("her2.status"), p.value("her2.ultralow")) == ("zero", False), text


def test_ultralow_as_coded_text_and_not_read_as_1plus():
    p = profile(*mbc_base(), obs("85319-2", valueCodeableConcept={"text": ">0 <1+"}))
    assert p.value("her2.status") == "zero" and p.value("her2.ultralow") is True
    p = profile(*mbc_base(), her2_ihc("1+"))
    assert p.value("her2.status") == "low" and p.value("her2.ultralow") is False


# -- ILD on T-DXd: grade and resolution -----------------------------------------------

def _ild_on_tdxd(**condition_fields):
    return profile(*mbc_base(), med_statement(TDXD, "stopped", start="2024-09-01", end="2025-03-01"),
                   condition(ICD, "J70.4", onset="2025-02-10", **condition_fields))


@pytest.mark.parametrize("severity, grade", [
    (cc(SNOMED, "255604002", "Mild"), 1),
    (cc(SNOMED, "6736007", "Moderate"), 2),
    (cc(SNOMED, "24484000", "Severe"), 3),
    ({"text": "Grade 2"}, 2),
    ({"text": "CTCAE grade 1 pneumonitis"}, 1),
    (None, None),
])
def test_ild_grade_from_condition_severity(severity, grade):
    p = _ild_on_tdxd(**({"severity": severity} if severity else {}))
    assert p.value("ild.on_tdxd") is True  # J70.4 is in the ILD value set
    assert p.value("ild.on_tdxd.grade") == grade


def test_ild_resolution_from_clinical_status_or_abatement():
    assert _ild_on_tdxd(clinical="resolved").value("ild.on_tdxd.resolved") is True
    assert _ild_on_tdxd(abatementDateTime="2025-02-25").value("ild.on_tdxd.resolved") is True
    assert _ild_on_tdxd().value("ild.on_tdxd.resolved") is False


def test_an_ungraded_second_episode_makes_the_grade_unknown_unless_one_is_grade_2():
    base = [*mbc_base(), med_statement(TDXD, "stopped", start="2024-09-01", end="2025-03-01")]
    mild = condition(SNOMED, "205237003", onset="2024-11-01", severity=cc(SNOMED, "255604002", "Mild"))
    ungraded = condition(SNOMED, "233703007", onset="2025-02-01")
    moderate = condition(SNOMED, "233703007", onset="2025-02-01", severity=cc(SNOMED, "6736007", "Moderate"))
    assert profile(*base, mild, ungraded).value("ild.on_tdxd.grade") is None
    assert profile(*base, mild, moderate, ungraded).value("ild.on_tdxd.grade") == 2


# -- ECOG age ----------------------------------------------------------------------

def test_ecog_days_ago():
    p = profile(*mbc_base(), obs("89247-1", date="2021-06-01", valueInteger=3))
    assert p.value("ecog") == 3 and p.value("ecog.days_ago") > 4 * 365
    assert profile(*mbc_base()).value("ecog.days_ago") is None


# -- endocrine therapy in the metastatic setting -----------------------------------------

def test_only_endocrine_therapy_after_the_metastatic_date_counts():
    adjuvant = med_statement(LETROZOLE, "completed", start="2019-06-01", end="2024-01-01")
    metastatic = med_statement(LETROZOLE, "completed", start="2024-07-01", end="2025-03-01")
    assert profile(*mbc_base("2024-06-01"), adjuvant).value("therapy.prior_metastatic_endocrine") is False
    assert profile(*mbc_base("2024-06-01"), metastatic).value("therapy.prior_metastatic_endocrine") is True


# -- relapse after adjuvant trastuzumab-based therapy ----------------------------------------

def test_months_from_adjuvant_trastuzumab_to_relapse():
    p = profile(*mbc_base("2024-06-01"), med_statement(TRASTUZUMAB, "completed", start="2023-01-10",
                                                       end="2024-02-01"))
    assert p.value("therapy.adjuvant_relapse_months") == pytest.approx(4.0, abs=0.1)
    assert p.value("therapy.prior_metastatic_anti_her2") is False


def test_relapse_during_adjuvant_therapy_is_zero_months_and_first_line_therapy_is_not_adjuvant():
    during = med_statement(TRASTUZUMAB, "active", start="2023-10-01")
    assert profile(*mbc_base("2024-06-01"), during).value("therapy.adjuvant_relapse_months") == 0.0
    # HP started 10 days before the metastasis was coded (de novo): first line, not adjuvant
    de_novo = med_statement(TRASTUZUMAB, "active", start="2024-05-22")
    assert profile(*mbc_base("2024-06-01"), de_novo).value("therapy.adjuvant_relapse_months") is None


def test_no_adjuvant_therapy_or_no_end_date_is_unknown():
    assert profile(*mbc_base()).value("therapy.adjuvant_relapse_months") is None
    undated_end = med_statement(TRASTUZUMAB, "completed", start="2022-01-01")
    p = profile(*mbc_base("2024-06-01"), undated_end)
    assert p.value("therapy.adjuvant_relapse_months") is None and p.facts["therapy.adjuvant_relapse_months"].note
