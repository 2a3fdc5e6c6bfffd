"""Each clinical-domain step of criteria on its own: a pure function from resources to facts and findings."""

from __future__ import annotations

import datetime as dt

import pytest

from cds_service.core.criteria import build_profile
from cds_service.core.criteria.conditions import condition_facts
from cds_service.core.criteria.her2 import her2_facts
from cds_service.core.criteria.intake import draft_ids, read_resources
from cds_service.core.criteria.lines import therapy_line, therapy_record
from cds_service.core.criteria.medications import count_cycles, courses, medication_history
from cds_service.core.criteria.observations import observation_facts
from cds_service.core.criteria.profile import Derived, MedEpisode
from cds_service.core.criteria.receptors import receptor_facts
from cds_service.core import parse as fp
from criteria_builders import (SNOMED, TODAY, cc, condition, drafts_context, her2_ihc, mbc_base, med_admin,
                               med_request, med_statement, obs, parameters, pct, profile, terminology)


def intake(*resources, context=None):
    return read_resources(list(resources), context or {}, terminology())


def test_intake_sorts_by_kind_and_reports_malformed_items():
    i = intake("junk", her2_ihc("3+", id="h"), obs("10230-1", id="lv", **pct(55)),
               {"resourceType": "Bundle", "entry": [{"resource": obs("85329-1", id="er", **pct(40))}]})
    assert [o["id"] for o in i.of_kind("her2-ihc")] == ["h"]
    assert i.kinds == {"Observation/h": "her2-ihc", "Observation/lv": "lvef", "Observation/er": "er-percent"}
    assert [f.code for f in i.out.findings] == ["malformed-resource"]


@pytest.mark.parametrize("draft_orders", [7, "Bundle", ["x"], None, {"entry": 3}, {"entry": [5, "x"]}])
def test_a_non_bundle_draft_orders_is_no_drafts(draft_orders):
    context = {"patientId": "p1", "draftOrders": draft_orders}
    assert draft_ids(context) == set()
    p = build_profile([*mbc_base()], context, terminology(), parameters(), TODAY)
    assert p.draft_orders == () and p.value("draft.ingredients") == []


def test_her2_step_alone():
    out = her2_facts(intake(her2_ihc("2+")), terminology(), parameters())
    assert out.value("her2.status") == "equivocal_pending"
    assert [f.code for f in out.findings] == ["her2-equivocal"]


def test_receptor_step_alone():
    out = receptor_facts(intake(obs("85329-1", **pct(5)), obs("85325-9", **pct(0))), terminology(),
                         parameters())
    assert (out.value("er.status"), out.value("pr.status"), out.value("hr.status")) == ("low", "negative", "positive")


def test_observation_step_returns_progression_dates():
    worsened = obs("97509-4", date="2025-03-01", id="w", valueCodeableConcept={"coding": [
        {"system": SNOMED, "code": "271299001"}]})
    out, progression = observation_facts(intake(worsened), terminology(), parameters(), TODAY)
    assert out.value("disease.progression") is True
    assert progression == [(dt.date(2025, 3, 1), "Observation/w")]


def test_condition_step_returns_the_ild_conditions():
    ild = condition(SNOMED, "233703007", onset="2025-02-01", id="ild")
    out, ild_conditions = condition_facts(intake(*mbc_base(), ild), terminology(), parameters())
    assert out.value("metastatic") and out.value("metastatic.date") == "2024-06-01" and out.value("ild")
    assert [c["id"] for c in ild_conditions] == ["ild"]


def test_lines_step_takes_its_inputs_explicitly():
    i = intake(med_statement("trastuzumab", "completed", start="2024-07-01", end="2025-01-01", id="t"),
               med_statement("fam-trastuzumab deruxtecan", "active", start="2025-02-01", id="d"))
    _, episodes = medication_history(i, terminology(), parameters(), TODAY)
    metastatic = Derived()
    metastatic.set("metastatic", True)
    metastatic.set("metastatic.date", "2024-06-01")
    record = therapy_record(episodes, [], metastatic, TODAY, terminology(), parameters())
    out, history = therapy_line(record, []), record.history
    assert out.value("therapy.line") == 2
    assert [(ln.number, ln.start, ln.end) for ln in history.lines] == [
        (1, dt.date(2024, 7, 1), dt.date(2025, 2, 1)), (2, dt.date(2025, 2, 1), None)]
    assert history.line_of == {"MedicationStatement/t": 1, "MedicationStatement/d": 2}


