"""Medications: records → episodes, the draft orders of this call, and courses with cycle counts.

An *episode* is one MedicationStatement, MedicationRequest or
MedicationAdministration normalized to ingredients and drug classes (codes
first, then names; classes from ``CodeSystem-drug-class``).  A *course* is one
drug given over a stretch of time, which is what the timeline draws:
one statement or request, or all administrations of one drug in one line of
therapy (one dose each).  Cycle counts have one rule, ``count_cycles``, used
for every course and for ``taxane.cycles``.

Where dated courses grow (issue 12): a period-only MedicationStatement already
becomes an episode with ``start``/``end`` in ``episode``; per-dose
MedicationAdministrations are grouped in ``courses`` (``doses``).  New course
kinds or estimates belong in ``courses``/``count_cycles``, not in the timeline.
"""

from __future__ import annotations

import datetime as dt
import math
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters
from ..knowledge.terminology import Drug, Terminology
from .intake import Intake, draft_entries
from .profile import DRAFT_REF, Course, Derived, DraftOrder, Line, MedEpisode


COMPLETED_CYCLES_URL = "http://her2-cds.example.org/fhir/StructureDefinition/completed-cycles"
DAYS_PER_MONTH = 30.4375  # calendar average (365.25 / 12), for intervals in months
_PERIOD_UNIT_DAYS = {"d": 1, "wk": 7, "mo": DAYS_PER_MONTH}
_STATEMENT_STATE = {"active": "active", "intended": "active", "on-hold": "active", "completed": "past",
                    "stopped": "past", "unknown": "past"}
_REQUEST_STATE = {"active": "active", "on-hold": "active", "completed": "past", "stopped": "past"}


# -- episodes -------------------------------------------------------------------

def medication_history(intake: Intake, t: Terminology, params: CriteriaParameters, today: dt.date) -> tuple[Derived, list[MedEpisode]]:
    """meds.{active,past,ever}.{ingredients,classes} and the episodes behind them."""
    out = Derived()
    episodes = []
    for r in intake.med_records:
        try:
            e = episode(r, intake.medications, t, today)
        except (AttributeError, TypeError, ValueError) as exc:
            out.finding("malformed-resource", f"{fp.reference_of(r)} could not be read ({type(exc).__name__})",
                        (fp.reference_of(r),))
            continue
        if e is not None:
            episodes.append(e)
    episodes = current_by_administration(episodes, t, today, params)
    for state in ("active", "past", "ever"):
        chosen = episodes if state == "ever" else [e for e in episodes if e.state == state]
        refs = [e.ref for e in chosen]
        out.set(f"meds.{state}.ingredients", sorted({i for e in chosen for i in e.ingredients}), refs)
        out.set(f"meds.{state}.classes", sorted({k for e in chosen for k in e.classes}), refs)
    # Current therapy with a standing record (an active order or medication-list entry): what a card
    # can offer to stop.  A drug current only through its clinic administrations has none.
    ordered = [e for e in episodes if e.state == "active" and e.kind != "MedicationAdministration"]
    out.set("meds.ordered.ingredients", sorted({i for e in ordered for i in e.ingredients}), [e.ref for e in ordered])
    return out, episodes


