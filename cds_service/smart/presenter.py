"""The page's view-model: the patient's resources → profile → cards → what the page shows.

Pure (no Flask, no I/O), so the page's content is unit-testable from plain
dicts.  The profile is built once per page, and the same object feeds the
recommendations (``advice.advise(profile=…)``), the fact table and the
timeline picture: one derivation, three views.  Past ``assess`` nothing reads
the resources as fetched: the page shows the profile (its ``records``, the
resources the intake accepted, flattened and de-duplicated once; its facts,
``medications``, ``lines`` and ``courses``), so it names exactly what the
cards were derived from.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from ..core.advice import advise, standing_checks
from ..core.cards import format_value
from ..core.rules.rulebook import human_date, human_dates_in
from ..core.criteria import Finding, PatientProfile, build_profile
from ..core.criteria.observations import lvef_readings
from ..core.knowledge import DRUG_CLASS_SYSTEM
from ..core import parse as fp
from . import rich_text
from .timeline import COMPACT_WIDTH, render_svg, value_text

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
    cards: list = field(default_factory=list)  # IssuedCard, most severe first
    profile_error: str | None = None
    cards_error: str | None = None
    # The LVEF rules the current medications meet, as the next order would (advice.standing_checks)
    heart_checks: tuple = ()


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
    summary: dict = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)   # what could not be read (failed queries)
    empty: list[str] = field(default_factory=list)        # what the server returned nothing for
    no_cards_reasons: list[str] = field(default_factory=list)
    timeline_wide: str = field(default="", repr=False)
    timeline_compact: str = field(default="", repr=False)

    @property
    def today_text(self) -> str:
        """The day the record was read, written as every date on the page."""
        return human_date(self.today)


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
        profile = build_profile(resources, context, knowledge.terminology, knowledge.parameters, today)
    except Exception:
        log.exception("smart: build_profile failed", extra={"patient_id": patient_id})
        return Assessment(None, [], "The patient profile could not be built from this record (see the service log).",
                          "Recommendations are unavailable: they need the patient profile.")
    try:
        issued = advise("patient-view", PATIENT_VIEW, context, resources, list(findings), knowledge=knowledge,
                        today=today, profile=profile).issued
    except Exception:
        log.exception("smart: advise failed", extra={"patient_id": patient_id})
        return Assessment(profile, [], None,
                          "Recommendations are unavailable: the rules could not be evaluated (see the service log).")
    try:
        heart = standing_checks(profile, knowledge, list(findings))
    except Exception:
        log.exception("smart: heart checks failed", extra={"patient_id": patient_id})
        heart = ()
    return Assessment(profile, list(issued), heart_checks=tuple(heart))


def present(assessment: Assessment, *, patient_id: str, iss: str, today: dt.date,
            patient_hint: str | None = None, read_findings: tuple[Finding, ...] = (), knowledge=None,
            empty_queries: tuple[str, ...] = (), focus_rule: str | None = None) -> Page:
    """The view-model of one page from what the pipeline made of the record (and which reads failed)."""
    profile = assessment.profile
    words = Words(knowledge)
    summary = summarize(profile, words, today, assessment.heart_checks)
    unreadable = [words.query(k) for k in read_keys(read_findings)]
    empty = [words.query(k) for k in words.expected_queries() if k in empty_queries]
    cards = [present_card(c) for c in assessment.cards]
    if focus_rule:
        cards.sort(key=lambda c: c["rule"] != focus_rule)
    return Page(
        patient_id=patient_id,
        iss=iss,
        today=today,
        patient=patient_summary(patient_record(profile)),
        hint_mismatch=bool(patient_hint and patient_hint != patient_id),
        facts=describe_facts(profile, words),
        cards=cards,
        findings=[f"{f.code}: {human_dates_in(f.message)}" for f in read_findings] + profile_findings(profile),
        profile_error=assessment.profile_error,
        cards_error=assessment.cards_error,
        profile=profile,
        summary=summary,
        unreadable=unreadable,
        empty=empty,
        no_cards_reasons=[] if cards or assessment.cards_error else no_cards_reasons(summary, unreadable, empty),
        timeline_wide=render_svg(profile, today, words=words),
        timeline_compact=render_svg(profile, today, width=COMPACT_WIDTH, words=words),
    )


def build_page(resources: list[dict], *, patient_id: str, iss: str, knowledge, today: dt.date,
               patient_hint: str | None = None, read_findings: tuple[Finding, ...] = (),
               empty_queries: tuple[str, ...] = (), focus_rule: str | None = None) -> Page:
    """``assess`` then ``present``: what ``/smart/app`` shows for these resources."""
    assessment = assess(resources, patient_id, knowledge, today, read_findings)
    return present(assessment, patient_id=patient_id, iss=iss, today=today,
                   patient_hint=patient_hint, read_findings=read_findings, knowledge=knowledge,
                   empty_queries=empty_queries, focus_rule=focus_rule)


class Words:
    """Human words for codes, facts and queries: the terminology's display names, the rulebook's fact
    labels and the prefetch queries' labels (fhir_profiles/services/prefetch.json)."""

    def __init__(self, knowledge=None):
        self.terminology = getattr(knowledge, "terminology", None)
        rulebook = getattr(knowledge, "rulebook", None)
        self.rulebook = rulebook
        self.labels = dict(getattr(rulebook, "fact_labels", None) or {})
        self.queries = dict(getattr(getattr(knowledge, "services", None), "queries", None) or {})

    def query(self, key: str) -> str:
        """What a prefetch query reads, by its label ("HER2 test results"); a key no query has stays as it is."""
        q = self.queries.get(key)
        return q.label if q is not None else key

    def expected_queries(self) -> list[str]:
        """The keys whose empty answer the page calls out (``expected`` in prefetch.json), in file order."""
        return [k for k, q in self.queries.items() if q.expected]

    def value(self, fact: str, value) -> str:
        """A fact's value in the words the cards use (the facts' ``words`` in rulebook.yaml), one source."""
        if self.rulebook is not None:
            value = self.rulebook.word(fact, value)
        return format_value(value, missing="not recorded")

    def fact(self, name: str) -> str:
        """The rulebook's label of a fact; else the key made readable (``lvef.days_ago`` → "lvef days ago")."""
        return self.labels.get(name) or name.replace(".", " ").replace("_", " ")

    def concept(self, concept: Any) -> str:
        """A CodeableConcept as people read it: its text, a coding's display, the terminology's display, the code."""
        names = fp.texts(concept)
        if names:
            return names[0]
        codings = fp.codings(concept)
        for c in codings:
            if self.terminology is not None:
                shown = self.terminology.display(c.get("system"), c.get("code"))
                if shown:
                    return shown
        codes = [c["code"] for c in codings if isinstance(c.get("code"), str)]
        return codes[0] if codes else ""

    def short_name(self, concept: Any) -> str:
        """The clinical short name of a coded result ("HER2 IHC"), from the ValueSet designations; else ''."""
        if self.terminology is None:
            return ""
        for c in fp.codings(concept):
            name = self.terminology.short_name(c.get("system"), c.get("code"))
            if name:
                return name
        return ""

    def result(self, res: dict) -> str:
        """What a result is called on the page: its clinical short name, else as ``resource`` names it."""
        return self.short_name(res.get("code")) or self.resource(res)

    def resource(self, res: dict) -> str:
        for key in _CONCEPT_KEYS:
            name = self.concept(res.get(key))
            if name:
                return name
        return str(res.get("resourceType", ""))

    def drug_class(self, code: str) -> str:
        """A drug class as the timeline names it: the CodeSystem's clinical short name ("HER2 ADC"), else its display."""
        t = self.terminology
        if t is None:
            return code
        return t.short_name(DRUG_CLASS_SYSTEM, code) or t.display(DRUG_CLASS_SYSTEM, code) or code

    def site(self, code: str) -> str:
        shown = self.terminology.display(SITE_SYSTEM, code) if self.terminology is not None else None
        return shown or str(code)


