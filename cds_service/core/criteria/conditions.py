"""Conditions: breast cancer, metastatic disease (sites, date), brain metastases and ILD.

A metastatic Condition whose mCODE ``relatedPrimaryCancerCondition`` names a
known non-breast primary is not this cancer's metastasis.  Brain-metastasis
activity prefers a disease-status Observation focused on the brain Condition
over the Condition's own clinical status.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters
from ..knowledge.terminology import Terminology
from .intake import Intake
from .profile import Derived, MedEpisode
from .readings import answer, code_of, condition_counts, condition_resolved, newest_final

# metastatic.sites lists the sites in the concept order of this CodeSystem (CodeSystem-metastatic-site)
METASTATIC_SITE = "http://her2-cds.example.org/fhir/CodeSystem/metastatic-site"
_RELATED_PRIMARY = ("relatedPrimaryCancerCondition", "related-primary-cancer-condition")
RESULT_ANSWER = "http://her2-cds.example.org/fhir/CodeSystem/result-answer"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def metastatic_stage(codeable: Any, t: Terminology) -> bool:
    """A stage or M category that means distant metastases: AJCC stage IV or M1, coded or in words.

    Staging recorded only as words ("Stage IV", "stage 4", "cM1", "pM1b") is read
    through ConceptMap-report-text (target stage-iv-or-m1): what the coded
    values of ValueSet stage-metastatic mean, for records that carry text only.
    """
    if t.codings_in("stage-metastatic", codeable):
        return True
    return any(t.text_states("report-text", text, "stage-iv-or-m1") for text in fp.texts(codeable))


def staged_metastatic(intake: Intake, t: Terminology) -> list[tuple[dt.date | None, str]]:
    """(date, ref) of each record that stages the breast cancer as metastatic without a metastatic Condition.

    A primary breast cancer Condition whose ``stage.summary`` is stage IV or M1
    (de novo stage IV: its onset is the metastatic diagnosis), and mCODE TNM
    stage-group / M-category Observations with such a value (their date).
    """
    out = []
    for c in intake.conditions:
        if not condition_counts(c):
            continue
        if not t.codings_in("primary-breast-cancer", c.get("code")):
            continue
        for stage in c.get("stage") or ():
            if isinstance(stage, dict) and metastatic_stage(stage.get("summary"), t):
                out.append((fp.condition_onset(c), fp.reference_of(c)))
                break
    for kind in ("tnm-stage-group", "tnm-distant-metastases"):
        rows = newest_final(intake.of_kind(kind), kind, Derived())
        if rows and metastatic_stage(rows[0][1].get("valueCodeableConcept"), t):
            out.append((rows[0][0], fp.reference_of(rows[0][1])))
    return out


def condition_facts(intake: Intake, t: Terminology, params: CriteriaParameters, today: dt.date | None = None) -> tuple[Derived, list[dict]]:
    """breast_cancer, metastatic(.sites/.date), brain_mets(.activity), ild, pregnancy,
    renal.severe_impairment; also the ILD Conditions."""
    out = Derived()
    breast, mets, ild, renal = [], [], [], []
    pregnant: list[tuple[dt.date | None, str]] = []
    ended: list[dt.date] = []
    sites: dict[str, list[str]] = {}
    met_dates: list[tuple[dt.date, str]] = []
    brain: list[dict] = []
    for c in intake.conditions:
        if not condition_counts(c):
            continue
        ref = fp.reference_of(c)
        sets: set[str] = set()
        for cd in fp.codings(c.get("code")):
            sets |= t.valuesets_of(cd.get("system"), cd.get("code"))
        if "primary-breast-cancer" in sets:
            breast.append(ref)
        if "ild" in sets:
            ild.append(ref)
        if "severe-renal-impairment" in sets and not condition_resolved(c):
            renal.append(ref)
        if "pregnancy" in sets and not condition_resolved(c):
            pregnant.append((fp.condition_onset(c), ref))
        if "pregnancy-ended" in sets:
            end = fp.condition_onset(c) or fp.parse_date(c.get("abatementDateTime"))
            if end:
                ended.append(end)
        if "metastatic-disease" in sets:
            if _related_primary_not_breast(c, intake.all_conditions, t):
                continue
            mets.append(ref)
            site = t.translate_codeable("metastatic-site", c.get("code"))
            if site is None and not t.codings_in("history-of-metastatic", c.get("code")):
                site = "other"  # a secondary site the rules do not name; history-of-metastatic has none
            if site:
                sites.setdefault(site, []).append(ref)
            if site == "brain":
                brain.append(c)
            d = fp.condition_onset(c)
            if d:
                met_dates.append((d, ref))
    out.set("breast_cancer", bool(breast), breast)
    if not mets and breast:
        staged = staged_metastatic(intake, t)
        mets = [ref for _, ref in staged]
        met_dates += [(d, ref) for d, ref in staged if d]
    out.set("metastatic", bool(mets), mets)
    out.set("metastatic.sites", [s for s in t.codes(METASTATIC_SITE) if s in sites], [r for s in sites.values() for r in s])
    if met_dates:
        d, ref = min(met_dates)
        out.set("metastatic.date", d.isoformat(), (ref,))
    else:
        out.set("metastatic.date", None, (), "no onset/recorded date on a metastatic Condition" if mets else None)
    out.set("brain_mets", bool(brain), [fp.reference_of(c) for c in brain])
    lepto = [fp.reference_of(c) for c in brain if t.codings_in("leptomeningeal", c.get("code"))]
    out.set("brain_mets.leptomeningeal", bool(lepto), lepto)
    _brain_activity(brain, intake.of_kind("disease-status"), t, out)
    out.set("ild", bool(ild), ild)
    out.set("renal.severe_impairment", bool(renal), renal)
    _pregnancy(pregnant, ended, out)
    _hcg(intake.of_kind("hcg"), ended, t, today, params.hcg_lookback_days, out)
    return out, [c for c in intake.conditions if fp.reference_of(c) in ild]


def _pregnancy(pregnant: list[tuple[dt.date | None, str]], ended: list[dt.date], out: Derived) -> None:
    """pregnancy: an unresolved pregnancy Condition that no later delivery, loss or termination ends.

    Why this reading: every HER2 antibody and ADC label carries a boxed
    embryo-fetal toxicity warning, so a pregnancy on the problem list must not
    be missed; an end-of-pregnancy Condition dated on or after it (or a
    resolved/abated pregnancy Condition) ends it.  A pregnancy without a date
    cannot be ended by a dated outcome and counts as current: the card names
    the record so the clinician can correct it.
    """
    last_end = max(ended) if ended else None
    current = [(d, ref) for d, ref in pregnant if d is None or last_end is None or d > last_end]
    note = None
    if current:
        dates = sorted(d for d, _ in current if d)
        note = f"recorded {dates[-1].isoformat()}" if dates else "no date recorded"
    out.set("pregnancy", bool(current), [ref for _, ref in current], note)


def _hcg_result(obs: dict, t: Terminology) -> str | None:
    """positive / negative / None: the coded or worded answer, else the quantity against its own range."""
    a = answer(obs, t)
    if a in ("positive", "present"):
        return "positive"
    if a in ("negative", "absent"):
        return "negative"
    q = obs.get("valueQuantity") if isinstance(obs.get("valueQuantity"), dict) else None
    value = fp.quantity_number(q)
    if value is None:
        return None
    for rr in obs.get("referenceRange") or ():
        high = fp.quantity_number((rr or {}).get("high") if isinstance(rr, dict) else None)
        if high is not None:
            return "positive" if value > high else "negative"
    return None  # a number without its range is not read: no cut-off is typed here


def _hcg(observations: list[dict], ended: list[dt.date], t: Terminology, today: dt.date | None,
         lookback_days: int, out: Derived) -> None:
    """pregnancy.hcg_positive: the newest readable hCG of the last hcg-lookback-days is positive, and
    no end of pregnancy is recorded after it (knowledge file §2.6: "confirm pregnancy status";
    tumours can secrete hCG, so this is read as a question, not as a pregnancy)."""
    name = "pregnancy.hcg_positive"
    if today is None:
        out.set(name, False)
        return
    since = today - dt.timedelta(days=lookback_days)
    for date, obs in newest_final(observations, "pregnancy test", out):
        result = _hcg_result(obs, t)
        if result is None:
            continue
        ref = fp.reference_of(obs)
        if result == "negative" or date is None or date < since or any(e >= date for e in ended):
            out.set(name, False, (ref,), f"newest pregnancy test {result} on {date}")
        else:
            out.set(name, True, (ref,), f"pregnancy test positive on {date}")
        return
    out.set(name, False)


def ild_on_tdxd(ild_conditions: list[dict], episodes: list[MedEpisode], t: Terminology) -> Derived:
    """ild.on_tdxd (.grade, .resolved): ILD Conditions with onset on or after the first trastuzumab deruxtecan.

    The Enhertu label decides by grade: grade 2 or higher → permanently
    discontinue; grade 1 → interrupt until resolved, then resume.  The grade is
    the highest of those Conditions; a Condition without a readable grade makes
    it unknown (``None``) unless another one is already grade 2 or higher, so a
    missing grade is never read as grade 1.  ``resolved`` needs every one of
    them resolved (clinicalStatus resolved/inactive/remission, or an abatement).
    """
    out = Derived()
    tdxd = [e.start for e in episodes if e.start and any(t.ingredient_in("ild-label-adc", i) for i in e.ingredients)]
    hits = []
    for c in ild_conditions:
        onset = fp.condition_onset(c)
        if onset and tdxd and min(tdxd) <= onset:
            hits.append(c)
    refs = [fp.reference_of(c) for c in hits]
    out.set("ild.on_tdxd", bool(hits), refs)
    grades = [severity_grade(c, t) for c in hits]
    known = [g for g in grades if g is not None]
    if not hits:
        grade, note = None, None
    elif None in grades and (not known or max(known) < 2):
        grade, note = None, "grade not recorded (Condition.severity)"
    else:
        grade, note = max(known), None
    out.set("ild.on_tdxd.grade", grade, refs, note)
    out.set("ild.on_tdxd.resolved", bool(hits) and all(condition_resolved(c) for c in hits), refs)
    return out


def severity_grade(cond: dict, t: Terminology) -> int | None:
    """CTCAE grade of a Condition: "Grade N" in severity text/display, else SNOMED mild/moderate/severe.

    Both are ConceptMap-condition-severity-grade: its report-text-pattern group
    ("Grade 2", "CTCAE grade 2", "G2 pneumonitis"; the grade written first
    decides), then its SNOMED group.
    """
    severity = cond.get("severity")
    for text in fp.texts(severity):
        grade = t.read_text_pattern("condition-severity-grade", text)
        if grade:
            return int(grade)
    code = t.translate_codeable("condition-severity-grade", severity)
    return int(code) if code else None


def _related_primary_not_breast(cond: dict, all_conditions: dict[str, dict], t: Terminology) -> bool:
    """mCODE relatedPrimaryCancerCondition pointing to a known non-breast primary."""
    for ext in cond.get("extension") or ():
        if isinstance(ext, dict) and str(ext.get("url", "")).endswith(_RELATED_PRIMARY):
            ref = (ext.get("valueReference") or {}).get("reference") or ""
            primary = all_conditions.get(ref.split("/")[-1])
            if primary is not None and not t.codings_in("primary-breast-cancer", primary.get("code")):
                return True
    return False


def systemic_control_after(after: dt.date, disease_status: list[dict], t: Terminology):
    """(date, Observation, answer) of the newest overall disease status (not focused on one lesion) when
    it is dated after ``after`` and reads stable or improved; else None.

    One reading for the brain-metastasis activity and the progression events: new or
    treated brain metastases with the disease outside the brain not progressing (ASCO 2018/2022).
    """
    # a scratch Derived: the disease-status results' own findings are raised where they are read
    overall = newest_final([o for o in disease_status if not o.get("focus")], "disease status", Derived())
    if not overall or overall[0][0] is None or overall[0][0] <= after:
        return None
    date, obs = overall[0]
    a = t.translate_codeable("result-answer", obs.get("valueCodeableConcept"))
    return (date, obs, a) if a in ("stable", "improved") else None


def _brain_activity(brain: list[dict], disease_status: list[dict], t: Terminology, out: Derived) -> None:
    if not brain:
        out.set("brain_mets.activity", "unknown")
        return
    ids = {fp.reference_of(c) for c in brain}
    focused = [o for o in disease_status
               if any((f or {}).get("reference") in ids for f in o.get("focus") or ())]
    rows = newest_final(focused, "brain disease status", out)
    if rows:
        date, obs = rows[0]
        a = t.translate_codeable("result-answer", obs.get("valueCodeableConcept"))
        activity = t.translate("cns-activity", RESULT_ANSWER, a) or "unknown"
        out.set("brain_mets.activity", activity, (fp.reference_of(obs),), f"disease status {a} on {date}")
        return
    readings = {t.translate("cns-activity", CONDITION_CLINICAL, code_of(c.get("clinicalStatus"))) for c in brain}
    if "active" in readings:
        # clinicalStatus "active" says the lesions exist, not that they grow. A newer overall
        # disease status (not focused on the brain) of stable or improved, dated after the brain
        # metastasis was found, leaves the activity unknown rather than "active": no CNS regimen
        # switch is proposed for treated, stable brain metastases (ASCO 2018/2022; third
        # independent review, case 18). A worsened one keeps it active.
        onsets = [d for d in (fp.condition_onset(c) for c in brain) if d]
        control = systemic_control_after(max(onsets), disease_status, t) if onsets else None
        if control:
            date, obs, a = control
            out.set("brain_mets.activity", "unknown", (fp.reference_of(obs), *sorted(ids)),
                    f"brain metastasis recorded as active, overall disease status {a} on {date} "
                    "(not assessed for the brain)")
            return
        activity = "active"
    elif readings == {"stable"}:
        activity = "stable"
    else:
        activity = "unknown"
    out.set("brain_mets.activity", activity, sorted(ids), "from Condition.clinicalStatus")