def current_by_administration(episodes: list[MedEpisode], t: Terminology, today: dt.date,
                              params: CriteriaParameters) -> list[MedEpisode]:
    """The newest clinic administration of a periodic drug, as current therapy while its next dose is due.

    A GnRH agonist depot, fulvestrant or a HER2 antibody/ADC given every few
    weeks is often charted only as MedicationAdministrations: each one is a
    finished event, so read alone the drug looks like past therapy and the
    advice would offer to "add" it again.  Knowledge file §2.6: a drug whose
    last administration lies within its interval (CodeSystem-ingredient
    ``administration-interval-days``, or the record's own spacing up to
    ``periodic-administration-max-interval-multiple`` times it, for 3-monthly
    depots) plus ``periodic-administration-grace-days`` is ongoing.  Only that
    newest administration changes state; nothing becomes stoppable (cards stop
    only active orders and statements).
    """
    by_drug: dict[tuple[str, ...], list[MedEpisode]] = {}
    for e in episodes:
        if e.kind == "MedicationAdministration" and e.start and e.start <= today:
            by_drug.setdefault(e.ingredients, []).append(e)
    current: set[str] = set()
    for ingredients, given in by_drug.items():
        interval = max((t.administration_interval(i) or 0 for i in ingredients), default=0)
        if not interval:
            continue
        given.sort(key=lambda e: e.start)
        dates = sorted({e.start for e in given})
        if len(dates) >= 2:
            gap = (dates[-1] - dates[-2]).days
            if interval < gap <= interval * params.periodic_administration_max_interval_multiple:
                interval = gap
        if (today - dates[-1]).days <= interval + params.periodic_administration_grace_days:
            current.add(given[-1].ref)
    if not current:
        return episodes
    return [dataclasses.replace(e, state="active", end=None) if e.ref in current else e for e in episodes]


def _medication_concept(r: dict, medications: dict[str, dict]) -> tuple[Any, dict | None]:
    """(CodeableConcept, Medication) of a medication[x]: the concept itself, or a Medication's code
    (contained or referenced), or the reference's display as text."""
    cc = r.get("medicationCodeableConcept")
    med = None
    if cc is None:
        ref = (r.get("medicationReference") or {}).get("reference") or ""
        if ref.startswith("#"):
            med = next((c for c in r.get("contained") or () if isinstance(c, dict)
                        and c.get("id") == ref[1:] and c.get("resourceType") == "Medication"), None)
        else:
            med = medications.get("Medication/" + ref.split("/")[-1]) if ref else None
        cc = (med or {}).get("code")
        if cc is None and isinstance((r.get("medicationReference") or {}).get("display"), str):
            cc = {"text": r["medicationReference"]["display"]}
    return cc, med


def _med_concepts(r: dict, medications: dict[str, dict], t: Terminology) -> tuple[list[Drug], str]:
    """Drugs of a medication[x] (CodeableConcept or a Medication, contained or referenced)."""
    cc, med = _medication_concept(r, medications)
    drugs = t.drugs_for_codeable(cc)
    if not drugs and med:
        for ing in med.get("ingredient") or ():
            drugs += t.drugs_for_codeable((ing or {}).get("itemCodeableConcept"))
    text = next(iter(fp.texts(cc)), "") if cc else ""
    return drugs, text


def episode(r: dict, medications: dict[str, dict], t: Terminology, today: dt.date,
            draft: bool = False) -> MedEpisode | None:
    """One medication record as an episode, or None when no known drug or the status says it was not given."""
    rtype = r.get("resourceType")
    drugs, text = _med_concepts(r, medications, t)
    if not drugs:
        return None
    ingredients = tuple(dict.fromkeys(i for d in drugs for i in d.ingredients))
    # a combination product (Phesgo) counts as its components; a single drug as itself
    moieties = tuple(dict.fromkeys(m for d in drugs for m in (d.ingredients[1:] or d.ingredients)))
    classes = tuple(dict.fromkeys(k for d in drugs for k in d.classes))
    status = r.get("status")
    start = end = None
    period_days = None
    if rtype == "MedicationStatement":
        state = _STATEMENT_STATE.get(status)
        start = fp.parse_date(r.get("effectiveDateTime"))
        if start is None:
            start, end = fp.period_bounds(r.get("effectivePeriod"))
        dosage = r.get("dosage")
    elif rtype == "MedicationRequest":
        state = _REQUEST_STATE.get(status)
        dosage = r.get("dosageInstruction")
        for d in dosage or ():
            s, e = fp.period_bounds((((d or {}).get("timing") or {}).get("repeat") or {}).get("boundsPeriod"))
            start, end = start or s, end or e
        vs, ve = fp.period_bounds((r.get("dispenseRequest") or {}).get("validityPeriod"))
        start = start or vs or fp.parse_date(r.get("authoredOn"))
        end = end or ve
    else:  # MedicationAdministration
        state = "past" if status in ("completed", "in-progress", "on-hold") else None
        start = fp.parse_date(r.get("effectiveDateTime"))
        if start is None:
            start, end = fp.period_bounds(r.get("effectivePeriod"))
        end = end or start
        dosage = None
    if draft:
        state = "draft"
    if state is None:
        return None
    if state == "active" and end and end < today:
        state = "past"
    for d in dosage or ():
        rep = (((d or {}).get("timing") or {}).get("repeat") or {})
        period_days = period_days or _period_days(rep)
    cycles = None
    for ext in r.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == COMPLETED_CYCLES_URL and isinstance(ext.get("valueInteger"), int):
            cycles = ext["valueInteger"]
    return MedEpisode(fp.reference_of(r), ingredients, classes, state, start, end, text, rtype, cycles, period_days,
                      moieties)


