"""progression.event: a recorded progression that opens the next-line decision.

Knowledge file §2.6, "Progression opens the next decision": a progression
recorded after the start of the current anti-HER2 line (a disease-status
result "worsened", or a metastatic-site Condition — brain included, not
resolved — whose onset comes after the line's first month), with no new line started since,
is an open decision.  The fact names the event (its FHIR reference) so the
patient-view card can be shown once per progression, not at every chart
opening (``once_per`` in the rulebook; the shell keeps the memory).

One exception, from the guideline: new brain metastases while the disease
outside the brain is not progressing are treated locally and the systemic
therapy is not switched (ASCO 2018 HER2+ brain metastases guideline,
reaffirmed 2022).  A new CNS site followed by an overall disease status of
stable or improved (not focused on one lesion) opens no next-line decision.
"""

from __future__ import annotations

import datetime as dt

from .. import parse as fp
from ..knowledge.parameters import CriteriaParameters
from ..knowledge.terminology import Terminology
from .conditions import systemic_control_after
from .intake import Intake
from .profile import Derived, Line
from .readings import condition_counts, condition_resolved


def progression_facts(worsened: list[tuple[dt.date, str]], lines: tuple[Line, ...], intake: Intake,
                      t: Terminology, params: CriteriaParameters) -> Derived:
    """progression.event (reference or None) and progression.date of the newest open progression."""
    out = Derived()
    if not lines:
        out.set("progression.event", None, (), "no anti-HER2 line on record")
        out.set("progression.date", None)
        return out
    current = lines[-1]
    baseline = current.start + dt.timedelta(days=params.line_of_therapy_window_days)
    events = [(d, ref, "disease status worsened") for d, ref in worsened if d > current.start]
    for c in intake.conditions:
        if not t.codings_in("metastatic-disease", c.get("code")) or not condition_counts(c) or condition_resolved(c):
            continue  # a refuted, mistaken or resolved metastasis is no open decision
        onset = fp.condition_onset(c)
        if onset and onset > baseline:
            if t.translate_codeable("metastatic-site", c.get("code")) == "brain" \
                    and systemic_control_after(onset, intake.of_kind("disease-status"), t):
                continue
            events.append((onset, fp.reference_of(c), "new metastatic site"))
    if not events:
        out.set("progression.event", None, (), f"no progression recorded since line {current.number} began")
        out.set("progression.date", None)
        return out
    date, ref, what = max(events)
    note = f"{what} on {date}, after line {current.number} began on {current.start}"
    out.set("progression.event", ref, (ref,), note)
    out.set("progression.date", date.isoformat(), (ref,), note)
    return out
