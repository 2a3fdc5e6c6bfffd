"""Loading the rulebook: the YAML parts, the JSON Schema, the semantic checks, and the compiled Rulebook.

A broken rule is rejected *by id and JSON path* by ``her2-cds rules check`` and at
start-up, before the service answers anyone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import KnowledgeError
from .conditions import compile_condition
from .matrix import MATRIX_FILE, load_matrix, rules_of
from .model import Condition, Note, Rule, Rulebook, Suggestion
from .source import read_part
from .wording import PLACEHOLDER

SCHEMA_PATH = Path(__file__).resolve().parent / "rulebook.schema.json"
RULEBOOK_DIRNAME = "rulebook"
META_FILE = "rulebook.yaml"

# A card's own text is read in a narrow EHR panel: the advice and key numbers in at most
# five short lines (the schema caps it at 500 characters); evidence and "why" follow as lists.
DETAIL_MAX_LINES = 5

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
    """Start-up entry point (``knowledge.load_knowledge``): a broken rule stops the service, by id and path."""
    rulebook_dir = Path(profiles_dir) / RULEBOOK_DIRNAME
    rulebook, problems = check_rulebook_dir(rulebook_dir)
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise KnowledgeError(f"rulebook {rulebook_dir}: {shown}{more}")
    return rulebook
