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
    """A rule as ``evaluate`` runs it: the scope to ask (once per call, shared by the rules that name it;
    None when already decided), the tests still to run, and its suggestions, notes and summaries with
    theirs.  ``whole_book`` has every rule tested whole; ``live_rules`` what a record leaves open."""

    rule: Rule
    scope: str | None
    tests: tuple[Test, ...]
    suggestions: tuple[tuple[Suggestion, tuple[Test, ...]], ...]
    notes: tuple[tuple[Note, tuple[Test, ...]], ...]
    summaries: tuple[tuple[Note, tuple[Test, ...]], ...]


def _holds(tests: tuple[Test, ...], facts: Mapping[str, Any]) -> bool:
    for test in tests:
        if not test(facts):
            return False
    return True


def whole_book(rulebook: Rulebook, hook: str) -> tuple[LiveRule, ...]:
    """This hook's rules, each to be tested whole (made once per rulebook and hook)."""
    key = ("whole book", hook)
    held = rulebook.derived.get(key)
    if held is None:
        def whole(condition: Condition | None) -> tuple[Test, ...]:
            return () if condition is None else (condition.test,)
        held = rulebook.derived[key] = tuple(_live(rule, rule.scope, whole(rule.when), whole)
                                             for rule in rulebook.rules_of(hook))
    return held


def _live(rule: Rule, scope: str | None, tests: tuple[Test, ...],
          left: Callable[[Condition | None], tuple[Test, ...] | None]) -> LiveRule:
    """``rule`` with its suggestions, notes and summaries, each with ``left(its condition)`` (None: left out)."""
    def kept(items) -> tuple:
        return tuple((item, t) for item in items if (t := left(item.when)) is not None)
    return LiveRule(rule, scope, tests, kept(rule.suggestions), kept(rule.notes), kept(rule.summaries))


def evaluate(rulebook: Rulebook, facts: Mapping[str, Any], hook: str,
             rules: tuple[LiveRule, ...] | None = None) -> list[Recommendation]:
    """Fire every rule of this hook whose scope and condition hold, then apply suppression.

    Suppression is data (``suppresses: [F1]``): a more specific card (F5 for a
    frail patient) replaces a generic one (F1) rather than contradicting it, and a
    card that removes a drug silences the cards that would monitor or keep it
    (M4 suppresses S8).  Rules with ``enabled_by`` run only while that rulebook
    flag is on (F1's confirmation card is off by default).  ``rules``: this hook's
    rules that the record leaves open, with what is left to test (``live_rules``);
    by default every rule, tested whole (``whole_book``).
    """
    fired: list[Recommendation] = []
    in_scope: dict[str, bool] = {}  # a scope is a pure function of the facts: asked once per call, not per rule
    for live in whole_book(rulebook, hook) if rules is None else rules:
        rule = live.rule
        if rule.enabled_by is not None and not rulebook.enabled(rule):
            continue
        if live.scope is not None:
            held = in_scope.get(live.scope)
            if held is None:
                held = in_scope[live.scope] = bool(rulebook.scopes[live.scope].test(facts))
            if not held:
                continue
        if _holds(live.tests, facts):
            fired.append(_recommendation(live, rulebook, facts))
    suppressed = {sid for rec in fired for sid in rec.rule.suppresses}
    return [rec for rec in fired if rec.rule.id not in suppressed]


def _recommendation(live: LiveRule, rulebook: Rulebook, facts: Mapping[str, Any]) -> Recommendation:
    """A fired rule with the facts it read (a snapshot) and the suggestions, notes and summary that hold."""
    rule = live.rule
    names = tuple(dict.fromkeys(rulebook.scopes[rule.scope].facts + rule.when.facts))
    snapshot = tuple((n, fact_value(facts, n), fact_refs(facts, n)) for n in names)
    suggestions = tuple(s for s, tests in live.suggestions if _holds(tests, facts))
    notes = tuple(render_text(n.text, facts) for n, tests in live.notes if _holds(tests, facts))
    summary = next((n.text for n, tests in live.summaries if _holds(tests, facts)), rule.card["summary"])
    return Recommendation(rule, snapshot, suggestions, notes, summary)


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
        live.append(_live(rule, None, scope_tests + when_tests, left))
    return tuple(live)
