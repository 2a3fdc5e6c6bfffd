"""The fact contract is declared once, in rulebook.yaml, and held in both directions (issue 19).

Every fact the profile derives is declared (with its label for "Why this card"),
and every declared fact is derived by the profile or added by the pipeline
(``advice.advise``: ``hook``, ``findings``, ``data.unavailable``).  A fact
computed but not declared could never be named by a rule or explained on a
card; one declared but never derived would read as missing in every rule.
"""

from __future__ import annotations

import json

from cds_service.core.criteria import build_profile
from criteria_builders import ROOT

ADDED_BY_ADVICE = {"hook", "findings", "data.unavailable"}


def _profile(knowledge, name: str):
    req = json.loads((ROOT / "fixtures" / "requests" / name).read_text())
    resources = [v for v in req["prefetch"].values() if isinstance(v, dict)]
    return build_profile(resources, req["context"], knowledge.terminology, knowledge.parameters)


def test_every_derived_fact_is_declared_and_every_declared_fact_is_derived(knowledge):
    declared = set(knowledge.rulebook.facts)
    for name in ("p01-de-novo-thp-order-select.json", "p08-no-her2-patient-view.json",
                 "p90-progression-on-hp-patient-view.json"):
        derived = set(_profile(knowledge, name).facts)
        assert derived - declared == set(), f"{name}: derived but not declared in rulebook.yaml"
        assert declared - derived - ADDED_BY_ADVICE == set(), f"{name}: declared but never derived"


def test_every_declared_fact_has_a_clinical_label(knowledge):
    labels = knowledge.rulebook.fact_labels
    for name in knowledge.rulebook.facts:
        assert labels.get(name) and "." not in labels[name].split()[0], name


def test_the_rules_table_of_docs_rules_md_lists_every_rule_with_its_summary(knowledge):
    text = (ROOT / "docs" / "rules.md").read_text()
    for rule in knowledge.rulebook.rules:
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| {rule.id} |")), None)
        assert row is not None, f"docs/rules.md has no row for {rule.id}"
        assert rule.card["summary"].replace("|", "/") in row, f"docs/rules.md row of {rule.id} is stale"
