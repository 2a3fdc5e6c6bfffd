"""``her2-cds feedback report``: acceptance and override counts per rule.

Why: every issued card is recorded with its rule id and rulebook version, so
clinician feedback on a card uuid becomes feedback on a rule — the signal
for revising a rule whose cards are mostly overridden.
"""

from __future__ import annotations

import json

import click

from ..config import from_env
from ..storage import Store


@click.group("feedback")
def command() -> None:
    """Feedback on issued cards."""


@command.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--database-url", default=None, help="Database URL (default: HER2CDS_DATABASE_URL).")
def report(as_json: bool, database_url: str | None) -> None:
    """Per rule and rulebook version: cards issued, accepted, overridden, and override reasons."""
    url = database_url or from_env().resolved_database_url()
    store = Store(url)
    try:
        rows = store.feedback_report()
    finally:
        store.dispose()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("No cards issued and no feedback recorded yet.")
        return
    click.echo(f"{'rule':<14} {'rulebook':<10} {'issued':>7} {'accepted':>9} {'overridden':>11}")
    for r in rows:
        if "unlinked_feedback" in r:
            click.echo(f"{r['rule_id']:<14} {'':<10} {'':>7} feedback on {r['unlinked_feedback']} unknown card(s)")
            continue
        click.echo(f"{r['rule_id']:<14} {r['rulebook_version']:<10} {r['issued']:>7} "
                   f"{r.get('accepted', 0):>9} {r.get('overridden', 0):>11}")
        for reason, n in sorted(r["override_reasons"].items(), key=lambda kv: (-kv[1], kv[0])):
            click.echo(f"{'':<14} override: {reason} ({n})")
