"""Evaluating the rulebook against a patient's facts: fire, then suppress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Mapping

from .conditions import fact_refs, fact_value
from .model import Condition, Note, Recommendation, Rule, Rulebook, Suggestion
from .wording import render_text

# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------
Test = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class LiveRule:
    """A rule the record leaves open (``live_rules``): the tests still to run on each call's facts,
    and its suggestions, notes and summaries with theirs (those the record rules out are left out)."""

    rule: Rule
    tests: tuple[Test, ...]
    suggestions: tuple[tuple[Suggestion, tuple[Test, ...]], ...]
    notes: tuple[tuple[Note, tuple[Test, ...]], ...]
    summaries: tuple[tuple[Note, tuple[Test, ...]], ...]


def _holds(tests: tuple[Test, ...], facts: Mapping[str, Any]) -> bool:
    for test in tests:
        if not test(facts):
            return False
    return True


def evaluate(rulebook: Rulebook, facts: Mapping[str, Any], hook: str,
             rules: tuple[LiveRule, ...] | None = None) -> list[Recommendation]:
    """Fire every rule of this hook whose scope and condition hold, then apply suppression.

    Suppression is data (``suppresses: [F1]``): a more specific card (F5 for a
    frail patient) replaces a generic one (F1) rather than contradicting it, and a
    card that removes a drug silences the cards that would monitor or keep it
    (M4 suppresses S8).  Rules with ``enabled_by`` run only while that rulebook
    flag is on (F1's confirmation card is off by default).  ``rules``: this hook's
    rules that the record leaves open, with what is left to test (``live_rules``);
    by default every rule, tested whole.
    """
    fired: list[Recommendation] = []
    if rules is None:
        in_scope: dict[str, bool] = {}  # a scope is a pure function of the facts: asked once per call, not per rule
        for rule in rulebook.rules_of(hook):
            if rule.enabled_by is not None and not rulebook.enabled(rule):
                continue
            held = in_scope.get(rule.scope)
            if held is None:
                held = in_scope[rule.scope] = bool(rulebook.scopes[rule.scope].test(facts))
            if held and rule.when.test(facts):
                fired.append(_recommendation(rule, rulebook, facts,
                                             [s for s in rule.suggestions if s.when is None or s.when(facts)],
                                             [n for n in rule.notes if n.when(facts)],
                                             next((n for n in rule.summaries if n.when(facts)), None)))
    else:
        for live in rules:
            rule = live.rule
            if rule.enabled_by is not None and not rulebook.enabled(rule):
                continue
            if _holds(live.tests, facts):
                fired.append(_recommendation(rule, rulebook, facts,
                                             [s for s, tests in live.suggestions if _holds(tests, facts)],
                                             [n for n, tests in live.notes if _holds(tests, facts)],
                                             next((n for n, tests in live.summaries if _holds(tests, facts)), None)))
    suppressed = {sid for rec in fired for sid in rec.rule.suppresses}
    return [rec for rec in fired if rec.rule.id not in suppressed]


def _recommendation(rule: Rule, rulebook: Rulebook, facts: Mapping[str, Any], suggestions: list[Suggestion],
                    notes: list[Note], summary: Note | None) -> Recommendation:
    """A fired rule with the facts it read (a snapshot) and the suggestions, notes and summary that hold."""
    scope = rulebook.scopes[rule.scope]
    names = tuple(dict.fromkeys(scope.facts + rule.when.facts))
    snapshot = tuple((n, fact_value(facts, n), fact_refs(facts, n)) for n in names)
    return Recommendation(rule, snapshot, tuple(suggestions), tuple(render_text(n.text, facts) for n in notes),
                          summary.text if summary is not None else rule.card["summary"])


def live_rules(rulebook: Rulebook, hook: str, facts: Mapping[str, Any],
               per_call: AbstractSet[str]) -> tuple[LiveRule, ...]:
    """The rules of ``hook`` that the facts fixed for this record leave open, each with its tests still to run.

    Why: most rules are about a patient this one is not (51 of the 73 order-select
    rules at the bench patient fail on a fact read from the record alone: no
    HER2-low result, no brain metastasis, no ILD), and a chart's later hooks read
    the same record with new drafts.  Each condition (a rule's scope and
    condition, a suggestion's, a note's or a summary's) is taken part by part
    (the parts of an ``all``; any other condition is one part): a part that reads
    none of the ``per_call`` facts (those derived from this call's drafts and
    findings) has the same value on every call with this record.  False, the
    rule (or the suggestion, note, summary) is ruled out; true, it is not tested
    again; the parts that read a per-call fact are what ``evaluate`` runs, in
    order.  Flags are still checked per call, so the cards are those of the
    whole rulebook (tests/test_rules_evaluator.py, tests/test_history_memo.py).
    """
    def left(condition: Condition | None) -> tuple[Test, ...] | None:
        if condition is None:
            return ()
        tests = []
        for part in condition.conjuncts or (condition,):
            if not per_call.isdisjoint(part.facts):
                tests.append(part.test)
            elif not part.test(facts):
                return None
        return tuple(tests)

    def open_ones(items, when) -> tuple:
        out = []
        for item in items:
            tests = left(when(item))
            if tests is not None:
                out.append((item, tests))
        return tuple(out)

    scopes: dict[str, tuple | None] = {}
    live = []
    for rule in rulebook.rules_of(hook):
        if rule.scope not in scopes:
            scopes[rule.scope] = left(rulebook.scopes[rule.scope])
        scope_tests = scopes[rule.scope]
        if scope_tests is None:
            continue
        when_tests = left(rule.when)
        if when_tests is None:
            continue
        live.append(LiveRule(rule, scope_tests + when_tests,
                             open_ones(rule.suggestions, lambda s: s.when),
                             open_ones(rule.notes, lambda n: n.when),
                             open_ones(rule.summaries, lambda n: n.when)))
    return tuple(live)
