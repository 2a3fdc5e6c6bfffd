"""Lines of therapy in the metastatic setting, the current regimen, and the taxane of the current line.

A line is a set of anti-HER2 agents started on or after the metastatic date.
An agent joins the current line when it starts within
``line-of-therapy-window-days`` of the line's start, when it adds nothing new
(a restart of the same agents), or when the line has not been switched.  A
line is *switched* after a progression result ("worsened") or when one of its
agents was stopped.  A drafted anti-HER2 regimen that is new after a switch
is the next line (``therapy.line`` counts it; ``lines`` lists only lines on
record).  The timeline draws exactly these lines.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters
from ..knowledge.terminology import Terminology
from .medications import DAYS_PER_MONTH, count_cycles, draft_ref
from .profile import Course, Derived, DraftOrder, Line, MedEpisode, iso_date


@dataclass
class _Regimen:
    start: dt.date
    ingredients: set[str]
    episodes: list[MedEpisode] = field(default_factory=list)


@dataclass(frozen=True)
class TherapyHistory:
    """What the later steps need from the line derivation."""

    lines: tuple[Line, ...]
    line_of: dict[str, int]  # anti-HER2 episode ref → its line number


@dataclass(frozen=True)
class TherapyRecord:
    """The therapy facts the record alone decides, and what the draft orders' line decision needs.

    ``before`` and ``after`` are the facts set before and after ``therapy.line``
    (kept apart so the profile lists the facts in the same order as ever).
    A function of the history (episodes, metastatic date, progression, today),
    so the history memo keeps it; ``therapy_line`` adds the drafts, per call.
    """

    before: Derived
    after: Derived
    history: TherapyHistory
    line: int | None  # therapy.line without the drafts (None where ``note`` says why not)
    note: str | None
    line_refs: tuple[str, ...]
    current: frozenset[str] | None  # the agents of the current line; None where the line is decided without it
    switched: bool  # the current line is switched as of today: a new drafted regimen starts the next line


def therapy_line(record: TherapyRecord, chosen_drafts: list[DraftOrder]) -> Derived:
    """The therapy facts of one call: the record's, with ``therapy.line`` decided for these drafts."""
    out = Derived().merge(record.before)
    line, note = record.line, record.note
    draft_anti = {i for d in chosen_drafts if "anti-her2" in d.classes for i in (d.moieties or d.ingredients)}
    if record.current is not None and draft_anti and not draft_anti <= record.current and record.switched:
        line, note = line + 1, "drafted anti-HER2 regimen follows a switch or progression"
    out.set("therapy.line", line, list(record.line_refs) + [draft_ref(d) for d in chosen_drafts
                                                            if "anti-her2" in d.classes], note)
    return out.merge(record.after)