def _period_days(repeat: dict) -> float | None:
    period, unit = fp.finite_number(repeat.get("period")), repeat.get("periodUnit")
    if period is None or period <= 0 or (repeat.get("frequency") not in (None, 1)):
        return None
    factor = _PERIOD_UNIT_DAYS.get(unit)
    if not factor:
        return None
    days = period * factor
    return days if math.isfinite(days) else None


# -- draft orders -------------------------------------------------------------------

# A bound on the drafts remembered with one history (``draft_orders``' ``readings``): a chart's
# order composer holds a handful; a client sending ever new drafts over one record starts it over.
DRAFT_READINGS = 256


def draft_orders(context: dict, medications: dict[str, dict], t: Terminology, today: dt.date,
                 readings: dict | None = None) -> tuple[Derived, list[DraftOrder], list[DraftOrder]]:
    """draft.* (the selected drafts) and draft.all.*; returns (facts, all drafts, selected drafts).

    The sandbox omits ``intent``, ``status`` and ``subject`` on drafts, so a
    draft is validated leniently: its problems are findings, it is still read.
    ``readings``: how each draft was read, kept with the remembered history
    (its Medications, today and the knowledge are the history's): every
    selection in the order composer sends the earlier drafts again, and
    order-sign all of them.
    """
    out = Derived()
    drafts: list[DraftOrder] = []
    unchecked: list[tuple[str, str]] = []
    patient = context.get("patientId") or "unknown"
    for res in draft_entries(context):
        if res.get("resourceType") not in ("MedicationRequest",):
            continue
        ref = fp.reference_of(res)
        problem, e, unreadable, label = _draft_reading(res, patient, medications, t, today, readings)
        if problem and unreadable:
            # What it orders could not be read: it may be a drug the advice checks.
            out.finding(problem[0], problem[1].replace("; skipped", "; read leniently"), (ref,))
        elif problem:
            # Read leniently with nothing lost: the sandbox sends category as an object, its
            # Rx View draft has no medication[x] until a drug is picked, and a draft for a drug
            # outside the catalogue (naproxen) is not one the advice reads.  The integrator's
            # business, logged by the shell; not a "could not be read" card above the clinician's advice.
            out.notice(problem[0], "draft order read leniently", (ref,))
        if e is None:
            if label and not unreadable:
                unchecked.append((label, draft_ref_of(ref)))
            continue
        drafts.append(DraftOrder(ref, e.ingredients, e.classes, e.text, e.moieties))
    selections = context.get("selections")
    chosen = drafts
    if isinstance(selections, list):
        wanted = {s for s in selections if isinstance(s, str)}
        chosen = [d for d in drafts if d.resource_ref in wanted]
    for prefix, group in (("draft", chosen), ("draft.all", drafts)):
        refs = [draft_ref(d) for d in group]
        out.set(f"{prefix}.ingredients", sorted({i for d in group for i in d.ingredients}), refs)
        out.set(f"{prefix}.classes", sorted({k for d in group for k in d.classes}), refs)
    # The same active drug in two drafts (Phesgo and IV trastuzumab; two trastuzumab orders).
    seen: dict[str, list[str]] = {}
    for d in drafts:
        for m in set(d.moieties or d.ingredients):
            seen.setdefault(m, []).append(draft_ref(d))
    twice = {m: refs for m, refs in seen.items() if len(refs) > 1}
    out.set("draft.all.duplicates", sorted(twice), [r for refs in twice.values() for r in refs])
    # Knowledge file §2.6, unknown drafts: an antineoplastic order (ATC L01/L02) the catalogue does
    # not know is never dropped in silence; the rules say which order was not checked.
    out.set("draft.unchecked", [label for label, _ in unchecked], [r for _, r in unchecked])
    return out, drafts, chosen


