"""Issued cards link feedback to rules; ``her2-cds feedback report`` counts it per rule."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from cds_service.commands.feedback_report import command as feedback_cmd

ROOT = Path(__file__).resolve().parent.parent


def _request(name):
    return json.loads((ROOT / "fixtures" / "requests" / f"{name}.json").read_text())


def test_feedback_report_counts(client, migrated_db_url):
    resp = client.post("/cds-services/her2-mbc-order-sign", json=_request("p26-lvef35-order-sign"))
    cards = resp.get_json()["cards"]
    # S2-C (critical) first; the committed fixture's LVEF may be old enough for S2-DUE at order-sign too
    assert [c["extension"]["org.her2-cds.rule"]["id"] for c in cards][0] == "S2-C"
    resp2 = client.post("/cds-services/her2-mbc-order-sign", json=_request("p29-anthracycline-order-sign"))
    s3 = resp2.get_json()["cards"][0]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = cards[0]["overrideReasons"][0]
    fb = {"feedback": [
        {"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": now,
         "overrideReason": {"reason": reason, "userComment": "echo repeated"}},
        {"card": s3["uuid"], "outcome": "accepted", "outcomeTimestamp": now,
         "acceptedSuggestions": [{"id": s3["suggestions"][0]["uuid"]}]},
    ]}
    assert client.post("/cds-services/her2-mbc-order-sign/feedback", json=fb).status_code == 200

    result = CliRunner().invoke(feedback_cmd, ["report", "--json", "--database-url", migrated_db_url])
    assert result.exit_code == 0, result.output
    rows = {r["rule_id"]: r for r in json.loads(result.output)}
    assert rows["S2-C"]["issued"] == 1 and rows["S2-C"]["overridden"] == 1
    assert rows["S2-C"]["override_reasons"] == {reason["display"]: 1}
    assert rows["S3"]["accepted"] == 1 and rows["S3"]["overridden"] == 0
    text = CliRunner().invoke(feedback_cmd, ["report", "--database-url", migrated_db_url]).output
    assert "S2-C" in text and f"override: {reason['display']} (1)" in text
