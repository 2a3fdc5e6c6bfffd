"""Single-result observations: PIK3CA, ECOG, LVEF, liver labs (×ULN) and disease status.

Each reads the newest final result it can use and says when (``note``); an
unreadable newer result is a finding and the next one is tried, so one bad
entry never hides an older good one.
"""

from __future__ import annotations

import datetime as dt

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters, DefaultLimit
from ..knowledge.terminology import Terminology
from .intake import Intake
from .profile import Derived
from .readings import answer, is_final, newest_final, newest_usable

# kind → (fact, default ULN parameter, the unit that default is in): a result without
# referenceRange.high is read against the stated default (knowledge file §2.6), and says so.
# (observation kind, fact, the parameter holding its default upper limit with the limit's unit)
LIVER_LABS = (("alt", "liver.alt_x_uln", "default_uln_alt"),
              ("ast", "liver.ast_x_uln", "default_uln_ast"),
              ("bilirubin", "liver.bili_x_uln", "default_uln_bilirubin"),
              ("alkaline-phosphatase", "liver.alp_x_uln", "default_uln_alkaline_phosphatase"))
# The units of a neutrophil count, each with its factor to cells/mm³ (= cells/µL): a CodeSystem of
# unit spellings with a conversion-factor property (CodeSystem-neutrophil-count-unit).
ANC_UNITS = "neutrophil-count-unit"


def observation_facts(intake: Intake, t: Terminology, params: CriteriaParameters, today: dt.date) -> tuple[Derived, list[tuple[dt.date, str]]]:
    """pik3ca, ecog, lvef.*, liver.*_x_uln and disease.progression; also every (date, ref) of progression."""
    out = Derived()
    _pik3ca(intake.of_kind("genetic-variant"), t, out)
    _ecog(intake.of_kind("ecog"), t, today, out)
    _lvef(intake.of_kind("lvef"), today, out, params.lvef_default_lln_percent)
    for kind, name, default in LIVER_LABS:
        _x_uln(intake.of_kind(kind), name, out, getattr(params, default))
    _anc(intake.of_kind("neutrophils"), t, out)
    progression = _disease_status(intake.of_kind("disease-status"), t, out)
    return out, progression


def _pik3ca(observations: list[dict], t: Terminology, out: Derived) -> None:
    mutated, absent = [], []
    for obs in observations:
        if not is_final(obs, "variant", out):
            continue
        if not _is_pik3ca(obs, t):
            continue
        a = answer(obs, t)
        ref = fp.reference_of(obs)
        if a in ("present", "positive"):
            mutated.append(ref)
        elif a in ("absent", "negative"):
            absent.append(ref)
    if mutated:
        out.set("pik3ca", "mutated", mutated)
    elif absent:
        out.set("pik3ca", "not_detected", absent)
    else:
        out.set("pik3ca", "unknown")


def _is_pik3ca(obs: dict, t: Terminology) -> bool:
    """Gene studied (48018-6) is HGNC:8975, or the gene is named PIK3CA in text (ConceptMap-report-text)."""
    for comp in obs.get("component") or ():
        if t.codings_in("gene-studied", comp.get("code")):
            value = comp.get("valueCodeableConcept")
            if fp.codings(value):  # a coded gene decides; its display is not trusted over the code
                return t.codings_in("pik3ca-gene", value)
            if any(t.text_states("report-text", s, "pik3ca-named") for s in fp.texts(value)):
                return True
    return any(t.text_states("report-text", s, "pik3ca-named") for s in fp.texts(obs.get("code")))


def _ecog(observations: list[dict], t: Terminology, today: dt.date, out: Derived) -> None:
    """ecog (newest readable grade) and ecog.days_ago (its age: rules use only a recent one)."""
    for date, obs in newest_usable(observations, "ECOG", out):
        ref = fp.reference_of(obs)
        grade = None
        n = fp.number_value(obs)
        if n is not None and n == int(n) and 0 <= n <= 5:
            grade = int(n)
        if grade is None:
            g = t.translate_codeable("ecog", obs.get("valueCodeableConcept"))
            for interp in fp.first_codeable(obs.get("interpretation")):
                g = g or t.translate_codeable("ecog", interp)
            grade = int(g) if g is not None else None
        if grade is None:
            out.finding("unparsed-value", f"{ref}: ECOG value could not be read", (ref,))
            continue
        out.set("ecog", grade, (ref,), f"on {date}" if date else None)
        out.set("ecog.days_ago", (today - date).days if date else None, (ref,))
        return
    out.set("ecog", None)
    out.set("ecog.days_ago", None)


def _lvef_lln(obs: dict) -> float | None:
    """The result's own lower limit of normal (referenceRange.low), if it states one."""
    for rr in obs.get("referenceRange") or ():
        low = fp.quantity_number((rr or {}).get("low") if isinstance(rr, dict) else None)
        if low is not None and 0 < low < 100:
            return low
    return None