def therapy_record(episodes: list[MedEpisode], progression: list[dt.date], metastatic: Derived, today: dt.date,
                   t: Terminology, params: CriteriaParameters) -> TherapyRecord:
    """therapy.regimen.ingredients, therapy.prior_metastatic_*, therapy.line and taxane.*, from the record alone.

    ``metastatic`` holds the ``metastatic`` and ``metastatic.date`` facts of
    the conditions step; ``progression`` the dates of "worsened" results;
    ``t`` gives the anticancer drug classes a regimen is made of
    (CodeSystem-drug-class) and the trastuzumab-based ValueSet; ``params`` the windows.
    ``therapy_line`` then decides, per call, whether the drafted regimen starts a new line
    (see ``TherapyRecord``).
    """
    anticancer = t.anticancer_classes
    out = Derived()
    window = params.line_of_therapy_window_days
    met = metastatic.value("metastatic")
    mdate = fp.parse_date(metastatic.value("metastatic.date"))
    anti = [e for e in episodes if "anti-her2" in e.classes]
    regimen = [e for e in episodes if e.state == "active" and set(e.classes) & anticancer]
    out.set("therapy.regimen.ingredients", sorted({i for e in regimen for i in e.ingredients}), [e.ref for e in regimen])
    regimens: list[_Regimen] = []
    if mdate:
        after = sorted((e for e in anti if e.start and e.start >= mdate), key=lambda e: e.start)
        for e in after:
            agents = set(e.moieties or e.ingredients)  # formulation and biosimilar switches are the same agents
            if not regimens:
                regimens.append(_Regimen(e.start, agents, [e]))
                continue
            cur = regimens[-1]
            if (e.start - cur.start).days <= window or agents <= cur.ingredients \
                    or not _switched(cur, e.start, progression, window):
                cur.ingredients |= agents
                cur.episodes.append(e)
            else:
                regimens.append(_Regimen(e.start, agents, [e]))
    chemo = [e for e in episodes if "chemotherapy" in e.classes and mdate and e.start and e.start >= mdate]
    line_refs = [e.ref for r in regimens for e in r.episodes]
    out.set("therapy.prior_metastatic_anti_her2", bool(regimens), line_refs,
            None if mdate or not met else "metastatic date unknown")
    out.set("therapy.prior_metastatic_chemo", bool(chemo), [e.ref for e in chemo])
    endocrine = [e for e in episodes if "endocrine" in e.classes and mdate and e.start and e.start >= mdate]
    out.set("therapy.prior_metastatic_endocrine", bool(endocrine), [e.ref for e in endocrine])
    _adjuvant_relapse(episodes, mdate, params, lambda i: t.ingredient_in("trastuzumab-based", i), out)
    undated_anti = [e for e in anti if e.start is None]
    line: int | None
    note = None
    current: frozenset[str] | None = None
    switched = False
    if not met:
        line, note = None, "not metastatic"
    elif mdate is None:
        line, note = (1, "no anti-HER2 therapy on record") if not anti else (None, "metastatic date unknown")
    elif undated_anti:
        line, note = None, "an anti-HER2 medication has no start date"
    elif not regimens:
        line = 1
    else:
        line = len(regimens)
        current = frozenset(regimens[-1].ingredients)
        switched = _switched(regimens[-1], today, progression, window)
    after_line = Derived()
    _taxane(episodes, regimens[-1].start if regimens else mdate, today, params, after_line, t.standard_schedules)
    history = TherapyHistory(_as_lines(regimens), {e.ref: n for n, r in enumerate(regimens, 1) for e in r.episodes})
    return TherapyRecord(out, after_line, history, line, note, tuple(line_refs), current, switched)


def with_regimens(lines: tuple[Line, ...], course_list: Iterable[Course], anticancer: frozenset[str]) -> tuple[Line, ...]:
    """Each line with its whole regimen: its anti-HER2 agents and the anticancer courses of that line."""
    partners: dict[int, set[str]] = {}
    for c in course_list:
        if c.line is not None and set(c.classes) & anticancer:
            partners.setdefault(c.line, set()).update(c.ingredients)
    return tuple(replace(ln, regimen=tuple(sorted(set(ln.ingredients) | partners.get(ln.number, set()))))
                 for ln in lines)


def _adjuvant_relapse(episodes: list[MedEpisode], mdate: dt.date | None, params: CriteriaParameters,
                      trastuzumab_based: Callable[[str], bool], out: Derived) -> None:
    """therapy.adjuvant_relapse_months: from the end of (neo)adjuvant trastuzumab-based therapy to relapse.

    Trastuzumab-based = an ingredient of ValueSet-trastuzumab-based (trastuzumab
    and its biosimilars, Phesgo, T-DM1, T-DXd) in an episode that started more than
    ``line-of-therapy-window-days`` before the metastatic date (a first-line
    regimen started a little before the metastasis was coded is not adjuvant).
    Still active at the metastatic date = relapse during therapy (0 months).
    ASCO 2022 Rec 5.0 treats <= 12 months as second line; the T-DXd label says
    "during or within 6 months of completing therapy".
    """
    name = "therapy.adjuvant_relapse_months"
    if mdate is None:
        out.set(name, None)
        return
    cutoff = mdate - dt.timedelta(days=params.line_of_therapy_window_days)
    adjuvant = [e for e in episodes if e.start and e.start < cutoff
                and any(trastuzumab_based(i) for i in e.ingredients)]
    ends = [min(e.end, mdate) if e.end else mdate for e in adjuvant if e.end or e.state == "active"]
    refs = [e.ref for e in adjuvant]
    if not ends:
        out.set(name, None, refs, "adjuvant anti-HER2 therapy without an end date" if adjuvant else None)
        return
    last = max(ends)
    out.set(name, round((mdate - last).days / DAYS_PER_MONTH, 1), refs,
            f"last adjuvant trastuzumab-based therapy ended {last}, metastatic {mdate}")