SITE_SYSTEM = "http://her2-cds.example.org/fhir/CodeSystem/metastatic-site"


def describe_facts(profile: PatientProfile | None, words: Words | None = None) -> list[dict]:
    """Facts as rows (the "for integrators" table): key, label, value, note, each source with date and name."""
    words = words or Words()
    if profile is None or not profile.facts:
        return []
    facts = profile.facts
    index = profile.records
    names = [n for n in KEY_FACTS if n in facts] + sorted(n for n in facts if n not in KEY_FACTS)
    rows = []
    for name in names:
        fact = facts[name]
        sources = []
        for ref in fact.refs:
            res = index.get(ref)
            sources.append({"ref": ref, "date": human_date(resource_date(res)) if res else "",
                            "what": words.resource(res) if res else ""})
        rows.append({"name": name, "label": words.fact(name), "value": human_dates_in(format_value(fact.value, missing="—")),
                     "note": human_dates_in(fact.note or ""), "sources": sources, "key": name in KEY_FACTS})
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


def profile_findings(profile: PatientProfile | None) -> list[str]:
    """The criteria's data-quality findings as 'code: message (refs)' lines."""
    if profile is None:
        return []
    return [f"{f.code}: {human_dates_in(f.message)}" + (f" ({', '.join(f.refs)})" if f.refs else "") for f in profile.findings]


def patient_record(profile: PatientProfile | None) -> dict | None:
    """The Patient resource the profile read (the first valid one), or None."""
    records = profile.records if profile is not None else {}
    return next((r for r in records.values() if r.get("resourceType") == "Patient"), None)


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
    birth = patient.get("birthDate")
    return {"name": name or f"Patient/{patient.get('id')}", "birth_date": human_date(birth) if isinstance(birth, str) else "",
            "gender": str(patient.get("gender", ""))}