def lvef_readings(observations: list[dict], out: Derived | None = None) -> list[tuple[dt.date | None, float, str, dict]]:
    """The LVEF results the profile reads, newest first: (date, percent, reference, Observation).

    Final/amended/corrected results with a readable percentage; the others are
    findings in ``out``.  The ``lvef.*`` facts and the SMART page's LVEF series
    are both this list, so the page shows exactly the readings the rules used.
    """
    out = out if out is not None else Derived()
    readings = []
    for date, obs in newest_final(observations, "LVEF", out):
        ref = fp.reference_of(obs)
        v, _, problem = fp.percent_value(obs)
        if v is None:
            out.finding("unparsed-value", f"{ref}: LVEF could not be read" + (f" ({problem})" if problem else ""),
                        (ref,))
            continue
        readings.append((date, v, ref, obs))
    return readings


def _lvef(observations: list[dict], today: dt.date, out: Derived, default_lln: float) -> None:
    """lvef.*: ``default_lln`` is parameter lvef-default-lln-percent, used when the result states no range."""
    readings = lvef_readings(observations, out)
    if readings:
        lln = _lvef_lln(readings[0][3])
        used = lln if lln is not None else default_lln
        out.set("lvef.below_lln", readings[0][1] < used, (readings[0][2],),
                f"lower limit of normal {used:g}%" + ("" if lln is not None else " (default: no reference range on the result)"))
    else:
        out.set("lvef.below_lln", False)
    readings = [r[:3] for r in readings]
    if not readings:
        out.set("lvef.value", None)
        out.set("lvef.days_ago", None)
        out.set("lvef.drop", None)
        return
    date, value, ref = readings[0]
    out.set("lvef.value", round(value, 1), (ref,), f"on {date}" if date else "undated")
    out.set("lvef.days_ago", (today - date).days if date else None, (ref,))
    earlier = [r for r in readings[1:] if r[0] and date and r[0] < date]
    if earlier:
        best = max(earlier, key=lambda r: r[1])
        out.set("lvef.drop", round(max(0.0, best[1] - value), 1), (ref, best[2]), f"from {best[1]:g}% on {best[0]}")
    else:
        out.set("lvef.drop", None, (ref,))


def _anc(observations: list[dict], t: Terminology, out: Derived) -> None:
    """blood.anc_per_mm3: the newest readable absolute neutrophil count, in cells/mm³.

    Its unit must be one of CodeSystem-neutrophil-count-unit; any other is an
    ``unparsed-value`` finding, never a guessed factor.
    """
    for date, obs in newest_usable(observations, "neutrophils", out):
        ref = fp.reference_of(obs)
        q = obs.get("valueQuantity") if isinstance(obs.get("valueQuantity"), dict) else {}
        value = fp.quantity_number(q)
        factor = t.unit_factor(ANC_UNITS, q.get("code") or q.get("unit"))
        if value is None or factor is None:
            out.finding("unparsed-value", f"{ref}: neutrophil count or its unit could not be read", (ref,))
            continue
        out.set("blood.anc_per_mm3", round(value * factor), (ref,), f"{value:g} {q.get('unit') or q.get('code')} on {date}")
        return
    out.set("blood.anc_per_mm3", None)


def _x_uln(observations: list[dict], name: str, out: Derived, default: DefaultLimit | None = None) -> None:
    for date, obs in newest_usable(observations, name, out):
        ref = fp.reference_of(obs)
        q = obs.get("valueQuantity") if isinstance(obs.get("valueQuantity"), dict) else {}
        value = fp.quantity_number(q)
        high = None
        for rr in obs.get("referenceRange") or ():
            h = (rr or {}).get("high") or {}
            h_value = fp.quantity_number(h)
            if h_value is not None and h_value > 0:
                hu, vu = h.get("code") or h.get("unit"), q.get("code") or q.get("unit")
                if hu and vu and hu != vu:
                    continue
                high = h_value
                break
        note = f"{value:g} / ULN {high:g} on {date}" if value is not None and high is not None else None
        if value is not None and high is None and default is not None and not obs.get("referenceRange"):
            unit = str(q.get("code") or q.get("unit") or "")
            if unit.lower() == default.unit.lower():
                high = default.value
                note = f"{value:g} / default ULN {high:g} {default.unit} on {date} (no reference range on the result)"
        if value is None or high is None:
            out.finding("unparsed-value", f"{ref}: value or reference-range high missing; ×ULN not computed", (ref,))
            continue
        out.set(name, round(value / high, 2), (ref,), note)
        return
    out.set(name, None)


def _disease_status(observations: list[dict], t: Terminology, out: Derived) -> list[tuple[dt.date, str]]:
    """Sets disease.progression from the newest 97509-4; returns (date, ref) of every worsened result."""
    rows = newest_final(observations, "disease status", out)
    worsened = []
    for date, obs in rows:
        if t.translate_codeable("result-answer", obs.get("valueCodeableConcept")) == "worsened" and date:
            worsened.append((date, fp.reference_of(obs)))
    if rows:
        date, obs = rows[0]
        a = t.translate_codeable("result-answer", obs.get("valueCodeableConcept"))
        out.set("disease.progression", a == "worsened", (fp.reference_of(obs),),
                f"latest disease status on {date}: {a or 'unreadable'}")
    else:
        out.set("disease.progression", False, (), "no disease-status observation")
    return worsened
