"""Evaluating the rulebook against a patient's facts: fire, then suppress."""

from __future__ import annotations

from typing import Any, Mapping

from .conditions import fact_refs, fact_value
from .model import Recommendation, Rulebook
from .wording import render_text

# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------
def evaluate(rulebook: Rulebook, facts: Mapping[str, Any], hook: str) -> list[Recommendation]:
    """Fire every rule of this hook whose scope and condition hold, then apply suppression.

    Suppression is data (``suppresses: [F1]``): a more specific card (F5 for a
    frail patient) replaces a generic one (F1) rather than contradicting it, and a
    card that removes a drug silences the cards that would monitor or keep it
    (M4 suppresses S8).  Rules with ``enabled_by`` run only while that rulebook
    flag is on (F1's confirmation card is off by default).
    """
    fired: list[Recommendation] = []
    in_scope: dict[str, bool] = {}  # a scope is a pure function of the facts: asked once per call, not per rule
    for rule in rulebook.rules_of(hook):
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