def _as_lines(regimens: list[_Regimen]) -> tuple[Line, ...]:
    """A line ends where the next starts; the last ends with its last agent, or is ongoing."""
    lines = []
    for n, r in enumerate(regimens, 1):
        if n < len(regimens):
            end = regimens[n].start
        elif any(e.state == "active" for e in r.episodes):
            end = None
        else:
            end = max((e.end or e.start) for e in r.episodes)
        lines.append(Line(n, r.start, end, tuple(sorted(r.ingredients)), tuple(e.ref for e in r.episodes)))
    return tuple(lines)


def _switched(regimen: _Regimen, when: dt.date, progression: list[dt.date], window: int) -> bool:
    """A new line starts after progression, or when an anti-HER2 agent of the line was stopped."""
    if any(regimen.start < p <= when for p in progression):
        return True
    return any(e.state == "past" and e.end and e.end <= when + dt.timedelta(days=window) for e in regimen.episodes)


def _taxane(episodes: list[MedEpisode], anchor: dt.date | None, today: dt.date, params: CriteriaParameters,
            out: Derived, standard: Mapping[str, str]) -> None:
    """taxane.* of the taxane episodes of the current line (see ``count_cycles``).

    ``taxane.cycles`` with ``taxane.cycles_estimated`` (a count the rules must
    word as an estimate), ``taxane.schedule``, ``taxane.weeks`` (weekly: never
    cycles), ``taxane.days`` from the first dose, ``taxane.course_ended``,
    and ``taxane.drug``/``taxane.start``/``taxane.end`` for the card wording.
    """
    window = dt.timedelta(days=params.line_of_therapy_window_days)
    tax = [e for e in episodes if "taxane" in e.classes
           and (anchor is None or (e.start and e.start >= anchor - window))]
    refs = [e.ref for e in tax]
    if not tax:
        out.set("taxane.cycles", None, (), "no taxane in the current line")
        for name in ("taxane.months", "taxane.weeks", "taxane.days", "taxane.drug", "taxane.start", "taxane.end",
                     "taxane.days_since_end"):
            out.set(name, None)
        out.set("taxane.cycles_estimated", False)
        out.set("taxane.schedule", "unknown")
        out.set("taxane.course_ended", False)
        return
    starts = [e.start for e in tax if e.start]
    ends = [(e.end if e.end else (today if e.state == "active" else e.start)) for e in tax if e.start]
    months = None
    if starts and all(ends):
        months = round((min(max(ends), today) - min(starts)).days / DAYS_PER_MONTH, 1)
    out.set("taxane.months", months, refs)
    count = count_cycles(tax, today, params, standard)
    out.set("taxane.cycles", count.cycles, refs, count.note)
    out.set("taxane.cycles_estimated", count.estimated and count.cycles is not None, refs, count.note)
    out.set("taxane.schedule", count.schedule, refs)
    out.set("taxane.weeks", count.weeks, refs, count.note if count.weeks is not None else None)
    out.set("taxane.days", count.days, refs)
    out.set("taxane.drug", "/".join(sorted({i for e in tax for i in e.ingredients})), refs)
    out.set("taxane.start", iso_date(count.start), refs)
    out.set("taxane.end", iso_date(count.end), refs)
    ended = not any(e.state == "active" for e in tax) and count.end is not None
    out.set("taxane.days_since_end", (today - count.end).days if ended else None, refs)
    out.set("taxane.course_ended", not any(e.state == "active" for e in tax) and count.end is not None, refs)
