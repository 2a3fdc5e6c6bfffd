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

The thresholds come from ``fhir_profiles/parameters`` (``terminology.parameters``).
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import Any

from ..knowledge.terminology import Terminology
from .conditions import condition_facts, ild_on_tdxd
from .her2 import her2_facts
from .intake import read_resources
from .lines import therapy_facts, with_regimens
from .medications import courses, draft_orders, medication_history
from .observations import observation_facts
from .patient import patient_facts
from .progression import progression_facts
from .profile import Course, Derived, DraftOrder, Fact, Finding, Line, MedEpisode, PatientProfile
from .receptors import receptor_facts

__all__ = ["build_profile", "Course", "DraftOrder", "Fact", "Finding", "Line", "MedEpisode", "PatientProfile"]


def build_profile(resources: list[Any], context: dict | None, terminology: Terminology,
                  today: dt.date | None = None) -> PatientProfile:
    """Build the profile for one hook call.

    ``resources`` are prefetch/fetch results in any mix (Bundles are opened,
    duplicates by type/id dropped); ``context`` is the CDS Hooks context.
    """
    today = today or dt.date.today()
    context = context if isinstance(context, dict) else {}
    t = terminology
    params = t.parameters
    if params is None:
        raise ValueError("terminology has no criteria parameters (load it with load_terminology)")

    intake = read_resources(resources, context, t)
    derived = Derived().merge(intake.out)
    derived.merge(patient_facts(intake.patient, intake.menopausal, t, today, intake.oophorectomy))
    derived.merge(her2_facts(intake, t, params))
    derived.merge(receptor_facts(intake, t, params))
    observed, progression = observation_facts(intake, t, today)
    derived.merge(observed)
    conditions, ild_conditions = condition_facts(intake, t, today)
    derived.merge(conditions)
    med_facts, episodes = medication_history(intake, t, today)
    derived.merge(med_facts)
    draft_facts, drafts, chosen = draft_orders(context, intake.medications, t, today)
    derived.merge(draft_facts)
    therapy, history = therapy_facts(episodes, chosen, [d for d, _ in progression], conditions, today, t)
    derived.merge(therapy)
    derived.merge(ild_on_tdxd(ild_conditions, episodes, t))
    derived.merge(progression_facts(progression, history.lines, intake, t, params))
    codes = sorted({f.code for f in derived.findings})
    derived.set("findings", codes, [r for f in derived.findings for r in f.refs])
    course_list = tuple(courses(episodes, list(history.lines), history.line_of, today, params))
    return PatientProfile(
        patient_id=context.get("patientId") or (intake.patient or {}).get("id"),
        facts=MappingProxyType(dict(derived.facts)),
        findings=tuple(derived.findings),
        draft_orders=tuple(drafts),
        medications=tuple(episodes),
        lines=with_regimens(history.lines, course_list, t.anticancer_classes),
        courses=course_list,
        kinds=MappingProxyType(dict(intake.kinds)),
        progression=tuple(progression),
        notices=tuple(derived.notices),
        records=MappingProxyType(dict(intake.records)),
    )
