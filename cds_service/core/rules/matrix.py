"""The label safety matrix: one row of data per US-label criterion, one rule per row.

Why rows and not hand-written rules: every HER2 antibody, ADC, TKI and
chemotherapy label says the same kind of thing — *this drug* with *this
finding* beyond *this threshold* means *withhold / discontinue / do not give*
(label section so-and-so).  Written as rules one drug at a time, whole classes
were missed (knowledge file §2.6).  ``fhir_profiles/rulebook/label-matrix.yaml``
holds the rows; ``rules_of`` turns each into an ordinary rulebook rule (the
same schema check, evaluator and cards), and ``markdown`` renders the table in
``docs/label-safety-matrix.md`` with every criterion deliberately left out and
why.  Adding a label criterion is a row, not Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import KnowledgeError
from .source import read_part

MATRIX_FILE = "label-matrix.yaml"
ACTIONS = {
    "do-not-give": "do not give",
    "discontinue": "permanently discontinue",
    "withhold": "withhold until recovery",
    "interrupt": "interrupt and repeat the test",
    "add": "add the prophylaxis",
    "caution": "weigh the risk; specialist care",
    "reduce": "reduce the dose",
    "check": "check before giving",
    "monitor": "monitor more closely and adjust",
}
ROW_SCHEMA = {
    "type": "object",
    "required": ["id", "drugs", "drug_label", "finding", "when", "action", "indicator", "evidence", "section",
                 "summary", "detail", "fires", "silent"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^S[0-9]+(-[A-Z0-9]+)*$"},
        "version": {"type": "integer", "minimum": 1},
        "title": {"type": "string"},
        "drugs": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "drug_label": {"type": "string"},
        "finding": {"type": "string"},
        "when": {"type": "object"},
        "action": {"enum": sorted(ACTIONS)},
        "indicator": {"enum": ["critical", "warning", "info"]},
        "evidence": {"type": "string"},
        "section": {"type": "string"},
        "summary": {"type": "string", "maxLength": 139},
        "detail": {"type": "string"},
        "hooks": {"type": "array", "items": {"enum": ["order-select", "order-sign"]}},
        "suppresses": {"type": "array", "items": {"type": "string"}},
        "remove": {"type": "boolean"},
        # ingredients whose drafts the Remove suggestion deletes, when the label holds more than the
        # row's drugs (Perjeta: "withhold PERJETA and trastuzumab"); default: the row's drugs
        "remove_drugs": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "add": {"type": "object", "required": ["label", "medications"], "additionalProperties": False,
                "properties": {"label": {"type": "string"},
                               "medications": {"type": "array", "minItems": 1, "items": {"type": "string"}}}},
        "notes": {"type": "array"},
        "override_reasons": {"type": "array", "items": {"type": "string"}},
        "fires": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "silent": {"type": "array", "minItems": 1, "items": {"type": "string"}},
    },
}


def load_matrix(rulebook_dir: Path) -> dict | None:
    """The matrix document (``rows``, ``hand_written``, ``left_out``), or None when the folder has none."""
    path = Path(rulebook_dir) / MATRIX_FILE
    if not path.is_file():
        return None
    doc = read_part(path, "rows")
    import jsonschema

    validator = jsonschema.Draft202012Validator(ROW_SCHEMA)
    for i, row in enumerate(doc["rows"]):
        for err in validator.iter_errors(row):
            where = "/".join(str(p) for p in err.absolute_path)
            raise KnowledgeError(f"rulebook: {path}: /rows/{i}/{where}: {err.message} "
                                 f"(row {row.get('id') if isinstance(row, dict) else '?'})")
    return doc


def rules_of(matrix: dict) -> list[dict]:
    """Each row as a rulebook rule: the draft is one of the row's drugs and the finding holds."""
    return [_rule(row) for row in matrix["rows"]]


