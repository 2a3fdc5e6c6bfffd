"""Every decision node of the HER2+ MBC pathway has a rule and a fixture patient that shows it (issue 20)."""

from __future__ import annotations

import csv

from click.testing import CliRunner

from cds_service.cli import cli
from cds_service.core.rules.pathway import load_pathway
from criteria_builders import ROOT

GROUPS = {"First line", "Induction length", "Maintenance", "Early relapse", "Second line", "Third line and later",
          "CNS", "HER2-low / ultralow", "Special populations", "Missing data", "Safety", "Staging"}


def _expected() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with open(ROOT / "fixtures" / "expected_cards.csv", newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["patient"], set()).update(t.split(":")[0] for t in row["expected"].split())
    return out


def test_every_node_has_rules_of_the_rulebook_and_fixtures_that_show_them(knowledge):
    pathway = load_pathway(ROOT / "fhir_profiles" / "rulebook")
    rules = {r.id: r for r in knowledge.rulebook.rules}
    expected = _expected()
    assert GROUPS <= {n["group"] for n in pathway["nodes"]}, "a pathway group has no node"
    for n in pathway["nodes"]:
        assert n["rules"] and n["fixtures"], n["node"]
        for rid in n["rules"]:
            assert rid in rules, f"{n['node']}: no rule {rid}"
        spoken = {h for rid in n["rules"] for h in rules[rid].hooks}
        assert set(n["hooks"]) == spoken, f"{n['node']}: hooks {n['hooks']} but its rules speak at {sorted(spoken)}"
        for pid in n["fixtures"]:
            assert pid in expected, f"{n['node']}: no fixture patient {pid}"
            assert expected[pid] & set(n["rules"]), f"{n['node']}: {pid} expects none of {n['rules']}"


def test_the_docs_table_is_the_generated_one():
    result = CliRunner().invoke(cli, ["rules", "pathway", "--profiles-dir", str(ROOT / "fhir_profiles")])
    assert result.exit_code == 0, result.output
    assert (ROOT / "docs" / "pathway-coverage.md").read_text() == result.output, \
        "docs/pathway-coverage.md is stale: her2-cds rules pathway > docs/pathway-coverage.md"
