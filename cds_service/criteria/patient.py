"""Patient facts: age, sex and menopausal status."""

from __future__ import annotations

import datetime as dt

from ..fhir import parse as fp
from ..knowledge.terminology import Terminology
from .profile import Derived
from .readings import FINAL


def patient_facts(patient: dict | None, menopausal: list[dict], t: Terminology, today: dt.date) -> Derived:
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
    # Menopausal status only from a coded Observation, newest first.
    best = None
    for obs in menopausal:
        if obs.get("status") not in FINAL:
            continue
        value = None
        for cc in (obs.get("valueCodeableConcept"), obs.get("code")):
            value = value or t.translate_codeable("menopausal-status", cc)
        if value and (best is None or (fp.observation_date(obs) or dt.date.min) >= best[0]):
            best = (fp.observation_date(obs) or dt.date.min, value, fp.reference_of(obs))
    if best:
        out.set("patient.menopausal", best[1], (best[2],))
    else:
        out.set("patient.menopausal", "unknown", (), "no coded menopausal-status Observation")
    return out
