"""Evaluating the rulebook against a patient's facts: fire, then suppress."""

from __future__ import annotations

from typing import AbstractSet, Any, Mapping

from .conditions import fact_refs, fact_value
from .model import Condition, Recommendation, Rule, Rulebook
from .wording import render_text

# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------
def evaluate(rulebook: Rulebook, facts: Mapping[str, Any], hook: str,
             rules: tuple[Rule, ...] | None = None) -> list[Recommendation]:
    """Fire every rule of this hook whose scope and condition hold, then apply suppression.

    Suppression is data (``suppresses: [F1]``): a more specific card (F5 for a
    frail patient) replaces a generic one (F1) rather than contradicting it, and a
    card that removes a drug silences the cards that would monitor or keep it
    (M4 suppresses S8).  Rules with ``enabled_by`` run only while that rulebook
    flag is on (F1's confirmation card is off by default).  ``rules``: this hook's rules
    less those the record rules out (``live_rules``); by default all of them.
    """
    fired: list[Recommendation] = []
    in_scope: dict[str, bool] = {}  # a scope is a pure function of the facts: asked once per call, not per rule
    for rule in rulebook.rules_of(hook) if rules is None else rules:
        if rule.enabled_by is not None and not rulebook.enabled(rule):
            continue
        held = in_scope.get(rule.scope)
        if held is None:
            held = in_scope[rule.scope] = bool(rulebook.scopes[rule.scope].test(facts))
        if not held or not rule.when.test(facts):
            continue
        scope = rulebook.scopes[rule.scope]
        names = tuple(dict.fromkeys(scope.facts + rule.when.facts))
        snapshot = tuple((n, fact_value(facts, n), fact_refs(facts, n)) for n in names)
        suggestions = tuple(s for s in rule.suggestions if s.when is None or s.when(facts))
        notes = tuple(render_text(n.text, facts) for n in rule.notes if n.when(facts))
        summary = next((n.text for n in rule.summaries if n.when(facts)), rule.card["summary"])
        fired.append(Recommendation(rule, snapshot, suggestions, notes, summary))
    suppressed = {sid for rec in fired for sid in rec.rule.suppresses}
    return [rec for rec in fired if rec.rule.id not in suppressed]


def live_rules(rulebook: Rulebook, hook: str, facts: Mapping[str, Any],
               per_call: AbstractSet[str]) -> tuple[Rule, ...]:
    """The rules of ``hook`` that the facts fixed for this record do not rule out, in rulebook order.

    Why: most rules are about a patient this one is not (51 of the 73 order-select
    rules at the bench patient fail on a fact read from the record alone: no
    HER2-low result, no brain metastasis, no ILD), and a chart's later hooks read
    the same record with new drafts.  A rule is ruled out when its scope, its
    condition, or one part of an ``all`` in either reads none of the
    ``per_call`` facts (those derived from this call's drafts and findings) and
    is false: it would be false on every call with the same record.  Everything
    else is left to ``evaluate``, flags included, so the cards are those of the
    whole rulebook (tests/test_rules_evaluator.py, tests/test_history_memo.py).
    """
    def ruled_out(condition: Condition) -> bool:
        for part in condition.conjuncts or (condition,):
            if per_call.isdisjoint(part.facts) and not part.test(facts):
                return True
        return False

    scopes: dict[str, bool] = {}
    live = []
    for rule in rulebook.rules_of(hook):
        out = scopes.get(rule.scope)
        if out is None:
            out = scopes[rule.scope] = ruled_out(rulebook.scopes[rule.scope])
        if not out and not ruled_out(rule.when):
            live.append(rule)
    return tuple(live)
