"""Hormone receptors: ER and PR status (with ER-low) and the HR status the rules read.

ASCO/CAP 2020: ER/PR below ``receptor-positive-min-percent`` (1 %) is
negative; ER from there up to ``er-low-max-percent`` (10 %) is "ER Low
Positive", where endocrine benefit data are limited; HR+ is ER ≥1 % or PR ≥1 %.
The bounds are parameters in ``fhir_profiles/parameters``.  A comparator that
straddles a bound ("<10 %", ">5 %") is not guessed.
"""

from __future__ import annotations

import datetime as dt

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters
from ..knowledge.terminology import Terminology
from .intake import Intake
from .profile import Derived
from .readings import answer, is_final


def receptor_facts(intake: Intake, t: Terminology, params: CriteriaParameters) -> Derived:
    """er.status, pr.status, er.conflict and hr.status (from the combined ER+PR result only when both are unknown)."""
    out = Derived()
    er = _receptor_results(intake.of_kind("er-status"), intake.of_kind("er-percent"), "ER", True, t, params, out)
    pr = _receptor_results(intake.of_kind("pr-status"), intake.of_kind("pr-percent"), "PR", False, t, params, out)
    er_status, er_refs, er_conflict = _receptor_status(er, "er.status", out)
    pr_status, _, _ = _receptor_status(pr, "pr.status", out)
    out.set("er.conflict", er_conflict, er_refs if er_conflict else ())
    if er_conflict:
        listing = "; ".join(f"{d or 'undated'}: {c}" for d, c, _, _ in sorted(er, key=lambda r: r[0] or dt.date.min))
        out.finding("er-conflict", f"ER status changed between results: {listing}", er_refs)
    if er_status in ("positive", "low") or pr_status == "positive":
        refs = (out.facts["er.status"].refs if er_status in ("positive", "low") else ()) + (
            out.facts["pr.status"].refs if pr_status == "positive" else ())
        out.set("hr.status", "positive", refs, "ER ≥1 % or PR ≥1 %")
    elif er_status == "negative" and pr_status == "negative":
        out.set("hr.status", "negative", out.facts["er.status"].refs + out.facts["pr.status"].refs)
    else:
        combined = _receptor_results(intake.of_kind("er-pr-combined"), [], "ER+PR", False, t, params, out)
        if er_status == "unknown" and pr_status == "unknown" and combined:
            newest = max(combined, key=lambda r: r[0] or dt.date.min)
            out.set("hr.status", newest[1], (newest[3],), "from the combined ER+PR result")
        else:
            out.set("hr.status", "unknown", (), "ER and PR not both known")
    return out


def _receptor_results(status_obs: list[dict], percent_obs: list[dict], what: str, low_allowed: bool,
                      t: Terminology, params: CriteriaParameters, out: Derived):
    """(date, category, percent, ref) per final result; category None when unreadable."""
    rows = []
    for obs in percent_obs:
        if not is_final(obs, what, out):
            continue
        ref = fp.reference_of(obs)
        v, comp, problem = fp.percent_value(obs)
        cat = None
        if v is not None:
            cat = percent_category(v, comp, low_allowed, params)
        elif problem is None:
            a = answer(obs, t)
            cat = {"positive": "positive", "negative": "negative"}.get(a or "")
        if cat is None:
            out.finding("unparsed-value", f"{ref}: {what} percentage could not be read"
                        + (f" ({problem})" if problem else ""), (ref,))
            continue
        rows.append((fp.observation_date(obs), cat, v, ref))
    for obs in status_obs:
        if not is_final(obs, what, out):
            continue
        ref = fp.reference_of(obs)
        v, comp, _ = fp.percent_value(obs) if ("valueQuantity" in obs or "valueString" in obs) else (None, None, None)
        if v is not None:
            cat = percent_category(v, comp, low_allowed, params)
        else:
            a = answer(obs, t)
            cat = {"positive": "positive", "present": "positive", "negative": "negative",
                   "absent": "negative"}.get(a or "")
        if cat is None:
            out.finding("unparsed-value", f"{ref}: {what} status could not be read", (ref,))
            continue
        rows.append((fp.observation_date(obs), cat, v, ref))
    return rows


def _receptor_status(results, name: str, out: Derived) -> tuple[str, list[str], bool]:
    if not results:
        out.set(name, "unknown", (), "no final result")
        return "unknown", [], False
    newest_date = max((r[0] or dt.date.min) for r in results)
    newest = [r for r in results if (r[0] or dt.date.min) == newest_date]
    with_percent = [r for r in newest if r[2] is not None]
    chosen = with_percent or newest
    cats = {r[1] for r in chosen}
    refs = [r[3] for r in chosen]
    if len(cats) > 1:
        status, note = "unknown", "results of the same date disagree"
    else:
        status = cats.pop()
        pct = chosen[0][2]
        note = f"{pct:g}% positive cells" if pct is not None else None
    flips = {("negative" if r[1] == "negative" else "positive") for r in results}
    conflict = len(flips) > 1
    out.set(name, status, refs, note)
    return status, [r[3] for r in results], conflict


def percent_category(v: float, comparator: str | None, low_allowed: bool, params: CriteriaParameters) -> str | None:
    """ASCO/CAP 2020: <1 % negative; 1–10 % ER-low; >10 % positive (PR: ≥1 % positive); bounds from parameters."""
    positive_min, low_max = params.receptor_positive_min_percent, params.er_low_max_percent
    if comparator in ("<", "<="):
        if v <= positive_min:
            return "negative"
        return None  # "<10 %" could be negative or low: not guessed
    if comparator in (">", ">="):
        if v >= low_max or (v >= positive_min and not low_allowed):
            return "positive"
        return None  # ">5 %" could be ER-low or positive: not guessed
    if v < positive_min:
        return "negative"
    if low_allowed and v <= low_max:
        return "low"
    return "positive"