def draft_ref(d: DraftOrder) -> str:
    """How a fact cites a draft: it is in the hook context, not on the FHIR server."""
    return draft_ref_of(d.resource_ref)


def draft_ref_of(resource_ref: str) -> str:
    return DRAFT_REF + resource_ref.split("/", 1)[-1]


def _draft_reading(res: dict, patient: str, medications: dict[str, dict], t: Terminology, today: dt.date,
                   readings: dict | None) -> tuple[tuple[str, str] | None, MedEpisode | None, bool, str | None]:
    """One draft read: (its R4 problem if any, its episode, whether it was unreadable, the unchecked label).

    A function of the draft's content and the patient id (the lenient subject), given
    the record's Medications, today and the knowledge: remembered in ``readings``
    under the draft's orjson bytes when it has plain JSON content.
    """
    key = None
    if readings is not None and isinstance(patient, str):  # a patientId no schema checked: read, not remembered
        content = fp.json_bytes(res)  # None: not plain JSON (an integer beyond 64 bits), read, not remembered
        if content is not None:
            key = (content, patient)
            held = readings.get(key)
            if held is not None:
                return held
    lenient = dict(res)
    lenient.setdefault("intent", "order")  # the sandbox omits intent
    lenient.setdefault("status", "draft")
    lenient.setdefault("subject", {"reference": f"Patient/{patient}"})
    problem = fp.check_r4(lenient)
    unreadable = False
    try:
        e = episode(res, medications, t, today, draft=True)
    except (AttributeError, TypeError, ValueError):
        e, unreadable = None, True
    label = _unchecked_antineoplastic(res, medications, t) if e is None else None
    reading = (problem, e, unreadable, label)
    if key is not None:
        if len(readings) >= DRAFT_READINGS:
            readings.clear()
        readings[key] = reading
    return reading


def _unchecked_antineoplastic(res: dict, medications: dict[str, dict], t: Terminology) -> str | None:
    """The display text of a draft coded as an antineoplastic (ValueSet antineoplastic-atc) that no catalogue entry matched."""
    concept, _ = _medication_concept(res, medications)
    codings = fp.codings(concept) if isinstance(concept, dict) else []
    if not any(t.in_valueset("antineoplastic-atc", c.get("system"), str(c.get("code", ""))) for c in codings):
        return None
    return next(iter(fp.texts(concept)), None) or next((str(c.get("code")) for c in codings), None)


# -- cycles and courses -------------------------------------------------------------

# A drug's one standard schedule (docetaxel every 3 weeks in HER2+ MBC, CLEOPATRA) is
# CodeSystem-ingredient's ``standard-schedule``: a course with dates but no timing is then
# estimated at it (and said to be an estimate).  Paclitaxel has none (weekly or 3-weekly).


@dataclass(frozen=True)
class CycleCount:
    """How many cycles (or weeks) a course had, and how sure that is.

    ``estimated`` is True unless each cycle was recorded (one administration
    per cycle, or the completed-cycles extension): counts from a dosage timing
    or from the course dates assume every scheduled dose was given.
    ``schedule`` is weekly | 3-weekly | other | unknown; weekly courses have
    ``weeks``, never ``cycles``.  ``days`` runs from the first dose to the
    last dose (administrations), the end of the course, or today while active.
    """

    cycles: int | None
    note: str
    estimated: bool = False
    schedule: str = "unknown"
    weeks: int | None = None
    days: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    administrations: int = 0


def _schedule_of_period(days: float, params: CriteriaParameters) -> str:
    if days < params.min_cycle_gap_days:
        return "weekly"
    cycle = params.three_weekly_cycle_days
    return "3-weekly" if abs(days - cycle) <= params.schedule_tolerance_days else "other"


