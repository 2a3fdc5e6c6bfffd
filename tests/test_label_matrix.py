"""The label safety matrix is data, its table is generated, and every row is shown firing and silent (issue 20)."""

from __future__ import annotations

import csv

import pytest
import yaml
from click.testing import CliRunner

from cds_service.cli import cli
from cds_service.core.errors import KnowledgeError
from cds_service.core.rules.matrix import load_matrix, rules_of
from criteria_builders import ROOT

RULEBOOK = ROOT / "fhir_profiles" / "rulebook"


@pytest.fixture(scope="module")
def matrix():
    return load_matrix(RULEBOOK)


@pytest.fixture(scope="module")
def expected():
    """patient → the rule ids its fixture calls expect (fixtures/expected_cards.csv)."""
    out: dict[str, set[str]] = {}
    with open(ROOT / "fixtures" / "expected_cards.csv", newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["patient"], set()).update(t.split(":")[0] for t in row["expected"].split())
    return out


def test_the_docs_table_is_the_generated_one():
    result = CliRunner().invoke(cli, ["rules", "matrix", "--profiles-dir", str(ROOT / "fhir_profiles")])
    assert result.exit_code == 0, result.output
    assert (ROOT / "docs" / "label-safety-matrix.md").read_text() == result.output, \
        "docs/label-safety-matrix.md is stale: her2-cds rules matrix > docs/label-safety-matrix.md"


def test_every_row_is_a_rule_of_the_rulebook(matrix, knowledge):
    ids = {r.id for r in knowledge.rulebook.rules}
    assert {row["id"] for row in matrix["rows"]} <= ids
    for rule in knowledge.rulebook.rules:
        if rule.file == "label-matrix.yaml":
            assert rule.hooks == ("order-select", "order-sign") and rule.evidence


def test_every_row_fires_on_its_patient_and_stays_silent_just_outside(matrix, expected):
    for row in matrix["rows"]:
        for pid in row["fires"]:
            assert pid in expected, f"{row['id']}: fixture {pid} does not exist"
            assert row["id"] in expected[pid], f"{row['id']}: {pid} is not expected to fire it"
        for pid in row["silent"]:
            assert pid in expected, f"{row['id']}: fixture {pid} does not exist"
            assert row["id"] not in expected[pid], f"{row['id']}: {pid} should be just outside it"


def test_a_row_names_where_it_is_wrong(tmp_path):
    doc = yaml.safe_load((RULEBOOK / "label-matrix.yaml").read_text())
    doc["rows"][0]["action"] = "maybe"
    (tmp_path / "label-matrix.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(KnowledgeError, match=r"/rows/0/action"):
        load_matrix(tmp_path)


def test_a_row_becomes_an_order_rule_on_its_drugs(matrix):
    rule = next(r for r in rules_of(matrix) if r["id"] == "S12-N")
    assert rule["when"]["all"][0] == {"fact": "draft.ingredients", "contains_any": ["docetaxel"]}
    assert rule["card"]["detail"].rstrip().endswith("Warnings and Precautions, Hematologic Effects.")
    assert rule["suggestions"][0]["actions"] == [{"delete_drafts": {"ingredients_any": ["docetaxel"]}}]
