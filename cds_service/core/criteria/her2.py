"""HER2: every final IHC, ISH and interpretation result → one status per ASCO/CAP 2018/2023.

Results are grouped per specimen (or per date when no specimen is named); a
lone ISH is paired with a nearby IHC as its reflex test
(``reflex-ish-pairing-days``).  Each group is evaluated on its own, then the
newest group wins; groups that disagree are a ``her2-conflict`` finding and
same-day disagreement leaves the status unknown rather than guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters
from ..knowledge.terminology import Terminology
from .intake import Intake
from .profile import Derived
from .readings import answer, is_final

# A tuple, not a set: the results are grouped in this order, and a set's order
# changes from one process to the next (string hashing is randomized), which
# made the order of a fact's references vary between runs.
HER2_KINDS = ("her2-interpretation", "her2-ihc", "her2-ish", "her2-ish-ratio", "her2-copy-number")
# The IHC score as a number: "2+", "3 +", a lone "0".."3" or "score 1".  Notation, not clinical words:
# the digit read is the score itself, so these stay here; the words written around a zero
# ("0 (null)", "Negative (0)") and HER2-ultralow ("0 (ultralow)", ">0 <1+", "0 with membrane
# staining") are report-text patterns of ConceptMap-report-text (targets her2-ihc-0, her2-ihc-ultralow).
_SCORE = re.compile(r"(?<![\d.])([0-3])\s*\+")
_LONE_SCORE = re.compile(r"^\s*(?:score\s*)?([0-3])\s*$", re.IGNORECASE)
REPORT_TEXT = "report-text"  # ConceptMap-report-text


@dataclass
class _Her2Item:
    ref: str
    date: dt.date | None
    specimen: str | None
    kind: str
    value: Any  # ihc: ("score", "2+"[, "ultralow"]) / ("answer", "positive"); ish: answer; ratio/copies: float; interp: answer


@dataclass
class _Her2Group:
    key: Any
    items: list[_Her2Item] = field(default_factory=list)

    @property
    def date(self) -> dt.date | None:
        dates = [i.date for i in self.items if i.date]
        return max(dates) if dates else None

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.ref for i in self.items))

    def kinds(self) -> set[str]:
        return {i.kind for i in self.items}


@dataclass
class _Her2Result:
    date: dt.date | None
    status: str  # positive | low | zero | negative (unscored) | equivocal_pending | unknown
    ihc: str | None
    ultralow: bool
    ish_group: int | None
    refs: tuple[str, ...]
    label: str


def _ihc_value(obs: dict, t: Terminology) -> tuple[str, ...] | None:
    """('score', '0'..'3+') when a score is written anywhere, ('score', '0', 'ultralow'), else ('answer', ...)."""
    candidates = fp.texts(obs.get("valueCodeableConcept"))
    if isinstance(obs.get("valueString"), str):
        candidates.append(obs["valueString"])
    for interp in fp.first_codeable(obs.get("interpretation")):
        candidates += fp.texts(interp)
    # ultralow first, in every text: ">0 <1+" must never be read as the score 1+
    for text in candidates:
        if t.text_states(REPORT_TEXT, text, "her2-ihc-ultralow"):
            return ("score", "0", "ultralow")
    for text in candidates:
        m = _SCORE.search(text) or _LONE_SCORE.match(text)
        if m:
            return ("score", "0" if m.group(1) == "0" else f"{m.group(1)}+")
        if t.text_states(REPORT_TEXT, text, "her2-ihc-0"):
            return ("score", "0")
    n = None
    if "valueInteger" in obs or isinstance(obs.get("valueQuantity"), dict):
        n = fp.number_value(obs)
    if n is not None and n in (0, 1, 2, 3):
        return ("score", "0" if n == 0 else f"{int(n)}+")
    a = answer(obs, t)
    return ("answer", a) if a else None


def _her2_items(obs: dict, kind: str, t: Terminology, out: Derived) -> list[_Her2Item]:
    ref = fp.reference_of(obs)
    date = fp.observation_date(obs)
    specimen = (obs.get("specimen") or {}).get("reference")
    items: list[_Her2Item] = []

    def add(k: str, o: dict) -> None:
        if k == "her2-ihc":
            v = _ihc_value(o, t)
        elif k in ("her2-ish", "her2-interpretation"):
            v = answer(o, t)
        else:
            v = fp.number_value(o)
            if v is not None and v < 0:
                v = None
        if v is None:
            if any(key.startswith("value") for key in o) or o.get("interpretation"):
                out.finding("unparsed-value", f"{ref}: the {k} result could not be read", (ref,))
            return
        items.append(_Her2Item(ref, date, specimen, k, v))

    if any(key.startswith("value") for key in obs) or obs.get("interpretation"):
        add(kind, obs)
    for comp in obs.get("component") or ():
        for c in fp.codings(comp.get("code")):
            sets = t.valuesets_of(c.get("system"), c.get("code"))
            k = next((k for k in HER2_KINDS if k in sets), None)
            if k:
                add(k, comp)
                break
    return items


def her2_facts(intake: Intake, t: Terminology, params: CriteriaParameters) -> Derived:
    """her2.status / .ihc / .ish_group / .negative / .conflict from every final HER2 result."""
    out = Derived()
    items: list[_Her2Item] = []
    for kind in HER2_KINDS:
        for obs in intake.of_kind(kind):
            if is_final(obs, "HER2", out):
                items.extend(_her2_items(obs, kind, t, out))
    groups = _group_her2(items, params.reflex_ish_pairing_days)
    results = [r for r in (_evaluate_her2_group(g, params) for g in groups) if r is not None]
    for r in results:
        if r.status == "unknown":
            out.finding("unparsed-value", f"HER2 result could not be interpreted: {r.label}", r.refs)
    usable = [r for r in results if r.status != "unknown"]
    if not usable:
        out.set("her2.status", "unknown", (), "no final HER2 result")
        out.set("her2.ihc", None)
        out.set("her2.ultralow", False)
        out.set("her2.ish_group", None)
        out.set("her2.negative", False)
        out.set("her2.conflict", False)
        out.finding("her2-missing", "no final/amended/corrected HER2 IHC, ISH or interpretation result")
        return out
    usable.sort(key=lambda r: r.date or dt.date.min)
    newest_date = usable[-1].date
    newest = [r for r in usable if r.date == newest_date]
    definitive = {r.status for r in usable if r.status in ("positive", "low", "zero", "negative")}
    conflict = ("positive" in definitive and len(definitive) > 1) or {"low", "zero"} <= definitive
    same_day_disagree = len({r.status for r in newest}) > 1
    all_refs = [ref for r in usable for ref in r.refs]
    if conflict or same_day_disagree:
        listing = "; ".join(r.label for r in usable)
        out.finding("her2-conflict", f"HER2 results disagree: {listing}. Precedence: newest final/amended/"
                    "corrected result; on one specimen an explicit 48676-1 interpretation wins", all_refs)
    if same_day_disagree:
        status, ihc, ultralow, group, refs = "unknown", None, False, None, [x for r in newest for x in r.refs]
        note = "results of the same date disagree"
    else:
        top = newest[0]
        status, ihc, ultralow, group = top.status, top.ihc, top.ultralow, top.ish_group
        refs, note = list(top.refs), top.label
    negative = status in ("low", "zero", "negative")
    if status == "negative":
        status = "unknown"
        note = (note or "") + "; HER2-negative without an IHC score: low vs zero undetermined"
        out.finding("her2-unscored-negative", "HER2 is negative but no IHC score (0 / 1+) is recorded", refs)
    if status == "equivocal_pending":
        out.finding("her2-equivocal", "HER2 IHC 2+ (equivocal) without an ISH result; reflex ISH required", refs)
    out.set("her2.status", status, refs, note)
    out.set("her2.ihc", ihc, refs)
    out.set("her2.ultralow", ultralow, refs if ultralow else ())
    out.set("her2.ish_group", group, refs)
    out.set("her2.negative", negative, refs)
    out.set("her2.conflict", bool(conflict or same_day_disagree), all_refs if conflict else refs)
    return out


def _group_her2(items: list[_Her2Item], pairing_days: int) -> list[_Her2Group]:
    """One group per specimen (or per date without a specimen); pair a lone ISH with a nearby IHC."""
    groups: dict[Any, _Her2Group] = {}
    for it in items:
        key = ("specimen", it.specimen) if it.specimen else ("date", it.date)
        groups.setdefault(key, _Her2Group(key)).items.append(it)
    ish_kinds = {"her2-ish", "her2-ish-ratio", "her2-copy-number"}
    lone = [g for g in groups.values() if g.key[0] == "date" and g.kinds() <= ish_kinds]
    for g in lone:
        candidates = [h for h in groups.values() if h is not g and h.key[0] == "date" and "her2-ihc" in h.kinds()
                      and not (h.kinds() & ish_kinds) and h.date and g.date
                      and abs((g.date - h.date).days) <= pairing_days]
        if candidates:
            target = min(candidates, key=lambda h: abs((g.date - h.date).days))
            target.items.extend(g.items)
            del groups[g.key]
    return list(groups.values())


def _ish_group(ratio: float | None, copies: float | None, params: CriteriaParameters) -> int | None:
    """ASCO/CAP 2018 dual-probe ISH groups 1–5 from HER2/CEP17 ratio and HER2 copies per cell.

    The cut-offs (ratio 2.0, 4 and 6 copies) are the Parameters' ``ish-*``.
    """
    if ratio is None or copies is None:
        return None
    low, high = params.ish_copies_low_cutoff, params.ish_copies_high_cutoff
    if ratio >= params.ish_ratio_cutoff:
        return 1 if copies >= low else 2
    if copies >= high:
        return 3
    if copies >= low:
        return 4
    return 5


def _evaluate_her2_group(g: _Her2Group, params: CriteriaParameters) -> _Her2Result | None:
    """Status of one specimen per ASCO/CAP 2018/2023; an explicit 48676-1 interpretation wins."""
    def newest(kind):
        xs = [i for i in g.items if i.kind == kind]
        xs.sort(key=lambda i: i.date or dt.date.min)
        return xs[-1].value if xs else None

    ihc_v = newest("her2-ihc")
    ihc = ihc_v[1] if ihc_v and ihc_v[0] == "score" else None
    ultralow = bool(ihc_v and ihc_v[0] == "score" and len(ihc_v) > 2)
    ihc_answer = ihc_v[1] if ihc_v and ihc_v[0] == "answer" else None
    ratio, copies = newest("her2-ish-ratio"), newest("her2-copy-number")
    group = _ish_group(ratio, copies, params)
    ish_answer = newest("her2-ish")
    interp = newest("her2-interpretation")
    parts = [(f"IHC {ihc}" + (" (ultralow)" if ultralow else "")) if ihc
             else (f"IHC {ihc_answer}" if ihc_answer else None),
             f"ISH group {group} (ratio {ratio:g}, {copies:g} copies)" if group else None,
             f"ISH {ish_answer}" if ish_answer and not group else None,
             f"interpretation {interp}" if interp else None]
    label_core = ", ".join(p for p in parts if p) or "no readable value"

    ish_pos: bool | None = None
    if group is not None:
        if group == 1:
            ish_pos = True
        elif group == 5:
            ish_pos = False
        elif ihc is None:
            ish_pos = None  # groups 2–4 need the concurrent IHC
        elif group == 3:
            ish_pos = ihc in ("2+", "3+")
        else:
            ish_pos = ihc == "3+"
    elif ish_answer in ("positive", "present"):
        ish_pos = True
    elif ish_answer in ("negative", "absent"):
        ish_pos = False

    def neg_status() -> str:
        if ihc == "0":
            return "zero"
        if ihc in ("1+", "2+"):
            return "low"
        return "negative"

    if interp in ("positive", "present"):
        status = "positive"
    elif interp in ("negative", "absent"):
        status = neg_status() if ihc != "3+" else "negative"
    elif interp == "equivocal" and ish_pos is None:
        status = "equivocal_pending"
    elif ihc == "3+" or ish_pos is True:
        status = "positive"
    elif ihc == "2+":
        status = "low" if ish_pos is False else "equivocal_pending"
    elif ihc in ("0", "1+"):
        status = neg_status()
    elif ihc_answer == "positive":
        status = "positive"
    elif ihc_answer == "equivocal":
        status = "equivocal_pending" if ish_pos is None else ("low" if ish_pos is False else "positive")
    elif ish_pos is False or ihc_answer == "negative":
        status = "negative"
    elif group in (2, 3, 4) and ihc is None:
        status = "equivocal_pending"
    else:
        status = "unknown"
    date = g.date
    return _Her2Result(date, status, ihc, ultralow and status == "zero", group, g.refs,
                       f"{date or 'undated'}: {label_core} → {status} ({', '.join(g.refs)})")
