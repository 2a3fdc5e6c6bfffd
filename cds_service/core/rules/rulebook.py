"""The rulebook: loading, schema check, and the condition evaluator.

Why rules are data: every clinical statement the service makes lives in
``fhir_profiles/rulebook/*.yaml`` next to its evidence, where a clinician can
review it without reading Python, and where ``her2-cds rules check`` and the
start-up check can reject a broken rule *by id and JSON path* before the
service answers anyone.  This module only knows the condition language; it
knows nothing about HER2.

Condition language (JSON/YAML)::

    {all: [c, ...]}   {any: [c, ...]}   {not: c}
    {fact: NAME, OP: OPERAND}

with OP one of ``eq ne in not_in gt gte lt lte contains contains_any
contains_all exists``.  A fact the profile does not have reads as ``None``;
``None`` never satisfies a comparison (``gt``/``in``/...), so missing data
makes a rule silent rather than confidently wrong.  ``ne`` and ``not`` are
the exceptions by design (``{fact: ild, ne: true}`` is true when ILD is
unknown), so rules that must *know* a value use ``eq``/``in``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping


from ..errors import KnowledgeError
from .matrix import MATRIX_FILE, load_matrix, rules_of
from .source import read_part

SCHEMA_PATH = Path(__file__).resolve().parent / "rulebook.schema.json"
RULEBOOK_DIRNAME = "rulebook"
META_FILE = "rulebook.yaml"

# A card's own text is read in a narrow EHR panel: the advice and key numbers in at most
# five short lines (the schema caps it at 500 characters); evidence and "why" follow as lists.
DETAIL_MAX_LINES = 5

COMPARATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte",
               "contains", "contains_any", "contains_all", "exists")


# --------------------------------------------------------------------------
# Compiled forms
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """A compiled condition: ``test(facts) -> bool`` plus the fact names it reads."""

    test: Callable[[Mapping[str, Any]], bool]
    facts: tuple[str, ...]
    source: Any

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


# --------------------------------------------------------------------------
# Fact access
# --------------------------------------------------------------------------
def fact_value(facts: Mapping[str, Any], name: str) -> Any:
    """Value of a fact; accepts ``Fact`` objects (``.value``) or plain values (unit tests)."""
    item = facts.get(name)
    if item is None:
        return None
    return getattr(item, "value", item)


def fact_refs(facts: Mapping[str, Any], name: str) -> tuple[str, ...]:
    item = facts.get(name)
    return tuple(getattr(item, "refs", ()) or ())


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, (list, tuple, set, frozenset)):
        return list(v)
    return [v]


def _eq(a: Any, b: Any) -> bool:
    if isinstance(b, bool) or isinstance(a, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _compare(op: str, value: Any, operand: Any) -> bool:
    if op == "eq":
        return _eq(value, operand)
    if op == "ne":
        return not _eq(value, operand)
    if op == "in":
        return value is not None and any(_eq(value, o) for o in operand)
    if op == "not_in":
        return value is not None and not any(_eq(value, o) for o in operand)
    if op in ("gt", "gte", "lt", "lte"):
        if not _is_number(value):
            return False
        return {"gt": value > operand, "gte": value >= operand,
                "lt": value < operand, "lte": value <= operand}[op]
    if op == "contains":
        return operand in _as_list(value)
    if op == "contains_any":
        return bool(set(_as_list(value)) & set(operand))
    if op == "contains_all":
        return set(operand) <= set(_as_list(value))
    if op == "exists":
        present = value is not None and value != [] and value != ()
        return present == bool(operand)
    raise ValueError(op)  # unreachable: the schema rejects unknown operators


def compile_condition(node: Any, path: str = "", known_facts: Iterable[str] | None = None,
                      scopes: Mapping[str, Condition] | None = None) -> Condition:
    """Compile a condition tree once; raise ``ValueError(path, message)`` on a bad node."""
    known = set(known_facts) if known_facts is not None else None
    return _compile(node, path, known, scopes or {})


def _compile(node: Any, path: str, known: set | None, scopes: Mapping[str, Condition]) -> Condition:
    if not isinstance(node, dict) or not node:
        raise ValueError(path, "a condition must be a non-empty mapping")
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        if len(node) != 1 or not isinstance(node[key], list) or not node[key]:
            raise ValueError(path, f"'{key}' must be the only key and hold a non-empty list")
        parts = [_compile(c, f"{path}/{key}/{i}", known, scopes) for i, c in enumerate(node[key])]
        combine = all if key == "all" else any
        facts = tuple(dict.fromkeys(f for p in parts for f in p.facts))
        return Condition(lambda fx, parts=parts, combine=combine: combine(p(fx) for p in parts), facts, node)
    if "not" in node:
        if len(node) != 1:
            raise ValueError(path, "'not' must be the only key")
        inner = _compile(node["not"], f"{path}/not", known, scopes)
        return Condition(lambda fx, inner=inner: not inner(fx), inner.facts, node)
    if "scope" in node:
        name = node["scope"]
        if len(node) != 1 or name not in scopes:
            raise ValueError(path, f"unknown scope {name!r}")
        return scopes[name]
    if "fact" in node:
        name = node["fact"]
        ops = [k for k in node if k != "fact"]
        if len(ops) != 1 or ops[0] not in COMPARATORS:
            raise ValueError(path, f"a fact test needs exactly one operator of {', '.join(COMPARATORS)}")
        if known is not None and name not in known:
            raise ValueError(f"{path}/fact", f"unknown fact {name!r}")
        op, operand = ops[0], node[ops[0]]
        if op in ("in", "not_in", "contains_any", "contains_all") and not isinstance(operand, list):
            raise ValueError(f"{path}/{op}", f"'{op}' needs a list")
        if op in ("gt", "gte", "lt", "lte") and not _is_number(operand):
            raise ValueError(f"{path}/{op}", f"'{op}' needs a number")
        return Condition(lambda fx, name=name, op=op, operand=operand:
                         _compare(op, fact_value(fx, name), operand), (name,), node)
    raise ValueError(path, "expected one of all/any/not/scope/fact")


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------
def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _json_path(parts: Iterable) -> str:
    return "/" + "/".join(str(p) for p in parts)


def load_rulebook_document(rulebook_dir: Path) -> tuple[dict, list[str]]:
    """Merge ``rulebook.yaml`` (metadata, evidence, catalogs) with every ``rules-*.yaml``."""
    meta_path = rulebook_dir / META_FILE
    if not meta_path.is_file():
        raise KnowledgeError(f"rulebook: {meta_path} is missing")
    doc = read_part(meta_path)
    rules: list = list(doc.get("rules") or [])
    origin = [META_FILE] * len(rules)
    files = [META_FILE]
    for path in sorted(rulebook_dir.glob("rules-*.yaml")):
        part = read_part(path, "rules")
        rules.extend(part["rules"])
        origin.extend([path.name] * len(part["rules"]))
        files.append(path.name)
    matrix = load_matrix(rulebook_dir)
    if matrix is not None:
        generated = rules_of(matrix)
        rules.extend(generated)
        origin.extend([MATRIX_FILE] * len(generated))
        files.append(MATRIX_FILE)
    doc["rules"] = rules
    doc["_origin"] = origin
    return doc, files


def _rule_label(doc: dict, path: list) -> str:
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        rules = doc.get("rules") or []
        rid = rules[path[1]].get("id") if path[1] < len(rules) and isinstance(rules[path[1]], dict) else None
        origin = doc.get("_origin") or []
        where = origin[path[1]] if path[1] < len(origin) else "?"
        return f"rule {rid or '(no id)'} ({where})"
    return "rulebook"


def validate_document(doc: dict) -> list[str]:
    """All problems with a rulebook document, each naming the rule id and JSON path."""
    import jsonschema

    body = {k: v for k, v in doc.items() if not k.startswith("_")}
    validator = jsonschema.Draft202012Validator(_schema())
    problems = []
    for err in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        path = list(err.absolute_path)
        problems.append(f"{_rule_label(doc, path)}: {_json_path(path)}: {err.message}")
    if problems:
        return problems
    problems.extend(_semantic_problems(doc))
    return problems


def _compile_scopes(nodes: Mapping[str, Any], facts: Iterable[str]) -> tuple[dict, list[str]]:
    """Named conditions in file order; a scope may use the scopes defined above it."""
    compiled: dict[str, Condition] = {}
    problems = []
    for name, node in nodes.items():
        try:
            compiled[name] = compile_condition(node, f"/scopes/{name}", facts, compiled)
        except ValueError as exc:
            problems.append(f"rulebook: {exc.args[0]}: {exc.args[1]}")
    return compiled, problems


def _semantic_problems(doc: dict) -> list[str]:
    """Cross-references the schema cannot express: ids, evidence, catalogs, fact names."""
    seen: set[str] = set()
    facts = set(doc.get("facts") or {})
    scopes = doc.get("scopes") or {}
    compiled_scopes, out = _compile_scopes(scopes, facts)
    rules = doc.get("rules") or []
    rule_ids = {r.get("id") for r in rules}
    for i, r in enumerate(rules):
        label = _rule_label(doc, ["rules", i])
        base = f"/rules/{i}"
        if r["id"] in seen:
            out.append(f"{label}: {base}/id: duplicate rule id {r['id']!r}")
        seen.add(r["id"])
        if r["scope"] not in scopes:
            out.append(f"{label}: {base}/scope: unknown scope {r['scope']!r}")
        if r.get("once_per") is not None and r["once_per"] not in facts:
            out.append(f"{label}: {base}/once_per: unknown fact {r['once_per']!r}")
        if r.get("once_per") is not None and list(r.get("hooks") or []) != ["patient-view"]:
            out.append(f"{label}: {base}/once_per: only for patient-view rules (order hooks have their own repeats)")
        for j, ev in enumerate(r.get("evidence") or []):
            eid, _, claim = ev.partition("#")
            if eid not in (doc.get("evidence") or {}):
                out.append(f"{label}: {base}/evidence/{j}: unknown evidence {ev!r}")
            elif claim and claim not in (doc["evidence"][eid].get("claims") or {}):
                out.append(f"{label}: {base}/evidence/{j}: evidence {eid!r} has no claim {claim!r}")
        for j, code in enumerate(r.get("override_reasons") or []):
            if code not in (doc.get("override_reasons") or {}):
                out.append(f"{label}: {base}/override_reasons/{j}: unknown override reason {code!r}")
        for j, sid in enumerate(r.get("suppresses") or []):
            if sid not in rule_ids:
                out.append(f"{label}: {base}/suppresses/{j}: unknown rule {sid!r}")
        recommended = 0
        for j, s in enumerate(r.get("suggestions") or []):
            recommended += bool(s.get("recommended"))
            for k, a in enumerate(s.get("actions") or []):
                apath = f"{base}/suggestions/{j}/actions/{k}"
                if "create_medication" in a and a["create_medication"] not in (doc.get("medications") or {}):
                    out.append(f"{label}: {apath}/create_medication: unknown medication {a['create_medication']!r}")
                if "create_service_request" in a and a["create_service_request"] not in (doc.get("service_requests") or {}):
                    out.append(f"{label}: {apath}/create_service_request: unknown service request "
                               f"{a['create_service_request']!r}")
        if r.get("enabled_by") is not None and r["enabled_by"] not in (doc.get("flags") or {}):
            out.append(f"{label}: {base}/enabled_by: unknown flag {r['enabled_by']!r}")
        detail_lines = [ln for ln in r["card"]["detail"].strip().splitlines() if ln.strip()]
        if len(detail_lines) > DETAIL_MAX_LINES:
            out.append(f"{label}: {base}/card/detail: {len(detail_lines)} lines; lead with the advice in at most "
                       f"{DETAIL_MAX_LINES} short lines (the full explanation lives in the SMART app)")
        if recommended > 1 and r.get("selection_behavior", "at-most-one") == "at-most-one":
            out.append(f"{label}: {base}/suggestions: more than one recommended suggestion with at-most-one")
        trees = [(f"{base}/when", r.get("when"))]
        trees += [(f"{base}/suggestions/{j}/when", s["when"]) for j, s in enumerate(r.get("suggestions") or [])
                  if "when" in s]
        trees += [(f"{base}/notes/{j}/when", n["when"]) for j, n in enumerate(r.get("notes") or [])]
        for j, n in enumerate(r.get("notes") or []):
            for name in PLACEHOLDER.findall(n["text"]):
                if name not in facts:
                    out.append(f"{label}: {base}/notes/{j}/text: unknown fact {name!r} in a placeholder")
        for p, node in trees:
            try:
                compile_condition(node, p, facts, compiled_scopes)
            except ValueError as exc:
                out.append(f"{label}: {exc.args[0]}: {exc.args[1]}")
    return out


def build_rulebook(doc: dict, files: Iterable[str] = ()) -> Rulebook:
    """Compile a *validated* document into immutable objects."""
    facts = {name: spec["type"] for name, spec in doc["facts"].items()}
    fact_labels = {name: spec["label"] for name, spec in doc["facts"].items()}
    scopes, _ = _compile_scopes(doc["scopes"], facts)
    rules = []
    origin = doc.get("_origin") or []
    for i, r in enumerate(doc["rules"]):
        base = f"/rules/{i}"

        def cc(node, p):
            return compile_condition(node, p, facts, scopes)

        suggestions = tuple(
            Suggestion(label=s["label"], actions=tuple(s["actions"]),
                       when=cc(s["when"], f"{base}/suggestions/{j}/when") if "when" in s else None,
                       recommended=bool(s.get("recommended")))
            for j, s in enumerate(r.get("suggestions") or [])
        )
        notes = tuple(Note(n["text"], cc(n["when"], f"{base}/notes/{j}/when"))
                      for j, n in enumerate(r.get("notes") or []))
        summaries = tuple(Note(n["text"], cc(n["when"], f"{base}/card/summaries/{j}/when"))
                          for j, n in enumerate(r["card"].get("summaries") or []))
        rules.append(Rule(
            id=r["id"], version=int(r["version"]), title=r["title"], scope=r["scope"],
            hooks=tuple(r["hooks"]), when=cc(r["when"], f"{base}/when"), card=dict(r["card"]),
            evidence=tuple(r["evidence"]), suggestions=suggestions,
            selection_behavior=r.get("selection_behavior", "at-most-one"), notes=notes, summaries=summaries,
            override_reasons=tuple(r.get("override_reasons") or ()),
            suppresses=tuple(r.get("suppresses") or ()), show_findings=bool(r.get("show_findings")),
            enabled_by=r.get("enabled_by"), once_per=r.get("once_per"), file=origin[i] if i < len(origin) else "",
            direct_tests={name: frozenset(ops) for name, ops in _direct_tests(r["when"], {}).items()},
        ))
    return Rulebook(
        id=doc["id"], version=str(doc["version"]), title=doc["title"], topic_system=doc["topic_system"],
        extension_key=doc["extension_key"],
        override_reason_system=doc["override_reason_system"], scopes=scopes, facts=facts, fact_labels=fact_labels,
        value_words={name: dict(spec["words"]) for name, spec in doc["facts"].items() if spec.get("words")},
        evidence=dict(doc["evidence"]),
        medications=dict(doc["medications"]), service_requests=dict(doc.get("service_requests") or {}),
        override_reasons=dict(doc["override_reasons"]), left_out=tuple(doc.get("left_out") or ()),
        rules=tuple(rules), files=tuple(files), flags=dict(doc.get("flags") or {}),
    )


def _direct_tests(node: Any, out: dict[str, set[str]]) -> dict[str, set[str]]:
    """fact → operators of the tests written in the rule itself (named scopes not opened)."""
    if isinstance(node, dict):
        for key in ("all", "any"):
            for child in node.get(key) or ():
                _direct_tests(child, out)
        if "not" in node:
            _direct_tests(node["not"], out)
        if "fact" in node:
            out.setdefault(node["fact"], set()).update(k for k in node if k != "fact")
    return out


def check_rulebook_dir(rulebook_dir: Path) -> tuple[Rulebook | None, list[str]]:
    """Load and check; return (rulebook or None, problems). Used by ``her2-cds rules check``."""
    try:
        doc, files = load_rulebook_document(Path(rulebook_dir))
    except KnowledgeError as exc:
        return None, [str(exc)]
    problems = validate_document(doc)
    if problems:
        return None, problems
    return build_rulebook(doc, files), []


def load_rulebook(profiles_dir) -> Rulebook:
    """Start-up entry point (knowledge.py): a broken rule stops the service, by id and path."""
    rulebook_dir = Path(profiles_dir) / RULEBOOK_DIRNAME
    rulebook, problems = check_rulebook_dir(rulebook_dir)
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise KnowledgeError(f"rulebook {rulebook_dir}: {shown}{more}")
    return rulebook


# --------------------------------------------------------------------------
# Fact values in note text
# --------------------------------------------------------------------------
# ``{{fact.name}}`` in a note is replaced by that fact's value, so a card resting on an
# estimate can say which course it estimated from ("≈ 6 docetaxel cycles (estimated from
# the course 2 Mar 2025 – 15 Jun 2025 …)").  Load-time checks reject unknown fact names.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def human_date(d: dt.date) -> str:
    """A date as cards and notes write it: ``7 Apr 2025``."""
    return f"{d.day} {d:%b %Y}"


def format_value(value: Any, missing: str = "not recorded") -> str:
    """A fact value as a clinician reads it (notes, cards' "Why this card" and the SMART page)."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _text_value(value: Any) -> str:
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return human_date(dt.date.fromisoformat(value))
        except ValueError:
            return value
    return format_value(value)


def render_text(text: str, facts: Mapping[str, Any]) -> str:
    """``text`` with each ``{{fact.name}}`` replaced by the fact's value as a clinician reads it."""
    return PLACEHOLDER.sub(lambda m: _text_value(fact_value(facts, m.group(1))), text)


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
    for rule in rulebook.rules:
        if hook not in rule.hooks or not rulebook.enabled(rule):
            continue
        scope = rulebook.scopes[rule.scope]
        held = in_scope.get(rule.scope)
        if held is None:
            held = in_scope[rule.scope] = bool(scope(facts))
        if not held or not rule.when(facts):
            continue
        names = tuple(dict.fromkeys(scope.facts + rule.when.facts))
        snapshot = tuple((n, fact_value(facts, n), fact_refs(facts, n)) for n in names)
        suggestions = tuple(s for s in rule.suggestions if s.when is None or s.when(facts))
        notes = tuple(render_text(n.text, facts) for n in rule.notes if n.when(facts))
        summary = next((n.text for n in rule.summaries if n.when(facts)), rule.card["summary"])
        fired.append(Recommendation(rule, snapshot, suggestions, notes, summary))
    suppressed = {sid for rec in fired for sid in rec.rule.suppresses}
    return [rec for rec in fired if rec.rule.id not in suppressed]
