"""Small builders for synthetic FHIR R4 test resources (no real patients)."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from cds_service.core.criteria import build_profile

from shipped import KNOWLEDGE

ROOT = Path(__file__).resolve().parent.parent
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
TODAY = dt.date(2025, 6, 1)

_ids = itertools.count(1)


def terminology():
    """The shipped terminology (codes, value sets, drug classes)."""
    return KNOWLEDGE.terminology


def parameters():
    """The shipped criteria parameters (thresholds)."""
    return KNOWLEDGE.parameters


def profile(*resources, context=None, today=TODAY):
    return build_profile(list(resources), context or {"patientId": "p1"}, terminology(), parameters(), today)


def cc(system, code, display=None, text=None):
    c = {"coding": [{"system": system, "code": code, **({"display": display} if display else {})}]}
    if text:
        c["text"] = text
    return c


def patient(gender="female", birth="1967-03-01", pid="p1"):
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth}


def obs(code, date="2025-01-10", status="final", system=LOINC, id=None, **value):
    """An Observation with one code; value keys are FHIR value[x]/interpretation/component/specimen."""
    r = {"resourceType": "Observation", "id": id or f"o{next(_ids)}", "status": status,
         "code": cc(system, code), "subject": {"reference": "Patient/p1"}}
    if date:
        r["effectiveDateTime"] = date
    r.update(value)
    return r


def pct(value, unit="%", code="%"):
    q = {"value": value}
    if unit is not None:
        q["unit"] = unit
        q["system"] = "http://unitsofmeasure.org"
        q["code"] = code
    return {"valueQuantity": q}


def condition(system, code, onset=None, id=None, clinical="active", **extra):
    r = {"resourceType": "Condition", "id": id or f"c{next(_ids)}", "code": cc(system, code),
         "subject": {"reference": "Patient/p1"},
         "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)}
    if onset:
        r["onsetDateTime"] = onset
    r.update(extra)
    return r


def med_statement(medication, status="active", start=None, end=None, id=None, **extra):
    """medication: a CodeableConcept dict or a plain text string."""
    r = {"resourceType": "MedicationStatement", "id": id or f"ms{next(_ids)}", "status": status,
         "medicationCodeableConcept": medication if isinstance(medication, dict) else {"text": medication},
         "subject": {"reference": "Patient/p1"}}
    if start or end:
        r["effectivePeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    r.update(extra)
    return r


def med_request(medication, status="draft", id=None, intent="order", **extra):
    r = {"resourceType": "MedicationRequest", "id": id or f"mr{next(_ids)}", "status": status,
         "medicationCodeableConcept": medication if isinstance(medication, dict) else {"text": medication},
         "subject": {"reference": "Patient/p1"}}
    if intent:
        r["intent"] = intent
    r.update(extra)
    return r


def med_admin(medication, date, id=None, status="completed"):
    return {"resourceType": "MedicationAdministration", "id": id or f"ma{next(_ids)}", "status": status,
            "medicationCodeableConcept": medication if isinstance(medication, dict) else {"text": medication},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": date}


def drafts_context(*requests, selections=None, patient_id="p1"):
    ctx = {"patientId": patient_id,
           "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": r} for r in requests]}}
    if selections is not None:
        ctx["selections"] = selections
    return ctx


def her2_ihc(score_text, **kw):
    return obs("85319-2", valueString=score_text, **kw)


def ish(ratio, copies, date="2025-01-10", **kw):
    return [obs("49683-6", date=date, valueQuantity={"value": ratio}, **kw),
            obs("74860-8", date=date, valueQuantity={"value": copies}, **kw)]


def mbc_base(metastatic_onset="2024-06-01"):
    """A breast cancer patient with bone metastases."""
    return [patient(), condition(SNOMED, "254837009", onset="2019-02-01"),
            condition(SNOMED, "94222008", onset=metastatic_onset)]
