"""FHIR R4 resources → one explainable HER2 MBC ``PatientProfile``.

The fact names and value vocabularies are the contract with ``rules``
(docs/architecture.md).  Every fact carries the FHIR references it came from,
so a card can say why it fired.  Messy data is expected: coded or text values,
LOINC or SNOMED, final or preliminary, old or new.  When data is missing,
conflicting or unreadable the profile says ``unknown``/``None`` and records a
data-quality ``Finding``; it never guesses a clinical fact.

``build_profile`` is the whole pipeline, one clinical domain per step, each a
pure function of the resources (and of earlier steps' results, passed
explicitly) to facts and findings:

    intake → patient → her2 → receptors → observations → conditions
           → medications (episodes, drafts) → lines (+ taxane) → courses → ILD on T-DXd

The codes come from ``fhir_profiles/terminology`` (a ``Terminology``), the thresholds
from ``fhir_profiles/parameters`` (``CriteriaParameters``): two artifacts, two arguments.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters
from ..knowledge.terminology import Terminology
from .conditions import condition_facts, ild_on_tdxd
from .her2 import her2_facts
from .intake import Intake, draft_ids, read_resources
from .lines import TherapyRecord, therapy_line, therapy_record, with_regimens
from .medications import courses, draft_orders, medication_history
from .observations import observation_facts
from .patient import patient_facts
from .progression import progression_facts
from .profile import Course, Derived, DraftOrder, Fact, Finding, Line, MedEpisode, PatientProfile
from .receptors import receptor_facts

# The finding codes that say a resource could not be read at all (parse.check_r4, the readers).
UNREADABLE = frozenset({"malformed-resource", "non-r4-resource"})

__all__ = ["build_profile", "clear_history_memo", "Course", "DraftOrder", "Fact", "Finding", "Line", "MedEpisode", "PatientProfile"]


def build_profile(resources: list[Any], context: dict | None, terminology: Terminology,
                  parameters: CriteriaParameters, today: dt.date | None = None) -> PatientProfile:
    """Build the profile for one hook call.

    ``resources`` are prefetch/fetch results in any mix (Bundles are opened,
    duplicates by type/id dropped); ``context`` is the CDS Hooks context.
    The part read from the history alone (``_history``) may come from the
    memo; the draft orders, and everything they feed, are read fresh.
    """
    today = today or dt.date.today()
    context = context if isinstance(context, dict) else {}
    t, params = terminology, parameters
    if not isinstance(params, CriteriaParameters):
        raise TypeError("build_profile needs the criteria parameters (knowledge.parameters)")

    h = _remembered_history(resources, context, t, params, today)
    intake = h.intake
    derived = Derived(dict(h.facts), list(h.findings), list(h.notices))
    draft_facts, drafts, chosen = draft_orders(context, intake.medications, t, today,
                                               h.cache.setdefault("draft readings", {}))
    line = therapy_line(h.therapy, chosen)
    derived.merge(draft_facts)
    derived.merge(line)
    derived.merge(h.ild_on_tdxd)
    derived.merge(h.progression_facts)
    codes = sorted({f.code for f in derived.findings})
    derived.set("findings", codes, [r for f in derived.findings for r in f.refs])
    return PatientProfile(
        patient_id=context.get("patientId") or (intake.patient or {}).get("id"),
        facts=MappingProxyType(dict(derived.facts)),
        findings=tuple(derived.findings),
        draft_orders=tuple(drafts),
        medications=h.episodes,
        lines=h.lines,
        courses=h.courses,
        kinds=MappingProxyType(dict(intake.kinds)),
        progression=h.progression,
        notices=tuple(derived.notices),
        records=h.records,
        per_call_facts=frozenset(draft_facts.facts) | frozenset(line.facts) | {"findings"},
        history_cache=h.cache,
    )


@dataclass(frozen=True)
class _History:
    """What the record says before the drafts are read: a function of (resources, the draft ids on record, today, knowledge).

    Its facts, findings and notices are a snapshot; ``build_profile`` copies
    them into a fresh ``Derived`` before adding the draft-dependent steps, so
    one call never changes what the next one is given.
    """

    intake: Intake
    facts: tuple[tuple[str, Fact], ...]
    findings: tuple[Finding, ...]
    notices: tuple[Finding, ...]
    progression: tuple
    episodes: tuple[MedEpisode, ...]
    records: Mapping[str, dict]  # PatientProfile.records: what the domains accepted and could read
    size: int  # records held, for the memo's bound
    # ild.on_tdxd*: from the ILD conditions and the medication history alone (merged by
    # build_profile where it always was, after the draft-dependent therapy facts).
    ild_on_tdxd: Derived = field(default_factory=Derived)
    # The lines of therapy on record and all that follows from them: the therapy facts but
    # therapy.line's draft decision (``lines.therapy_line``, per call), the progression facts,
    # the courses and the lines with their regimens.  The drafts never change the lines on
    # record (a drafted regimen is counted by therapy.line, not listed), so these are the
    # history's; deriving them again was about half of a warm call's criteria.
    therapy: TherapyRecord | None = None
    progression_facts: Derived = field(default_factory=Derived)
    courses: tuple[Course, ...] = ()
    lines: tuple[Line, ...] = ()
    # PatientProfile.history_cache: what cards and rules derive from this record alone
    cache: dict = field(default_factory=dict, compare=False, repr=False)


def _history(resources: list[Any], context: dict, t: Terminology, params: CriteriaParameters,
             today: dt.date) -> _History:
    intake = read_resources(resources, context, t)
    derived = Derived().merge(intake.out)
    derived.merge(patient_facts(intake.patient, intake.menopausal, t, params, today, intake.oophorectomy))
    derived.merge(her2_facts(intake, t, params))
    derived.merge(receptor_facts(intake, t, params))
    observed, progression = observation_facts(intake, t, params, today)
    derived.merge(observed)
    conditions, ild_conditions = condition_facts(intake, t, params, today)
    derived.merge(conditions)
    med_facts, episodes = medication_history(intake, t, params, today)
    derived.merge(med_facts)
    # A resource a domain found unreadable after the intake accepted it (a newest-wins result
    # invalid as R4 once reached, a medication record that could not be read) is a finding,
    # not a record: the page lists it under the findings, never as a source.
    unreadable = {ref for f in derived.findings if f.code in UNREADABLE for ref in f.refs}
    records = MappingProxyType({ref: r for ref, r in intake.records.items() if ref not in unreadable})
    therapy = therapy_record(episodes, [d for d, _ in progression], conditions, today, t, params)
    lines, line_of = therapy.history.lines, therapy.history.line_of
    course_list = tuple(courses(episodes, list(lines), line_of, today, params, t.standard_schedules))
    return _History(intake, tuple(derived.facts.items()), tuple(derived.findings), tuple(derived.notices),
                    tuple(progression), tuple(episodes), records, len(records) + 1,
                    ild_on_tdxd=ild_on_tdxd(ild_conditions, episodes, t), therapy=therapy,
                    progression_facts=progression_facts(progression, lines, intake, t, params),
                    courses=course_list, lines=with_regimens(lines, course_list, t.anticancer_classes))


# The memo of ``_history`` (issue 23).  order-select fires on every selection in the order
# composer with the same prefetch and new drafts, and a chart's later hooks repeat the prefetch:
# reading the record again gives the same answer.  The key is the content of every resource
# (orjson bytes, so 1, 1.0 and true differ), today (ages, "current" medications) and the loaded
# terminology and parameters (the entry keeps them and is used only for those same objects, so a
# reloaded knowledge folder never meets an old entry).  The bytes themselves are the key: the
# dict hashes them (SipHash, about 9 µs for 40 KB, against 43 µs for blake2b) and compares them
# whole on a hit, so two records can never share an entry.  Within an entry, one history per set
# of this call's draft ids that name a prefetched MedicationRequest (the intake leaves those out
# of the history); any other draft id changes nothing the history reads, so the next selection
# (a new draft over the same prefetch) finds it remembered.  The drafts themselves, and all that
# depends on them (the draft facts, therapy.line's decision whether a drafted regimen starts a new
# line), are read fresh on every call.  Bounded by weight, oldest out first: a history weighs the
# records it holds (a 1,000-resource patient weighs 1,000; about 4 KB each measured at 1,000
# resources, more with what the history derives), and an entry's key one more for every started
# 4 KB of its bytes, which hold every resource sent, read or not (a prefetch of vital signs or a
# DocumentReference with its attachment weighs by its size, not as one record).  5,000 is then
# 20–40 MB per worker: about sixty typical charts, or a few very large ones.
HISTORY_MEMO_RECORDS = 5_000
_KEY_BYTES_PER_WEIGHT = 4096


@dataclass
class _Remembered:
    """The histories of one record (its resources' bytes, today, the knowledge), by the drafts that name its records."""

    terminology: Terminology
    parameters: CriteriaParameters
    on_record: frozenset[str]  # Intake.medication_requests: the references a draft id can take out
    key_weight: int  # the key's bytes, one for every started 4 KB (see HISTORY_MEMO_RECORDS)
    by_drafts: dict[tuple[str, ...], _History] = field(default_factory=dict)

    def named(self, drafts: set[str]) -> tuple[str, ...]:
        return tuple(sorted(drafts & self.on_record))

    @property
    def size(self) -> int:
        return self.key_weight + sum(h.size for h in self.by_drafts.values())


_memo: OrderedDict[tuple, _Remembered] = OrderedDict()
_memo_records = 0
_memo_lock = threading.Lock()


def clear_history_memo() -> None:
    """Forget every remembered history (benchmarks measure the cold path with this)."""
    global _memo_records
    with _memo_lock:
        _memo.clear()
        _memo_records = 0


def _memo_key(resources: list[Any], t: Terminology, params: CriteriaParameters, today: dt.date) -> tuple | None:
    record = fp.json_bytes(resources)
    if record is None:
        return None  # not plain JSON (an integer beyond 64 bits): read without the memo
    return record, today.toordinal(), id(t), id(params)


def _remembered_history(resources: list[Any], context: dict, t: Terminology, params: CriteriaParameters,
                        today: dt.date) -> _History:
    global _memo_records
    key = _memo_key(resources, t, params, today)
    drafts = draft_ids(context)
    if key is not None:
        with _memo_lock:
            entry = _memo.get(key)
            if entry is not None and entry.terminology is t and entry.parameters is params:
                h = entry.by_drafts.get(entry.named(drafts))
                if h is not None:
                    _memo.move_to_end(key)
                    return h
    h = _history(resources, context, t, params, today)
    key_weight = 0 if key is None else -(-len(key[0]) // _KEY_BYTES_PER_WEIGHT)
    if key is not None and h.size + key_weight <= HISTORY_MEMO_RECORDS:
        with _memo_lock:
            entry = _memo.get(key)
            if entry is None or entry.terminology is not t or entry.parameters is not params:
                if entry is not None:
                    _memo_records -= entry.size
                entry = _memo[key] = _Remembered(t, params, frozenset(h.intake.medication_requests), key_weight)
                _memo_records += key_weight
            named = entry.named(drafts)
            old = entry.by_drafts.get(named)
            if old is not None:
                _memo_records -= old.size
            entry.by_drafts[named] = h
            _memo_records += h.size
            _memo.move_to_end(key)
            while _memo_records > HISTORY_MEMO_RECORDS and _memo:
                _memo_records -= _memo.popitem(last=False)[1].size
    return h