def test_administrations_of_one_drug_are_one_course_with_its_doses():
    admins = [med_admin("docetaxel", d) for d in ("2024-07-01", "2024-07-22", "2024-08-12")]
    p = profile(*mbc_base(), med_statement("trastuzumab", start="2024-07-01"), *admins)
    doc = next(c for c in p.courses if c.ingredients == ("docetaxel",))
    assert doc.doses == (dt.date(2024, 7, 1), dt.date(2024, 7, 22), dt.date(2024, 8, 12))
    assert (doc.cycles, doc.line, doc.state, doc.end) == (3, 1, "past", dt.date(2024, 8, 12))
    assert p.value("taxane.cycles") == 3  # the same rule for the course and the fact
    assert p.to_json()["courses"][0]["line"] == 1 and p.to_json()["lines"][0]["number"] == 1


def test_weekly_administrations_are_not_cycles():
    params = parameters()
    eps = [MedEpisode(f"MedicationAdministration/{i}", ("paclitaxel",), ("taxane",), "past", d, d, "", 
                      "MedicationAdministration") for i, d in enumerate((dt.date(2024, 7, 1), dt.date(2024, 7, 8)))]
    standard = terminology().standard_schedules
    count = count_cycles(eps, TODAY, params, standard)
    assert (count.cycles, count.weeks, count.schedule, count.estimated) == (None, 2, "weekly", False)
    assert courses(eps, [], {}, TODAY, params, standard)[0].cycles is None


def test_a_standard_schedule_is_data():
    """Docetaxel's 3-weekly schedule (CLEOPATRA) is CodeSystem-ingredient's standard-schedule; paclitaxel has none."""
    params, standard = parameters(), terminology().standard_schedules
    assert dict(standard) == {"docetaxel": "3-weekly"}
    doc = [MedEpisode("MedicationStatement/d", ("docetaxel",), ("taxane",), "past", dt.date(2024, 7, 1),
                      dt.date(2024, 10, 14), "", "MedicationStatement")]
    count = count_cycles(doc, TODAY, params, standard)
    # 105 days at 21 days a cycle, the period end read as the end of the last cycle: 5
    assert (count.schedule, count.estimated) == ("3-weekly", True) and count.cycles == 5
    pac = [MedEpisode("MedicationStatement/p", ("paclitaxel",), ("taxane",), "past", dt.date(2024, 7, 1),
                      dt.date(2024, 10, 14), "", "MedicationStatement")]
    assert count_cycles(pac, TODAY, params, standard).cycles is None


def test_a_drafted_next_line_is_counted_but_not_listed():
    ctx = drafts_context(med_request("fam-trastuzumab deruxtecan", id="d1"))
    p = profile(*mbc_base(), med_statement("trastuzumab", "stopped", start="2024-07-01", end="2025-01-01"),
                context=ctx)
    assert p.value("therapy.line") == 2 and [ln.number for ln in p.lines] == [1]


@pytest.mark.parametrize("value", [10 ** 400, -(10 ** 350), float("inf")])
def test_a_quantity_value_no_float_holds_is_unreadable_not_a_crash(value):
    o = {"resourceType": "Observation", "valueQuantity": {"value": value, "unit": "%"}}
    assert fp.number_value(o) is None
    assert fp.percent_value(o) == (None, None, "quantity without a number")
    p = profile(*mbc_base(), obs("10230-1", **{"valueQuantity": {"value": value, "unit": "%"}}),
                obs("1742-6", valueQuantity={"value": value, "unit": "U/L"},
                    referenceRange=[{"high": {"value": value, "unit": "U/L"}}]),
                obs("89247-1", valueInteger=value))
    assert p.value("lvef.value") is None and p.value("liver.alt_x_uln") is None and p.value("ecog") is None
    assert "unparsed-value" in p.value("findings") or "malformed-resource" in p.value("findings")


def test_a_dosing_period_no_float_holds_is_no_interval():
    tax = med_statement("paclitaxel", start="2024-07-01", id="doc",
                        dosage=[{"timing": {"repeat": {"frequency": 1, "period": 10 ** 400, "periodUnit": "d"}}}])
    p = profile(*mbc_base(), med_statement("trastuzumab", start="2024-07-01"), tax)
    assert p.value("taxane.cycles") is None
    assert next(c for c in p.courses if c.refs == ("MedicationStatement/doc",)).period_days is None


@pytest.mark.parametrize("text,metastatic", [
    ("Stage IV", True), ("stage 4", True), ("IV", True), ("Stage IVB", True), ("pM1b", True), ("cM1", True),
    ("T2 N1 M1", True), ("Stage IIIA", False), ("cM0", False), ("Stage I", False), ("Stage II", False),
    ("pT1c pN0 cM0", False), ("", False)])
