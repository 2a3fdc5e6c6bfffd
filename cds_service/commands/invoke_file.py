"""``her2-cds invoke-file REQUEST.json``: the cards for a saved CDS Hooks request, offline.

Why: to review what a fixture or a captured EHR request produces without a
server, FHIR endpoint or token — the request's prefetch is the whole input,
and the same pure pipeline (``advice.advise``) as the HTTP service runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command("invoke-file")
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the CDS Hooks response JSON instead of text.")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Evaluate as of this date (the committed fixtures are anchored at 2026-06-01).")
def command(request_file: Path, as_json: bool, today) -> None:
    """Print the cards for REQUEST_FILE (a CDS Hooks request with prefetch filled)."""
    from ..core import advice
    from ..config import from_env
    from ..core.knowledge import KnowledgeError, load_knowledge
    from .invoke import format_cards

    try:
        body = json.loads(request_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{request_file}: not a JSON file ({exc})") from exc
    try:
        knowledge = load_knowledge(from_env())
    except KnowledgeError as exc:
        click.echo(f"her2-cds: {exc}", err=True)
        sys.exit(2)
    hook = body.get("hook") if isinstance(body, dict) else None
    service = next((s for s in knowledge.services.by_id.values() if s.hook == hook), None)
    if service is None:
        raise click.ClickException(f"{request_file}: hook {hook!r} has no service here")
    if not isinstance(body.get("context"), dict):
        raise click.ClickException(f"{request_file}: the request has no context object")
    resources = [v for v in (body.get("prefetch") or {}).values() if isinstance(v, dict)]
    cards = advice.advise(hook, service.id, body["context"], resources, [], knowledge,
                          today=today.date() if today else None).cards
    response = {"cards": cards}
    if as_json:
        click.echo(json.dumps(response, indent=2))
    else:
        click.echo(f"{service.id} ({hook}) for patient {body['context'].get('patientId')}")
        click.echo(format_cards(response))