# -- the summary an oncologist reads first -------------------------------------------------------

def _result(res: dict | None, words: Words) -> dict | None:
    """One result as the page names it: test (display name), value, date, specimen when recorded."""
    if not isinstance(res, dict):
        return None
    specimen = res.get("specimen") if isinstance(res.get("specimen"), dict) else {}
    body_site = words.concept(res.get("bodySite")) if isinstance(res.get("bodySite"), dict) else ""
    return {"test": words.result(res), "value": value_text(res) if res.get("resourceType") == "Observation" else "",
            "date": human_date(resource_date(res)), "specimen": specimen.get("display")
            if isinstance(specimen.get("display"), str) else body_site, "ref": fp.reference_of(res)}


def _fact(profile: PatientProfile | None, name: str):
    return None if profile is None or name not in profile.facts else profile.facts[name]


def summarize(profile: PatientProfile | None, words: Words, today: dt.date, heart_checks=()) -> dict:
    """The page's first block: status with the results behind it, disease, therapy, heart, gaps.

    Everything is read from the profile (its facts, ``lines``, ``courses``) and
    the LVEF rules it meets (``heart_checks``); nothing is re-derived here.
    """
    if profile is None:
        return {}
    index = profile.records

    def status(name: str, label: str) -> dict:
        fact = _fact(profile, name)
        value = fact.value if fact else None
        results = [r for r in (_result(index.get(ref), words) for ref in (fact.refs if fact else ())) if r]
        return {"key": name, "label": label, "value": words.value(name, value), "known": value not in (None, "unknown"),
                "results": results, "note": human_dates_in(fact.note or "") if fact else ""}

    sites = profile.value("metastatic.sites") or []
    lines = list(profile.lines)
    current = next((ln for ln in reversed(lines) if ln.end is None), None)
    courses = [present_course(c) for c in profile.courses]
    lvef = [obs for when, _, _, obs in reversed(lvef_readings(
        [r for ref, r in index.items() if profile.kinds.get(ref) == "lvef"])) if when]
    gaps = []
    if not status("her2.status", "")["known"]:
        gaps.append("No readable HER2 result on record.")
    if profile.value("hr.status") in (None, "unknown"):
        gaps.append("Hormone-receptor status (ER/PR) is not known from this record.")
    if not lvef:
        gaps.append("No LVEF (ejection fraction) result on record.")
    for f in profile.findings:
        gaps.append(human_dates_in(f.message))
    return {
        "her2": status("her2.status", "HER2"),
        "hr": status("hr.status", "Hormone receptors"),
        "er": status("er.status", "ER"),
        "pr": status("pr.status", "PR"),
        "metastatic": words.value("metastatic", profile.value("metastatic")),
        "metastatic_date": human_date(format_value(profile.value("metastatic.date"), missing="")),
        "sites": [words.site(s) for s in sites],
        "brain": words.value("brain_mets.activity", profile.value("brain_mets.activity")) if profile.value("brain_mets") else "",
        "line": profile.value("therapy.line"),
        "current_line": ({"number": current.number, "since": human_date(current.start),
                          "regimen": " + ".join(current.regimen or current.ingredients)} if current else None),
        "last_line": ({"number": lines[-1].number, "since": human_date(lines[-1].start),
                       "until": human_date(lines[-1].end) if lines[-1].end else "",
                       "regimen": " + ".join(lines[-1].regimen or lines[-1].ingredients)} if lines and not current else None),
        "other_metastatic": metastatic_courses(profile, courses),
        "active": [c for c in courses if c["ongoing"]],
        "courses": courses,
        "lvef": heart(profile, lvef, heart_checks),
        "lvef_drop": profile.value("lvef.drop"),
        "lvef_days_ago": profile.value("lvef.days_ago"),
        "gaps": gaps,
    }


# The profile's facts naming the metastatic-setting therapy that is not an anti-HER2 line
# (therapy.lines count anti-HER2 regimens): their refs are the episodes it counted.
_OTHER_METASTATIC = ("therapy.prior_metastatic_chemo", "therapy.prior_metastatic_endocrine")


def metastatic_courses(profile: PatientProfile, courses: list[dict]) -> list[dict]:
    """The courses of metastatic-setting therapy outside any anti-HER2 line, as the profile counted them.

    A HER2-low patient's capecitabine after the metastatic diagnosis is such
    therapy (``therapy.prior_metastatic_chemo`` names its record): the page
    says it was given instead of "untreated" (issue 22).
    """
    refs = {r for name in _OTHER_METASTATIC for r in (_fact(profile, name).refs if _fact(profile, name) else ())}
    return [c for c in courses if c["line"] is None and refs & set(c["refs"])]


