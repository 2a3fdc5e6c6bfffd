"""``her2-cds rules check`` and ``her2-cds invoke-file`` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from cds_service.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def test_rules_check_ok():
    result = CliRunner().invoke(cli, ["rules", "check"])
    assert result.exit_code == 0, result.output
    assert "37 rules" in result.output or "rules in" in result.output


def test_rules_check_rejects_a_broken_rule_by_id_and_path(tmp_path):
    shutil.copytree(ROOT / "fhir_profiles" / "rulebook", tmp_path / "rulebook")
    p = tmp_path / "rulebook" / "rules-maintenance.yaml"
    p.write_text(p.read_text().replace("{fact: pik3ca, eq: mutated}", "{fact: pik3ca, equals: mutated}"))
    result = CliRunner().invoke(cli, ["rules", "check", "--profiles-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "rule P1" in result.output and "/when" in result.output


def test_invoke_file_prints_cards_for_a_fixture():
    req = ROOT / "fixtures" / "requests" / "p29-anthracycline-order-sign.json"
    text = CliRunner().invoke(cli, ["invoke-file", str(req)])
    assert text.exit_code == 0, text.output
    assert "[CRITICAL]" in text.output and "Anthracycline" in text.output
    as_json = CliRunner().invoke(cli, ["invoke-file", "--json", "--today", "2026-06-01", str(req)])
    cards = json.loads(as_json.output)["cards"]
    # S3 (critical) alone: it stands in for F2's "add pertuzumab" to the order set it stops
    # (S3 v2, fourth independent review case 13)
    assert [c["extension"]["org.her2-cds.rule"]["id"] for c in cards] == ["S3"]
