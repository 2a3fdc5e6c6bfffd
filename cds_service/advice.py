"""The pure pipeline: resources → patient profile → recommendations → cards.

Nothing here does I/O; the HTTP layer hands in what prefetch gathered and the
knowledge loaded at start-up.  Each card carries its rule id and the rulebook
version in ``card["extension"][rulebook.extension_key]`` (``{"id", "version",
"rulebookId", "rulebookVersion"}``), which is what the HTTP layer records as
an issued card; ``issued_cards(cards, knowledge)`` returns those
``(card_uuid, rule_id, rulebook_version)`` triples directly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from . import cards as cards_mod
from .criteria.profile import Fact
from .instrumentation import stage
from .rules import rulebook as rules_mod


def _finding_codes(findings: Iterable[Any]) -> list[str]:
    return sorted({getattr(f, "code", None) or str(f) for f in findings})


def advise(hook: str, service_id: str, context: dict, resources: list[dict],
           findings: list | None = None, knowledge=None, base_url: str | None = None,
           today: dt.date | None = None, fhir_server: str | None = None, profile=None) -> list[dict]:
    """Return the CDS cards for one hook call (most severe first).

    ``findings`` are prefetch/data-gathering findings; they are merged with the
    profile's own data-quality findings so the D cards can show both.
    ``profile``: the profile of these resources when the caller built it
    already (the SMART page shows it too), so it is derived once.
    """
    if knowledge is None or knowledge.rulebook is None:
        return []
    if profile is None:
        from .criteria import build_profile

        with stage("criteria"):
            profile = build_profile(resources, context or {}, knowledge.terminology, today=today)
    all_findings = list(profile.findings) + list(findings or [])
    facts = dict(profile.facts)
    facts["findings"] = Fact(_finding_codes(all_findings),
                              tuple(r for f in all_findings for r in (getattr(f, "refs", ()) or ())))
    # Prefetch keys whose data could not be (fully) read: rules that fire on the
    # *absence* of a result must stay silent when the result may simply be unreadable.
    unavailable = sorted({r.split(":", 1)[1] for f in findings or () for r in getattr(f, "refs", ())
                          if r.startswith("prefetch:")})
    facts["data.unavailable"] = Fact(unavailable, tuple(f"prefetch:{k}" for k in unavailable))
    with stage("rules"):
        recommendations = rules_mod.evaluate(knowledge.rulebook, facts, hook)
    patient_id = (context or {}).get("patientId") or getattr(profile, "patient_id", None) or "unknown"
    with stage("cards"):
        return cards_mod.render(recommendations, knowledge.rulebook, facts=facts, patient_id=patient_id,
                                draft_orders=profile.draft_orders, findings=all_findings, base_url=base_url,
                                fhir_server=fhir_server, medications=profile.medications, resources=resources)


def issued_cards(cards: list[dict], knowledge) -> list[tuple[str, str, str]]:
    """``(card_uuid, rule_id, rulebook_version)`` for ``Store.record_issued_cards``."""
    return cards_mod.issued(cards, knowledge.rulebook.extension_key)
