"""``PatientProfile.records``: the validated index the cards, the page and the timeline read (issue 19).

It holds what the intake accepted for a clinical domain, once per type/id, and
nothing that became an "unreadable" finding: the page names a result as a
source, and a card sends a whole record back in a ``stop`` update, only when
the record was read as valid FHIR R4.
"""

from __future__ import annotations

from criteria_builders import (SNOMED, condition, drafts_context, med_request, med_statement, obs, patient,
                               profile)


def test_records_hold_the_accepted_resources_once_in_the_order_read():
    her2 = obs("85319-2", id="her2", valueString="3+")
    bone = condition(SNOMED, "94222008", onset="2024-01-05", id="bone")
    tras = med_statement("trastuzumab", start="2024-02-01", id="tras")
    p = profile(patient(), her2, bone, tras, dict(her2, valueString="1+"))  # the repeat is dropped
    assert list(p.records) == ["Patient/p1", "Observation/her2", "Condition/bone", "MedicationStatement/tras"]
    assert p.records["Observation/her2"]["valueString"] == "3+"  # the first of a type/id wins, as in the facts


def test_records_leave_out_what_no_domain_reads():
    weight = obs("29463-7", id="weight", valueQuantity={"value": 70, "unit": "kg"})  # body weight: no kind
    flu = condition(SNOMED, "6142004", onset="2024-01-05", id="flu")  # influenza: no ValueSet of the criteria
    no_id = obs("85319-2", valueString="3+")
    no_id.pop("id")
    p = profile(patient(), weight, flu, no_id)
    assert list(p.records) == ["Patient/p1"]


def test_a_resource_that_failed_validation_is_a_finding_not_a_record():
    bad_her2 = obs("85319-2", id="her2-bad", valueString="3+", performer="not a list")
    r5 = med_statement("trastuzumab", start="2024-02-01", id="tras-r5", renderedDosageInstruction="x")
    p = profile(patient(), bad_her2, r5)
    assert {f.refs for f in p.findings if f.code in ("malformed-resource", "non-r4-resource")} == {
        ("Observation/her2-bad",), ("MedicationStatement/tras-r5",)}
    assert "Observation/her2-bad" not in p.records and "MedicationStatement/tras-r5" not in p.records


def test_a_newest_wins_result_found_invalid_when_read_leaves_the_records():
    """ECOG and the liver tests are validated when their reader reaches them (intake.NEWEST_WINS)."""
    broken_new = obs("1742-6", date="2025-05-10", id="alt-bad", valueQuantity={"value": "high"})
    older = obs("1742-6", date="2025-03-01", id="alt-ok", valueQuantity={"value": 80, "unit": "U/L"},
                referenceRange=[{"high": {"value": 40, "unit": "U/L"}}])
    p = profile(broken_new, older)
    assert [f.refs for f in p.findings if f.code == "malformed-resource"] == [("Observation/alt-bad",)]
    assert "Observation/alt-bad" not in p.records
    assert p.records["Observation/alt-ok"] is older and p.facts["liver.alt_x_uln"].refs == ("Observation/alt-ok",)


def test_the_drafts_of_the_call_are_not_records_even_when_prefetched():
    draft = med_request("docetaxel", id="d1")
    p = profile(patient(), draft, context=drafts_context(draft))
    assert "MedicationRequest/d1" not in p.records
    assert [d.resource_ref for d in p.draft_orders] == ["MedicationRequest/d1"]


def test_every_reference_of_every_fact_that_names_a_resource_is_a_record():
    """What the page and the cards look a fact's sources up in holds every source the facts name."""
    import datetime as dt
    import json

    from cds_service.commands.profile import resources_and_context
    from cds_service.core.criteria import build_profile
    from criteria_builders import ROOT, parameters, terminology

    for path in sorted((ROOT / "fixtures" / "requests").glob("*.json")):
        resources, context = resources_and_context(json.loads(path.read_text(encoding="utf-8")))
        p = build_profile(resources, context, terminology(), parameters(), dt.date(2026, 6, 1))
        refs = {r for f in p.facts.values() for r in f.refs
                if not r.startswith(("context.", "prefetch:")) and not r.endswith("/?")}
        assert refs <= set(p.records), (path.name, sorted(refs - set(p.records)))
