"""The page's view-model: the patient's resources → profile → cards → what the page shows.

Pure (no Flask, no I/O), so the page's content is unit-testable from plain
dicts.  The profile is built once per page, and the same object feeds the
recommendations (``advice.advise(profile=…)``), the fact table and the
timeline picture: one derivation, three views.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from ..advice import advise
from ..cards import format_value
from ..criteria import Finding, PatientProfile, build_profile
from ..fhir import parse as fp

log = logging.getLogger("her2cds.smart")

PATIENT_VIEW = "her2-mbc-patient-view"
SMART_USER = "Practitioner/smart-app"

# Facts shown first, in this order; the rest follow alphabetically.
KEY_FACTS = [
    "her2.status", "her2.ihc", "her2.ish_group", "hr.status", "er.status", "pr.status", "pik3ca",
    "metastatic", "metastatic.date", "metastatic.sites", "brain_mets", "brain_mets.activity",
    "therapy.line", "taxane.cycles", "meds.active.ingredients", "meds.past.ingredients",
    "disease.progression", "lvef.value", "lvef.days_ago", "lvef.drop", "ecog", "ild",
    "patient.age", "patient.menopausal",
]

_DATE_KEYS = ("effectiveDateTime", "effectiveInstant", "onsetDateTime", "authoredOn", "recordedDate",
              "issued", "dateAsserted", "occurrenceDateTime")
_PERIOD_KEYS = ("effectivePeriod", "onsetPeriod")
_CONCEPT_KEYS = ("code", "medicationCodeableConcept")


@dataclass(frozen=True)
class Assessment:
    """The pipeline's answer for the page; an ``*_error`` says, in plain words, what could not run."""

    profile: PatientProfile | None
    cards: list[dict] = field(default_factory=list)
    profile_error: str | None = None
    cards_error: str | None = None


@dataclass(frozen=True)
class Page:
    """Everything the page template and the timeline picture need."""

    patient_id: str
    iss: str
    today: dt.date
    patient: dict
    hint_mismatch: bool
    facts: list[dict]
    cards: list[dict]
    findings: list[str]
    profile_error: str | None
    cards_error: str | None
    profile: PatientProfile | None = field(repr=False)
    resources: list[dict] = field(repr=False)


def assess(resources: list[dict], patient_id: str, knowledge, today: dt.date,
           findings: tuple[Finding, ...] = ()) -> Assessment:
    """criteria → advice exactly as a ``patient-view`` hook call, building the profile once.

    ``findings`` are the reading problems (refs ``prefetch:<key>``): as in the
    hooks, rules that fire on the *absence* of a result stay silent when the
    result may simply have been unreadable.  A failure is logged and said on
    the page; the page still renders what it can.
    """
    context = {"patientId": patient_id, "userId": SMART_USER}
    try:
        profile = build_profile(resources, context, knowledge.terminology, today)
    except Exception:
        log.exception("smart: build_profile failed", extra={"patient_id": patient_id})
        return Assessment(None, [], "The patient profile could not be built from this record (see the service log).",
                          "Recommendations are unavailable: they need the patient profile.")
    try:
        cards = advise("patient-view", PATIENT_VIEW, context, resources, list(findings), knowledge=knowledge,
                       today=today, profile=profile)
    except Exception:
        log.exception("smart: advise failed", extra={"patient_id": patient_id})
        return Assessment(profile, [], None,
                          "Recommendations are unavailable: the rules could not be evaluated (see the service log).")
    return Assessment(profile, [c for c in cards or () if isinstance(c, dict)])


def present(resources: list[dict], assessment: Assessment, *, patient_id: str, iss: str, today: dt.date,
            patient_hint: str | None = None, read_findings: tuple[Finding, ...] = ()) -> Page:
    """The view-model of one page from what was read and what the pipeline made of it."""
    profile = assessment.profile
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    return Page(
        patient_id=patient_id,
        iss=iss,
        today=today,
        patient=patient_summary(patient),
        hint_mismatch=bool(patient_hint and patient_hint != patient_id),
        facts=describe_facts(profile, resources),
        cards=assessment.cards,
        findings=[f"{f.code}: {f.message}" for f in read_findings] + profile_findings(profile),
        profile_error=assessment.profile_error,
        cards_error=assessment.cards_error,
        profile=profile,
        resources=resources,
    )


def build_page(resources: list[dict], *, patient_id: str, iss: str, knowledge, today: dt.date,
               patient_hint: str | None = None, read_findings: tuple[Finding, ...] = ()) -> Page:
    """``assess`` then ``present``: what ``/smart/app`` shows for these resources."""
    assessment = assess(resources, patient_id, knowledge, today, read_findings)
    return present(resources, assessment, patient_id=patient_id, iss=iss, today=today,
                   patient_hint=patient_hint, read_findings=read_findings)


def describe_facts(profile: PatientProfile | None, resources: list[dict]) -> list[dict]:
    """Facts as rows: name, value, note, and each source with its date and what it is."""
    if profile is None or not profile.facts:
        return []
    facts = profile.facts
    index = {fp.reference_of(r): r for r in resources}
    names = [n for n in KEY_FACTS if n in facts] + sorted(n for n in facts if n not in KEY_FACTS)
    rows = []
    for name in names:
        fact = facts[name]
        sources = []
        for ref in fact.refs:
            res = index.get(ref)
            sources.append({"ref": ref, "date": resource_date(res) if res else "",
                            "what": resource_label(res) if res else ""})
        rows.append({"name": name, "value": format_value(fact.value, missing="—"), "note": fact.note or "",
                     "sources": sources, "key": name in KEY_FACTS})
    return rows


def resource_date(res: dict) -> str:
    """The resource's clinical date as recorded (its precision kept: ``2023`` stays ``2023``), or ''."""
    for key in _DATE_KEYS:
        if fp.parse_date(res.get(key)):
            return res[key][:10]
    for key in _PERIOD_KEYS:
        period = res.get(key)
        start, end = fp.period_bounds(period)
        if start or end:
            return (period.get("start") if start else period.get("end"))[:10]
    return ""


def resource_label(res: dict) -> str:
    """What the resource is, as its coding says: the text, else a display, else a code; else its type."""
    for key in _CONCEPT_KEYS:
        names = fp.texts(res.get(key))
        if names:
            return names[0]
        codes = [c["code"] for c in fp.codings(res.get(key)) if c.get("code")]
        if codes:
            return codes[0]
    return str(res.get("resourceType", ""))


def profile_findings(profile: PatientProfile | None) -> list[str]:
    """The criteria's data-quality findings as 'code: message (refs)' lines."""
    if profile is None:
        return []
    return [f"{f.code}: {f.message}" + (f" ({', '.join(f.refs)})" if f.refs else "") for f in profile.findings]


def patient_summary(patient: Any) -> dict:
    if not isinstance(patient, dict):
        return {"name": "(Patient resource not readable)", "birth_date": "", "gender": ""}
    name = ""
    for n in patient.get("name") or []:
        if isinstance(n, dict):
            given = [g for g in n.get("given") or [] if isinstance(g, str)]
            family = n.get("family") if isinstance(n.get("family"), str) else ""
            name = n.get("text") if isinstance(n.get("text"), str) and n.get("text") else " ".join([*given, family]).strip()
            if name:
                break
    return {"name": name or f"Patient/{patient.get('id')}", "birth_date": str(patient.get("birthDate", "")),
            "gender": str(patient.get("gender", ""))}
