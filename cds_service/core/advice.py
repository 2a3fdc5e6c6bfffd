"""The pure pipeline: resources → patient profile → recommendations → cards.

Nothing here does I/O; the HTTP layer hands in what prefetch gathered and the
knowledge loaded at start-up, and gets back an ``Advice``: the cards as
``IssuedCard`` objects (card JSON, rule id, rulebook version — never read
back out of the JSON), and the profile they came from, whose ``notices`` the
shell logs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

from . import cards as cards_mod
from .cards import IssuedCard
from .criteria import build_profile
from .criteria.profile import Fact, PatientProfile
from .instrumentation import stage
from .rules import rulebook as rules_mod
from .rules.model import RuleFacts


@dataclass(frozen=True)
class Advice:
    """What one hook call advises: the issued cards (most severe first) and the profile behind them."""

    issued: tuple[IssuedCard, ...]
    profile: PatientProfile | None

    @property
    def cards(self) -> list[dict]:
        """The CDS Hooks card JSON, in order."""
        return [i.card for i in self.issued]


def _finding_codes(findings: Iterable[Any]) -> list[str]:
    return sorted({getattr(f, "code", None) or str(f) for f in findings})


def _rule_facts(profile: PatientProfile, findings: Iterable[Any] | None, hook: str) -> dict:
    """The profile's facts plus what the pipeline adds for the rules: findings, unreadable data, the hook."""
    findings = list(findings or [])
    all_findings = list(profile.findings) + findings
    facts = dict(profile.facts)
    facts["findings"] = Fact(_finding_codes(all_findings),
                              tuple(r for f in all_findings for r in (getattr(f, "refs", ()) or ())))
    # Prefetch keys whose data could not be (fully) read: rules that fire on the
    # *absence* of a result must stay silent when the result may simply be unreadable.
    unavailable = sorted({r.split(":", 1)[1] for f in findings for r in getattr(f, "refs", ())
                          if r.startswith("prefetch:")})
    facts["data.unavailable"] = Fact(unavailable, tuple(f"prefetch:{k}" for k in unavailable))
    # The hook itself: a card that belongs to the chart opening only while a decision is open
    # (the maintenance window) can say so without a second copy of the rule.
    facts["hook"] = Fact(hook)
    return facts


# The facts ``_rule_facts`` adds for every call: they never count as the record's.
_ADDED_PER_CALL = frozenset({"findings", "data.unavailable", "hook"})


def _live_rules(rulebook, hook: str, facts: dict, profile: PatientProfile):
    """This hook's rules less those the record rules out (``rules.live_rules``), once per remembered history.

    The facts fixed for the record are the same on every call that shares its
    history (the profile's ``history_cache``): a chart's later hooks ask only the
    rules still open.  Worked out at the second call with the record, not the
    first: a chart opened once (and every cold call) tests the book once, as
    before, rather than once to sort the rules and again to fire them.  None (all
    rules) then, and when the profile does not say which facts were derived per call.
    """
    per_call = getattr(profile, "per_call_facts", None)
    cache = getattr(profile, "history_cache", None)
    if per_call is None or cache is None:
        return None
    per_call = per_call | _ADDED_PER_CALL
    key = ("live rules", hook, per_call)
    held = cache.get(key)
    if held is None or held[0] is not rulebook:
        cache[key] = (rulebook, None)  # seen once
        return None
    if held[1] is None:
        held = cache[key] = (rulebook, rules_mod.live_rules(rulebook, hook, facts, per_call))
    return held[1]


def advise(hook: str, service_id: str, context: dict, resources: list[dict],
           findings: list | None = None, knowledge=None, base_url: str | None = None,
           today: dt.date | None = None, fhir_server: str | None = None, profile=None) -> Advice:
    """The cards for one hook call (most severe first), with the profile they came from.

    ``findings`` are prefetch/data-gathering findings; they are merged with the
    profile's own data-quality findings so the D cards can show both.
    ``profile``: the profile of these resources when the caller built it
    already (the SMART page shows it too), so it is derived once.
    """
    if knowledge is None or knowledge.rulebook is None:
        return Advice((), profile)
    if profile is None:
        with stage("criteria"):
            profile = build_profile(resources, context or {}, knowledge.terminology, knowledge.parameters,
                                    today=today)
    basis = RuleFacts(_rule_facts(profile, findings, hook), tuple(profile.findings) + tuple(findings or ()))
    with stage("rules"):
        live = _live_rules(knowledge.rulebook, hook, basis.facts, profile)
        recommendations = rules_mod.evaluate(knowledge.rulebook, basis.facts, hook, live)
    with stage("cards"):
        issued = cards_mod.render(recommendations, knowledge.rulebook, profile, basis,
                                  base_url=base_url, fhir_server=fhir_server)
    return Advice(tuple(issued), profile)


def standing_checks(profile: PatientProfile | None, knowledge, findings: Iterable[Any] = (),
                    reads: str = "lvef.") -> tuple[rules_mod.Recommendation, ...]:
    """The order-time rules that read ``reads`` facts, met by the current medications as if ordered again today.

    Why: heart monitoring on a drug the patient is already on (LVEF on
    trastuzumab, LVEF overdue) is checked by the rules when the next dose is
    ordered (S2-C, S2-W, S2-DUE, S13-L, S15-W are order-hook rules, so a chart
    opening does not repeat them).  The SMART page shows the same check as a
    flag: the same rules, thresholds and monitoring interval, evaluated with
    ``draft.*`` = the active medications (``meds.active.*``), so the page and
    the next order's card cannot disagree and no threshold is typed twice.
    """
    if profile is None or knowledge is None or knowledge.rulebook is None:
        return ()
    facts = _rule_facts(profile, findings, "order-select")
    active = facts.get("meds.active.ingredients") or Fact([])
    classes = facts.get("meds.active.classes") or Fact([])
    for prefix in ("draft", "draft.all"):
        facts[f"{prefix}.ingredients"] = Fact(list(active.value or []), active.refs)
        facts[f"{prefix}.classes"] = Fact(list(classes.value or []), classes.refs)
    fired = rules_mod.evaluate(knowledge.rulebook, facts, "order-select")
    return tuple(rec for rec in fired if any(name.startswith(reads) for name in rec.rule.when.facts))
