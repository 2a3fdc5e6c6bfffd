"""Reading one Observation the way every clinical domain needs it.

Shared by HER2, receptors, observations and conditions: which results count
(final only; a preliminary one is reported, not used), the coded or worded
answer of a result, and newest-first ordering.  Each reader records its
data-quality findings in the ``Derived`` it is given.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterator

from .. import parse as fp
from ..knowledge.terminology import Terminology
from .profile import Derived

FINAL = frozenset({"final", "amended", "corrected"})
NOT_YET = frozenset({"preliminary", "registered"})


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
