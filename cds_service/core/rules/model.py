"""The rulebook's compiled forms: rules, conditions, suggestions, the Rulebook and a fired Recommendation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

# --------------------------------------------------------------------------
# Compiled forms
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """A compiled condition: ``test(facts) -> bool`` plus the fact names it reads."""

    test: Callable[[Mapping[str, Any]], bool]
    facts: tuple[str, ...]
    source: Any
    # The parts of an ``all`` (each must hold for the condition to hold), else empty:
    # ``evaluate.live_rules`` tests them one by one against the facts fixed for a record.
    conjuncts: tuple["Condition", ...] = ()

    def __call__(self, facts: Mapping[str, Any]) -> bool:
        return self.test(facts)


@dataclass(frozen=True)
class Suggestion:
    label: str
    actions: tuple[dict, ...]
    when: Condition | None = None
    recommended: bool = False


@dataclass(frozen=True)
class Note:
    text: str
    when: Condition


@dataclass(frozen=True)
class Rule:
    id: str
    version: int
    title: str
    scope: str
    hooks: tuple[str, ...]
    when: Condition
    card: dict
    evidence: tuple[str, ...]
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: str = "at-most-one"
    notes: tuple[Note, ...] = ()
    summaries: tuple[Note, ...] = ()  # card.summaries: the first that holds replaces card.summary
    override_reasons: tuple[str, ...] = ()
    suppresses: tuple[str, ...] = ()
    show_findings: bool = False
    enabled_by: str | None = None
    once_per: str | None = None  # patient-view: shown once per value of this fact (an event), see protocol/repeats
    file: str = ""
    # fact → operators of the tests written in ``when`` itself (named scopes not opened);
    # derived once here for the cards' "Why this card".
    direct_tests: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Rulebook:
    id: str
    version: str
    title: str
    topic_system: str
    extension_key: str
    override_reason_system: str
    scopes: dict[str, Condition]
    facts: dict[str, str]
    fact_labels: dict[str, str]
    evidence: dict[str, dict]
    medications: dict[str, dict]
    service_requests: dict[str, dict]
    override_reasons: dict[str, dict]
    left_out: tuple[dict, ...]
    rules: tuple[Rule, ...]
    files: tuple[str, ...] = ()
    flags: dict[str, bool] | None = None
    # fact → value → the words a card writes for it (facts' `words`; drug classes get their
    # CodeSystem display when the knowledge is loaded), so "Why this card" shows no tokens.
    value_words: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # code → broader codes, for list facts whose values form a hierarchy (drug classes): a list
    # that holds "taxane" is written without its broader "chemotherapy".
    broader: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    # hook → its rules in rulebook order (made from ``rules``, again by dataclasses.replace): the
    # evaluator walks a hook's own rules rather than testing every rule's hooks on every call.
    by_hook: Mapping[str, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)
    # What the cards derive from this rulebook alone (a rule's evidence lines), made on first
    # use and kept: it is the same text on every call (core/cards.py).
    derived: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_hook: dict[str, list[Rule]] = {}
        for r in self.rules:
            for h in dict.fromkeys(r.hooks):
                by_hook.setdefault(h, []).append(r)
        object.__setattr__(self, "by_hook", {h: tuple(rs) for h, rs in by_hook.items()})
        object.__setattr__(self, "derived", {})

    def rules_of(self, hook: str) -> tuple[Rule, ...]:
        """The rules that run at ``hook``, in rulebook order (flags not applied)."""
        return self.by_hook.get(hook, ())

    def word(self, fact: str, value: Any) -> Any:
        """``value`` of ``fact`` in clinical words (lists item by item); unknown values unchanged."""
        words = self.value_words.get(fact)
        if not words:
            return value
        if isinstance(value, (list, tuple)):
            implied = {b for v in value for b in self.broader.get(v, ())}
            return [words.get(v, v) if isinstance(v, str) else v for v in value if v not in implied]
        return words.get(value, value) if isinstance(value, str) else value

    def enabled(self, rule: Rule) -> bool:
        """A rule with ``enabled_by: FLAG`` runs only while that rulebook flag is true."""
        return rule.enabled_by is None or bool((self.flags or {}).get(rule.enabled_by))

    def cited(self, ref: str) -> dict:
        """The evidence a rule cites as ``ID`` or ``ID#claim``, as the card shows it.

        A label supports different claims in different sections (Enhertu: ILD in
        the boxed warning, LVEF in 2.3, indications in 1): ``ID#claim`` gives the
        source with that claim's ``key`` and ``section``, so an LVEF card quotes the
        LVEF text, not the ILD warning (issue 22).
        """
        eid, _, claim = ref.partition("#")
        source = dict(self.evidence[eid])
        if claim:
            source.update(source.get("claims", {})[claim])
        source.pop("claims", None)
        return source

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


@dataclass(frozen=True)
class Recommendation:
    """One fired rule: what the card renderer needs, nothing patient-identifying added."""

    rule: Rule
    facts: tuple[tuple[str, Any, tuple[str, ...]], ...]
    suggestions: tuple[Suggestion, ...]
    notes: tuple[str, ...]
    summary: str = ""  # the card's summary for this patient (card.summary or the first card.summaries that holds)


@dataclass(frozen=True)
class RuleFacts:
    """What the rules read for one call and every finding behind its cards: the seam advice → cards.

    The profile's own facts and findings, plus what the call adds (``advice``:
    the prefetch's reading findings, ``findings``, ``data.unavailable``,
    ``hook``).  One frozen object instead of loose ``facts``/``findings``
    overrides, so the cards always render from the facts the rules fired on.
    """

    facts: Mapping[str, Any]
    findings: tuple[Any, ...] = ()

    @classmethod
    def of(cls, profile: Any) -> "RuleFacts":
        """The profile's own facts and findings (no call additions): cards rendered without ``advice``."""
        return cls(profile.facts, tuple(profile.findings))
