"""Patient facts: age, sex and menopausal status (NCCN definition; knowledge file "Menopausal status")."""

from __future__ import annotations

import datetime as dt

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters
from ..knowledge.terminology import Terminology
from .profile import Derived
from .readings import FINAL, condition_counts


def patient_facts(patient: dict | None, menopausal: list[dict], t: Terminology, params: CriteriaParameters,
                  today: dt.date, oophorectomy: list[dict] = ()) -> Derived:
    """patient.age, patient.sex and patient.menopausal (see ``menopausal_status``)."""
    out = Derived()
    p = patient or {}
    ref = (fp.reference_of(p),) if p else ()
    birth_text = p.get("birthDate") if isinstance(p.get("birthDate"), str) else ""
    birth = fp.parse_date(birth_text)
    age = None
    if birth and len(birth_text) >= 10:
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    elif birth:
        age = today.year - birth.year  # year-only birth date: approximate, noted
    out.set("patient.age", age, ref, None if not birth or len(birth_text) >= 10
            else "birth date has no day; age approximate")
    gender = p.get("gender")
    out.set("patient.sex", gender if gender in ("female", "male", "other", "unknown") else "unknown", ref)
    out.set("patient.menopausal", *menopausal_status(p.get("gender"), age, menopausal, oophorectomy, t,
                                                        params.postmenopausal_age_years))
    return out


# Status values a Procedure can have and still mean "it was done" (a Condition: readings.condition_counts).
_DONE_PROCEDURE = {"completed"}


def menopausal_status(gender, age: int | None, observations: list[dict], oophorectomy: list[dict],
                      t: Terminology, by_age: int) -> tuple[str, tuple[str, ...], str]:
    """(pre | post | unknown, references, how) for ``patient.menopausal``.

    NCCN's definition of menopause: prior bilateral oophorectomy, or age
    >= ``by_age`` (60, parameter postmenopausal-age-years), or a recorded postmenopausal state.  A recorded status otherwise
    wins (newest final Observation).  A woman under 60 with no record is
    ``unknown``: chemotherapy-induced amenorrhoea can reverse, so no age or
    amenorrhoea guess is made below 60 (knowledge file, "Menopausal status").
    Men are ``unknown``: the rules treat them by sex.
    """
    if gender == "male":
        return "unknown", (), "male patient: not applicable"
    surgery = [r for r in oophorectomy if _counts(r)]
    if surgery:
        return "post", tuple(fp.reference_of(r) for r in surgery), "bilateral oophorectomy on record"
    best = None
    for obs in observations:
        if obs.get("status") not in FINAL:
            continue
        value = None
        for cc in (obs.get("valueCodeableConcept"), obs.get("code")):
            value = value or t.translate_codeable("menopausal-status", cc)
        if value and (best is None or (fp.observation_date(obs) or dt.date.min) >= best[0]):
            best = (fp.observation_date(obs) or dt.date.min, value, fp.reference_of(obs))
    if age is not None and age >= by_age:
        refs = (best[2],) if best and best[1] == "post" else ()
        return "post", refs, f"age {age} (NCCN: postmenopausal from age {by_age})"
    if best and best[1] in ("pre", "post"):
        return best[1], (best[2],), "recorded"
    return "unknown", (), f"no coded menopausal status, bilateral oophorectomy or age >= {by_age} on record"


def _counts(r: dict) -> bool:
    if r.get("resourceType") == "Procedure":
        return r.get("status") in _DONE_PROCEDURE
    return condition_counts(r)