def test_stage_words_that_mean_metastatic_disease(text, metastatic):
    """Staging recorded only as text (issue 20): stage IV and M1 categories, nothing lower."""
    from cds_service.core.criteria.conditions import metastatic_stage
    assert metastatic_stage({"text": text}, terminology()) is metastatic


def test_trastuzumab_based_and_ild_label_drugs_are_value_sets():
    """Which drugs make a regimen 'trastuzumab-based' and which label governs ILD by grade are data."""
    t = terminology()
    assert [i for i in ("trastuzumab", "pertuzumab/trastuzumab/hyaluronidase", "ado-trastuzumab emtansine",
                        "fam-trastuzumab deruxtecan", "pertuzumab", "lapatinib") if t.ingredient_in("trastuzumab-based", i)] \
        == ["trastuzumab", "pertuzumab/trastuzumab/hyaluronidase", "ado-trastuzumab emtansine", "fam-trastuzumab deruxtecan"]
    assert t.ingredient_in("ild-label-adc", "fam-trastuzumab deruxtecan")
    assert not t.ingredient_in("ild-label-adc", "ado-trastuzumab emtansine")
    assert {"anti-her2", "chemotherapy", "endocrine"} <= t.anticancer_classes
    assert "supportive-care" not in t.anticancer_classes


def test_report_text_answers_are_a_concept_map_read_in_order():
    """The words a report writes for its answer are data (ConceptMap-result-answer, report-text group); the
    first phrase that occurs decides, so a negation is read before the word it negates."""
    t = terminology()
    assert t.translate_text("result-answer", "HER2 gene NOT amplified (ratio 1.3)") == "negative"
    assert t.translate_text("result-answer", "Amplified") == "positive"
    assert t.translate_text("result-answer", "PIK3CA mutation not detected") == "absent"
    assert t.translate_text("result-answer", "H1047R detected") == "present"
    assert t.translate_text("result-answer", "see scanned report") is None


@pytest.mark.parametrize("text, er", [("Positive", "positive"), ("NEGATIVE (0%)", "negative"),
                                      ("see report", "unknown")])
def test_an_er_result_written_as_text_is_read_through_the_report_text_map(text, er):
    """Records as EHRs write them: an ER status Observation whose value is only a string (85337-4)."""
    from criteria_builders import obs, profile
    p = profile(*mbc_base(), obs("85337-4", valueString=text))
    assert p.facts["er.status"].value == er


def test_a_her2_ish_result_written_as_text_decides_an_equivocal_ihc():
    """IHC 2+ with a reflex ISH reported only in words ("Not amplified"): HER2-negative, not equivocal."""
    from criteria_builders import obs, profile
    p = profile(*mbc_base(), her2_ihc("2+"), obs("85318-4", valueString="HER2 gene NOT amplified"))
    assert p.facts["her2.status"].value != "equivocal_pending"
    assert p.facts["her2.status"].value in ("negative", "low")


def test_atc_groups_are_read_by_prefix_in_value_sets():
    """ValueSet antineoplastic-atc names ATC L01/L02 by is-a; an ATC level is a code prefix (WHO ATC structure)."""
    t = terminology()
    atc = "http://www.whocc.no/atc"
    assert t.in_valueset("antineoplastic-atc", atc, "L01XX") and t.in_valueset("antineoplastic-atc", atc, "L02BG03")
    assert t.in_valueset("antineoplastic-atc", atc + "/", "l01fd01")  # system alias and case as EHRs send them
    assert not t.in_valueset("antineoplastic-atc", atc, "A07DA03")  # loperamide


@pytest.mark.parametrize("verification,opens", [("confirmed", True), ("refuted", False), ("entered-in-error", False)])
def test_a_new_metastasis_opens_the_next_decision_only_if_it_counts(verification, opens):
    """A liver metastasis recorded after the line began is a progression; one the EHR marks refuted or
    entered-in-error is not (the same reading as metastatic.sites: readings.condition_counts)."""
    liver = condition(SNOMED, "94381002", onset="2025-03-01", id="liv",
                      verificationStatus=cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification))
    meds = [med_statement("trastuzumab", "active", start="2024-07-01")]
    p = profile(*mbc_base(), liver, *meds)
    assert p.value("therapy.line") == 1
    assert (p.value("progression.event") == "Condition/liv") is opens
    assert ("liver" in p.value("metastatic.sites")) is opens