def heart(profile: PatientProfile, lvef: list[dict], heart_checks=()) -> dict:
    """The LVEF series with dates, and what is flagged about it.

    Flags come from the profile and the rulebook only: ``lvef.below_lln``
    (the result's reference range, else Parameters lvef-default-lln-percent)
    and the LVEF rules the current medications meet at their next order
    (``advice.standing_checks``: S2-C, S2-W, S2-DUE, S13-L, S15-W with their
    thresholds and the monitoring interval), so no number is typed here.
    """
    latest_ref = (_fact(profile, "lvef.value").refs[:1] if _fact(profile, "lvef.value") else ())
    series = [{"value": value_text(r), "date": human_date(fp.observation_date(r)),
               "latest": fp.reference_of(r) in latest_ref} for r in lvef]
    flags = []
    below = _fact(profile, "lvef.below_lln")
    if below is not None and below.value is True:
        flags.append({"level": "warning", "rule": "",
                      "text": f"Latest LVEF {format_value(profile.value('lvef.value'))}% is below the "
                              f"{below.note or 'lower limit of normal'}."})
    for rec in heart_checks:
        flags.append({"level": rec.rule.card.get("indicator", "warning"), "rule": rec.rule.id,
                      "text": rec.summary or rec.rule.card.get("summary", "")})
    drop = _fact(profile, "lvef.drop")
    return {"series": series, "flags": flags, "flagged": bool(flags),
            "drop": drop.value if drop else None, "drop_note": human_dates_in(drop.note or "") if drop else ""}


def present_course(course) -> dict:
    """A course row: drug, dates, cycles as the profile counted them (``estimated``: ``Course.cycles_estimated``)."""
    return {"name": " + ".join(course.ingredients) or course.text or "medication",
            "start": human_date(course.start) if course.start else "",
            "end": human_date(course.end) if course.end else "", "ongoing": course.end is None,
            "cycles": course.cycles, "estimated": course.cycles is not None and bool(course.cycles_estimated),
            "weeks": course.weeks, "line": course.line, "refs": list(course.refs)}


def read_keys(findings) -> list[str]:
    """The prefetch keys the reading findings (refs ``prefetch:<key>``) name, in order."""
    keys = []
    for f in findings or ():
        for ref in getattr(f, "refs", ()) or ():
            if isinstance(ref, str) and ref.startswith("prefetch:") and ref[9:] not in keys:
                keys.append(ref[9:])
    return keys


def no_cards_reasons(summary: dict, unreadable: list[str], empty: list[str]) -> list[str]:
    """Why no card shows, in the record's own terms (not just "no recommendations")."""
    if not summary:
        return []
    out = [f"HER2 status: {summary['her2']['value']}; hormone receptors: {summary['hr']['value']}; "
           f"metastatic disease: {summary['metastatic']}."]
    if summary["current_line"]:
        cl = summary["current_line"]
        out.append(f"On line {cl['number']} since {cl['since']} ({cl['regimen']}).")
    elif summary.get("last_line"):
        ll = summary["last_line"]
        out.append(f"Line {ll['number']} ({ll['regimen']}) ran {ll['since']} – {ll['until']}; no line is ongoing.")
    elif summary["metastatic"] == "yes" and summary.get("other_metastatic"):
        out.append("No anti-HER2 therapy for metastatic disease is recorded; metastatic-setting therapy given: "
                   + course_list(summary["other_metastatic"]) + ".")
    elif summary["metastatic"] == "yes":
        out.append("No anti-HER2 therapy for metastatic disease is recorded yet (untreated).")
    if summary["active"]:
        out.append("Active medications: " + ", ".join(c["name"] for c in summary["active"]) + ".")
    for flag in (summary.get("lvef") or {}).get("flags", ()):
        out.append(f"Heart: {flag['text']}")
    if unreadable or empty:
        out.append("Some data could not be read or was not returned (see the notice above): "
                   "checks that need it stay silent.")
    out.append("None of the rules for the chart opening applies to this record today.")
    return out


def course_list(courses: list[dict]) -> str:
    """'capecitabine (5 Aug 2025 – 2 Apr 2026)' for each course, comma-separated."""
    return ", ".join(f"{c['name']} ({c['start']} – {c['end'] or 'ongoing'})" for c in courses)


def present_card(issued) -> dict:
    """A card for the page: its detail as sanitized HTML (markdown rendered), its rule id, its source link."""
    card = issued.card
    source = card.get("source") if isinstance(card.get("source"), dict) else {}
    url = source.get("url") if isinstance(source.get("url"), str) else ""
    return {**card, "rule": issued.rule_id, "detail_html": rich_text.to_html(card.get("detail") or ""),
            "source_url": url if url.startswith(("https://", "http://")) else ""}