def _rule(row: dict) -> dict[str, Any]:
    critical = row["indicator"] == "critical"
    suggestions = []
    if row.get("add"):
        suggestions.append({"label": row["add"]["label"], "recommended": True,
                            "actions": [{"create_medication": m} for m in row["add"]["medications"]]})
    if row.get("remove", row["action"] in ("do-not-give", "discontinue", "withhold", "interrupt")):
        suggestions.append({"label": f"Remove the {row['drug_label']} order ({ACTIONS[row['action']].split(' until')[0]})",
                            "recommended": critical or not suggestions,
                            "actions": [{"delete_drafts": {"ingredients_any": list(row.get("remove_drugs")
                                                                                     or row["drugs"])}}]})
    detail = row["detail"].rstrip() + f"\nUS label: {row['section']}."
    rule: dict[str, Any] = {
        "id": row["id"], "version": row.get("version", 1),
        "title": row.get("title") or f"{row['drug_label']}: {row['finding']}"[:200],
        "scope": "breast_cancer", "hooks": list(row.get("hooks") or ["order-select", "order-sign"]),
        "when": {"all": [{"fact": "draft.ingredients", "contains_any": list(row["drugs"])}, row["when"]]},
        "card": {"indicator": row["indicator"], "summary": row["summary"], "detail": detail},
        "evidence": [row["evidence"]],
        "override_reasons": list(row.get("override_reasons") or (
            ["data-incorrect", "benefit-outweighs-risk"] if critical else ["data-incorrect", "clinician-judgement"])),
    }
    if suggestions:
        rule["suggestions"] = suggestions
        rule["selection_behavior"] = "at-most-one"
    if row.get("suppresses"):
        rule["suppresses"] = list(row["suppresses"])
    if row.get("notes"):
        rule["notes"] = list(row["notes"])
    return rule


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(matrix: dict, evidence: dict) -> str:
    """docs/label-safety-matrix.md: every row, every hand-written label rule, every criterion left out."""
    out = ["# Label safety matrix", "",
           "Generated from `fhir_profiles/rulebook/label-matrix.yaml` by `her2-cds rules matrix`; "
           "`tests/test_label_matrix.py` fails when this file is stale. Each row is one US-label criterion that "
           "FHIR data can show; the service turns each into one rule (same id) that fires on an order of the "
           "drug(s) when the finding holds. Lab thresholds are multiples of the result's own reference range "
           "(`referenceRange.high`/`.low`), with the stated default of `Parameters-criteria.json` when the result "
           "has none (the card's \"Why\" says so). **Fires** and **silent** name the fixture patients that show "
           "the row firing and a patient just outside its threshold.", "",
           "| rule | drug(s) | finding (threshold) | action | card | label | fires | silent |",
           "|---|---|---|---|---|---|---|---|"]
    for row in matrix["rows"]:
        eid = row["evidence"].partition("#")[0]
        label = evidence.get(eid, {}).get("label", eid)
        out.append(f"| {row['id']} | {_cell(', '.join(row['drugs']))} | {_cell(row['finding'])} | "
                   f"{ACTIONS[row['action']]} | {row['indicator']} | {_cell(label)}, {_cell(row['section'])} | "
                   f"{_cell(', '.join(row['fires']))} | {_cell(', '.join(row['silent']))} |")
    if matrix.get("hand_written"):
        out += ["", "## Label criteria held by hand-written rules", "",
                "Criteria whose card needs more than one row can say (grades, alternatives, notes) stay rules of "
                "their own in `rules-safety.yaml`.", "",
                "| rule | drug(s) | finding | label |", "|---|---|---|---|"]
        for h in matrix["hand_written"]:
            out.append(f"| {h['rule']} | {_cell(', '.join(h['drugs']))} | {_cell(h['finding'])} | {_cell(h['section'])} |")
    out += ["", "## Label criteria deliberately left out", "",
            "| drug(s) | criterion | label | why left out |", "|---|---|---|---|"]
    for lo in matrix.get("left_out") or ():
        out.append(f"| {_cell(', '.join(lo['drugs']))} | {_cell(lo['criterion'])} | {_cell(lo['section'])} | "
                   f"{_cell(lo['reason'])} |")
    return "\n".join(out) + "\n"
