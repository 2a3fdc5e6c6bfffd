"""Reading one Observation or Condition the way every clinical domain needs it.

Shared by HER2, receptors, observations and conditions: which results count
(final only; a preliminary one is reported, not used), the coded or worded
answer of a result, and newest-first ordering; which Conditions count and
which are resolved.  Each reader records its data-quality findings in the
``Derived`` it is given.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterator

from .. import parse as fp
from ..knowledge.terminology import Terminology
from .profile import Derived

FINAL = frozenset({"final", "amended", "corrected"})
NOT_YET = frozenset({"preliminary", "registered"})
# FHIR R4 status semantics, not clinical knowledge (like FINAL above): Condition.verificationStatus is
# a modifier element because refuted and entered-in-error mark a Condition as not valid, and
# Condition.clinicalStatus because inactive (with its children remission and resolved in
# condition-clinical) marks it as no longer active.
NOT_A_CONDITION = frozenset({"entered-in-error", "refuted"})
NO_LONGER_ACTIVE = frozenset({"inactive", "remission", "resolved"})
_ABATEMENT = ("abatementDateTime", "abatementPeriod", "abatementAge", "abatementString")


def condition_counts(cond: dict) -> bool:
    """False for a Condition whose verificationStatus says refuted or entered-in-error (any of its codings).

    The one test the criteria, the menopausal reading (a bilateral-oophorectomy
    Condition) and the SMART timeline share, so the page draws the Conditions the
    advice used.  A resolved Condition still counts (it is history); whether it is
    current is ``condition_resolved``, asked where that matters.
    """
    return not (fp.codes(cond.get("verificationStatus")) & NOT_A_CONDITION)


def condition_resolved(cond: dict) -> bool:
    """True if the Condition is no longer active: clinicalStatus inactive/remission/resolved, or an abatement[x]."""
    if code_of(cond.get("clinicalStatus")) in NO_LONGER_ACTIVE:
        return True
    return any(cond.get(k) for k in _ABATEMENT)


def is_final(obs: dict, what: str, out: Derived) -> bool:
    """True for final/amended/corrected; a preliminary result becomes a finding, never a fact."""
    status = obs.get("status")
    if status in FINAL:
        return True
    if status in NOT_YET:
        out.finding("preliminary-ignored", f"{fp.reference_of(obs)} ({what}) is {status}; not used until final",
                    (fp.reference_of(obs),))
    return False


def answer(obs: dict, t: Terminology) -> str | None:
    """Coded/word answer from value[x], falling back to interpretation."""
    a = t.translate_codeable("result-answer", obs.get("valueCodeableConcept"))
    if a:
        return a
    for text in fp.texts(obs.get("valueCodeableConcept")) + (
            [obs["valueString"]] if isinstance(obs.get("valueString"), str) else []):
        w = t.translate_text("result-answer", text)
        if w:
            return w
    if isinstance(obs.get("valueBoolean"), bool):
        return "positive" if obs["valueBoolean"] else "negative"
    for interp in fp.first_codeable(obs.get("interpretation")):
        a = t.translate_codeable("result-answer", interp)
        if a:
            return a
        for text in fp.texts(interp):
            w = t.translate_text("result-answer", text)
            if w:
                return w
    return None


def newest_first(observations: list[dict]) -> list[tuple[dt.date | None, dict]]:
    """(date, observation) pairs, newest first; undated ones last."""
    rows = [(fp.observation_date(o), o) for o in observations]
    rows.sort(key=lambda r: r[0] or dt.date.min, reverse=True)
    return rows


def newest_final(observations: list[dict], what: str, out: Derived) -> list[tuple[dt.date | None, dict]]:
    return newest_first([o for o in observations if is_final(o, what, out)])


def newest_usable(observations: list[dict], what: str, out: Derived) -> Iterator[tuple[dt.date | None, dict]]:
    """Newest first, the final results that are valid FHIR R4, validated as they are reached.

    For the ``NEWEST_WINS`` kinds of the intake, whose readers stop at the
    first result they can use: the results older than that one are never
    validated.
    """
    for date, obs in newest_first(observations):
        problem = fp.check_r4(obs)
        if problem:
            out.finding(problem[0], problem[1], (fp.reference_of(obs),))
        elif is_final(obs, what, out):
            yield date, obs


def code_of(codeable: Any) -> str | None:
    for c in fp.codings(codeable):
        if c.get("code"):
            return c["code"]
    return None
