"""The profile's types: what criteria hands to the rules, the cards and the SMART app.

``PatientProfile.facts`` is the contract with ``rules`` (docs/architecture.md);
``lines`` and ``courses`` are the same derivation shown as a history, so the
timeline and ``her2-cds profile`` never compute a line of therapy themselves.
``Derived`` is the small collector each clinical-domain step returns: the
facts and findings that step is responsible for, nothing else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping


# How a fact cites a draft order: it is in the hook context, not on the FHIR server
# (``medications.draft_ref_of`` writes it; cards read a reference so named as a draft).
DRAFT_REF = "context.draftOrders/"

@dataclass(frozen=True)
class Fact:
    """One derived fact: the value, the FHIR references behind it, and an optional why."""

    value: Any
    refs: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Finding:
    """A data-quality problem the clinician (or the integrator) should know about."""

    code: str
    message: str
    refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class DraftOrder:
    """A draft MedicationRequest of this hook call, normalized like the history."""

    resource_ref: str  # MedicationRequest/<id>: what a card's delete action names
    ingredients: tuple[str, ...]
    classes: tuple[str, ...]
    text: str
    moieties: tuple[str, ...] = ()  # see MedEpisode.moieties


@dataclass(frozen=True)
class MedEpisode:
    """One medication record (statement, request or administration) normalized to ingredients."""

    ref: str
    ingredients: tuple[str, ...]
    classes: tuple[str, ...]
    state: str  # active | past
    start: dt.date | None
    end: dt.date | None
    text: str
    kind: str  # MedicationStatement | MedicationRequest | MedicationAdministration
    cycles: int | None = None  # explicit completed-cycles extension
    period_days: float | None = None  # dosing interval (timing.repeat), when given
    # The active drugs, whatever the formulation: Phesgo is trastuzumab + pertuzumab, not a third
    # agent, so a switch from IV trastuzumab + pertuzumab to Phesgo continues the line (§2.6).
    moieties: tuple[str, ...] = ()


@dataclass(frozen=True)
class Course:
    """One drug given over a stretch of time: what the timeline draws as one bar.

    Built from one MedicationStatement/MedicationRequest, or from the
    MedicationAdministrations of one drug (one dose each; ``doses`` holds their
    dates).  ``cycles`` is the profile's count (the same rule as
    ``taxane.cycles``), ``None`` when not derivable; ``cycle_note`` says how.
    """

    ingredients: tuple[str, ...]
    classes: tuple[str, ...]
    state: str  # active | past
    start: dt.date | None
    end: dt.date | None  # None while active (ongoing)
    refs: tuple[str, ...]
    text: str
    cycles: int | None = None
    cycle_note: str | None = None
    period_days: float | None = None
    doses: tuple[dt.date, ...] = ()
    line: int | None = None  # the metastatic line of therapy it belongs to, if any
    cycles_estimated: bool = False  # cycles assume every scheduled dose was given (not one record per cycle)
    schedule: str = "unknown"  # weekly | 3-weekly | other | unknown
    weeks: int | None = None  # weekly courses: weeks (doses) given, never converted into cycles


@dataclass(frozen=True)
class Line:
    """One metastatic-setting line of therapy on record (anti-HER2 regimens, see ``lines``).

    ``ingredients`` are the anti-HER2 agents that define the line (what line
    continuity compares); ``regimen`` adds their partners given in the same line
    (the taxane of THP, capecitabine, endocrine therapy), as the courses assign
    them, so a page names "docetaxel + pertuzumab + trastuzumab", not the
    antibodies alone (issue 22).
    """

    number: int
    start: dt.date
    end: dt.date | None  # the next line's start; None while the line is ongoing
    ingredients: tuple[str, ...]
    refs: tuple[str, ...]
    regimen: tuple[str, ...] = ()


@dataclass(frozen=True)
class PatientProfile:
    """Immutable profile; ``facts`` is the only thing the rules read."""

    patient_id: str | None
    facts: Mapping[str, Fact]
    findings: tuple[Finding, ...] = ()
    draft_orders: tuple[DraftOrder, ...] = ()
    medications: tuple[MedEpisode, ...] = ()
    lines: tuple[Line, ...] = ()
    courses: tuple[Course, ...] = ()
    # reference → what the intake read it as (an Observation's ValueSet kind,
    # "menopausal", or a Condition's ValueSet): the timeline labels by these
    kinds: Mapping[str, str] = field(default_factory=dict)
    progression: tuple[tuple[dt.date, str], ...] = ()  # (date, reference) of each "worsened" result
    # What the integrator should hear about and the clinician need not (a draft read leniently):
    # the shell logs these; they never become cards.  The core itself does not log.
    notices: tuple[Finding, ...] = ()
    # Type/id → resource: what the intake accepted for a clinical domain (Bundles opened, duplicates
    # dropped, relevant by type and code, valid FHIR R4), in the order read.  Not in it: a resource
    # that became a malformed-resource / non-r4-resource finding, this call's drafts, a resource
    # without an id.  One caveat: the newest-wins results (ECOG, liver tests, ANC) are validated
    # when their reader reaches them, so an older one behind a usable newer one is kept unvalidated;
    # no fact names it.  Cards, presenter and timeline read resources here, never the raw prefetch.
    records: Mapping[str, dict] = field(default_factory=dict)
    # The facts this call derived from its drafts (the rest are the record's, the same for every
    # call with this record and date); None when unknown: then every fact counts as per call.
    per_call_facts: frozenset[str] | None = None
    # What is derived from the record alone, kept for every profile of one remembered history so
    # the chart's later hooks do not derive it again: the cards' descriptions of the records
    # (``cards.Descriptions``) and the rules the record rules out (``advice``).  A cache, keyed by
    # its users; never compared.
    history_cache: dict = field(default_factory=dict, compare=False, repr=False)

    def value(self, name: str, default: Any = None) -> Any:
        fact = self.facts.get(name)
        return default if fact is None else fact.value

    def to_json(self) -> dict:
        """A JSON-able view (for the CLI and debugging)."""
        return {
            "patientId": self.patient_id,
            "facts": {k: {"value": f.value, "refs": list(f.refs), **({"note": f.note} if f.note else {})}
                      for k, f in self.facts.items()},
            "findings": [{"code": f.code, "message": f.message, "refs": list(f.refs)} for f in self.findings],
            "draftOrders": [{"resourceRef": d.resource_ref, "ingredients": list(d.ingredients),
                             "classes": list(d.classes), "text": d.text} for d in self.draft_orders],
            "medications": [{"ref": m.ref, "ingredients": list(m.ingredients), "state": m.state,
                             "start": iso_date(m.start), "end": iso_date(m.end), "text": m.text}
                            for m in self.medications],
            "lines": [{"number": ln.number, "start": iso_date(ln.start), "end": iso_date(ln.end),
                       "ingredients": list(ln.ingredients), "regimen": list(ln.regimen), "refs": list(ln.refs)} for ln in self.lines],
            "courses": [{"ingredients": list(c.ingredients), "state": c.state, "start": iso_date(c.start),
                         "end": iso_date(c.end), "line": c.line, "cycles": c.cycles,
                         "cyclesEstimated": c.cycles_estimated, "schedule": c.schedule, "weeks": c.weeks,
                         **({"cycleNote": c.cycle_note} if c.cycle_note else {}), "refs": list(c.refs)}
                        for c in self.courses],
        }


def iso_date(d: dt.date | None) -> str | None:
    """A date as the profile stores and exports it (ISO 8601), or None."""
    return d.isoformat() if d else None


@dataclass
class Derived:
    """The facts and findings of one pipeline step, in the order it set them."""

    facts: dict[str, Fact] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    notices: list[Finding] = field(default_factory=list)

    def set(self, name: str, value: Any, refs: Iterable[str] = (), note: str | None = None) -> None:
        self.facts[name] = Fact(value, tuple(dict.fromkeys(refs)), note)

    def finding(self, code: str, message: str, refs: Iterable[str] = ()) -> None:
        self.findings.append(Finding(code, message, tuple(refs)))

    def notice(self, code: str, message: str, refs: Iterable[str] = ()) -> None:
        self.notices.append(Finding(code, message, tuple(refs)))

    def value(self, name: str) -> Any:
        f = self.facts.get(name)
        return None if f is None else f.value

    def merge(self, other: "Derived") -> "Derived":
        self.facts.update(other.facts)
        self.findings.extend(other.findings)
        self.notices.extend(other.notices)
        return self