def _schedule(episodes: list[MedEpisode], admin: list[dt.date], params: CriteriaParameters,
              standard: Mapping[str, str]) -> tuple[str, str]:
    """(schedule, what it was read from): administrations' spacing, then timing, then the drug's standard."""
    gaps = [(b - a).days for a, b in zip(admin, admin[1:])]
    if gaps:
        if min(gaps) < params.min_cycle_gap_days:
            return "weekly", "administrations"
        median = sorted(gaps)[len(gaps) // 2]
        return _schedule_of_period(median, params), "administrations"
    period = next((e.period_days for e in episodes if e.period_days), None)
    if period:
        return _schedule_of_period(period, params), "dosage timing"
    ingredients = {i for e in episodes for i in e.ingredients}
    defaults = {standard.get(i, "unknown") for i in ingredients}
    if len(defaults) == 1 and "unknown" not in defaults:
        return defaults.pop(), "standard schedule of " + "/".join(sorted(ingredients))
    return "unknown", "no timing or administrations"


def count_cycles(episodes: list[MedEpisode], today: dt.date, params: CriteriaParameters,
                 standard: Mapping[str, str]) -> CycleCount:
    """Completed cycles (or weeks) of the episodes of one course, and how they were counted.

    In this order (knowledge file, "Line of therapy"): the completed-cycles
    extension (largest); one cycle per administration, when the
    administrations cover the course (weekly spacing → counted in weeks, never
    in cycles); the dosage timing's interval from the first dose to the end or
    today, ⌊days/interval⌋ (+1 for an ended course: the timing's period bounds
    the doses); otherwise an estimate from the course dates on a 3-weekly
    schedule, ⌊days/21⌋, +1 only when the last dose date is known (a dated
    administration at the end): a period without timing ends when the drug was
    stopped, not necessarily at a dose.  Unknown schedule: no count.
    """
    dated = [e for e in episodes if e.start]
    admin = sorted({e.start for e in dated if e.kind == "MedicationAdministration"})
    others = [e for e in dated if e.kind != "MedicationAdministration"]
    start = min((e.start for e in dated), default=None)
    active = any(e.state == "active" for e in episodes)
    if start is None:
        end = None
    elif active:
        end = today
    elif admin or any(e.end for e in dated):
        end = max([e.end for e in dated if e.end] + admin)
    else:
        end = None  # a past record with only a start: its length is unknown
    end = min(end, today) if end else None
    days = (end - start).days if start and end and end >= start else None
    schedule, basis = _schedule(episodes, admin, params, standard)
    base = dict(schedule=schedule, days=days, start=start, end=end, administrations=len(admin))

    explicit = [e.cycles for e in episodes if e.cycles is not None]
    if explicit:
        return CycleCount(max(explicit), "completed-cycles extension", **base)
    # Administrations cover the course unless another record of it started
    # well before the first one (only the later doses were charted).
    covered = bool(admin) and not any(e.start < admin[0] - dt.timedelta(days=params.min_cycle_gap_days)
                                      for e in others)
    if covered:
        if schedule == "weekly":
            return CycleCount(None, f"{len(admin)} administrations at weekly spacing: counted in weeks, not cycles",
                              weeks=len(admin), **base)
        return CycleCount(len(admin), "one administration per cycle", **base)
    if days is None:
        return CycleCount(None, "no administrations, cycle extension or dated course", **base)
    period = next((e.period_days for e in episodes if e.period_days), None)
    if schedule == "weekly":
        weeks = math.floor(days / 7) + (1 if period or admin else 0)
        return CycleCount(None, f"weekly dosing ({basis}): counted in weeks, not cycles", True, weeks=weeks, **base)
    # Completed cycles: one per interval from the first dose to the end (or today);
    # +1 only when the end is a known dose date (a dated administration).
    last_dose_known = bool(admin) and admin[-1] == end
    if period:
        # A timing's period bounds the doses (one at its start, one every interval up to its
        # end): an ended course counts the dose at the end too; a running one counts the
        # cycles completed by today (today's dose is the order being drafted).
        n = math.floor(days / period) + (1 if last_dose_known or not active else 0)
        return CycleCount(n, f"every {period:g} days from {start} to {end} (dosage timing)", True, **base)
    if schedule == "3-weekly":
        n = math.floor(days / params.three_weekly_cycle_days) + (1 if last_dose_known else 0)
        return CycleCount(n, f"estimated from the course {start} to {end} at 3-weekly dosing ({basis})", True, **base)
    return CycleCount(None, f"schedule unknown ({basis}): cycles not derivable", **base)


def courses(episodes: list[MedEpisode], lines: list[Line], line_of: dict[str, int],
            today: dt.date, params: CriteriaParameters, standard: Mapping[str, str]) -> list[Course]:
    """Every dated episode as part of one course, sorted by start.

    ``line_of`` names the line of the anti-HER2 episodes the line derivation
    used; any other episode belongs to the last line started by its start
    (a taxane up to ``line-of-therapy-window-days`` before, as in
    ``taxane.cycles``).  Administrations of one drug in one line are one course.
    """
    window = dt.timedelta(days=params.line_of_therapy_window_days)

    def line_number(e: MedEpisode) -> int | None:
        if e.ref in line_of:
            return line_of[e.ref]
        if e.start is None:
            return None
        started = [ln for ln in lines if ln.start - window <= e.start and (ln.end is None or e.start < ln.end)]
        return started[-1].number if started else None

    groups: dict[tuple, list[tuple[MedEpisode, int | None]]] = {}
    for e in episodes:
        if e.start is None:
            continue
        n = line_number(e)
        key = ("admin", e.ingredients, n) if e.kind == "MedicationAdministration" else ("record", e.ref)
        groups.setdefault(key, []).append((e, n))
    out = []
    for members in _same_course(list(groups.values()), today):
        eps = [e for e, _ in members]
        n = members[0][1]
        first = eps[0]
        active = any(e.state == "active" for e in eps)
        ends = [e.end or e.start for e in eps]
        count = count_cycles(eps, today, params, standard)
        doses = tuple(sorted(e.start for e in eps if e.kind == "MedicationAdministration"))
        out.append(Course(
            ingredients=first.ingredients, classes=first.classes, state="active" if active else "past",
            start=min(e.start for e in eps),
            end=None if any(e.state == "active" and e.end is None for e in eps) else max(ends),
            refs=tuple(e.ref for e in eps), text=first.text, cycles=count.cycles, cycle_note=count.note,
            cycles_estimated=count.estimated, schedule=count.schedule, weeks=count.weeks,
            period_days=next((e.period_days for e in eps if e.period_days), None), doses=doses, line=n))
    out.sort(key=lambda c: (c.start, c.ingredients))
    return out


def _same_course(groups: list[list[tuple[MedEpisode, int | None]]],
                 today: dt.date) -> list[list[tuple[MedEpisode, int | None]]]:
    """Groups of one drug in one line whose dates overlap, joined: one course, however it was charted.

    An infusion suite charts each dose (MedicationAdministrations) while the
    medication list holds the course (a MedicationStatement): the same six
    docetaxel cycles, not twelve (issue 22).  ``taxane.cycles`` counts such
    records together; the courses the page and the timeline show must too.
    Groups that do not overlap (a restart after a gap) stay separate courses.
    """
    def span(members):
        eps = [e for e, _ in members]
        start = min(e.start for e in eps)
        end = today if any(e.state == "active" and e.end is None for e in eps) else max(e.end or e.start for e in eps)
        return start, end

    by_drug: dict[tuple, list[list[tuple[MedEpisode, int | None]]]] = {}
    for members in groups:
        by_drug.setdefault((members[0][0].ingredients, members[0][1]), []).append(members)
    out = []
    for same in by_drug.values():
        same.sort(key=lambda m: span(m)[0])
        merged = [list(same[0])]
        end = span(same[0])[1]
        for members in same[1:]:
            start, stop = span(members)
            if start <= end:
                merged[-1].extend(members)
                end = max(end, stop)
            else:
                merged.append(list(members))
                end = stop
        out.extend(merged)
    return out
