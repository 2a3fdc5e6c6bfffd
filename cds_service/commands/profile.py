"""``her2-cds profile PATH``: print the clinical profile of a FHIR Bundle or a CDS Hooks request.

Useful to see what the rules see (and why) for a chart exported from an EHR.
Reads only the local file; no network, no database.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click


def resources_and_context(document: dict) -> tuple[list[dict], dict]:
    """A Bundle → its resources (no context); a CDS Hooks request → prefetch values + context."""
    from ..core.parse import entry_resources

    if document.get("resourceType") == "Bundle":
        resources = [r for r in entry_resources(document) if r is not None]
        patient_ids = [r.get("id") for r in resources if isinstance(r, dict) and r.get("resourceType") == "Patient"]
        return resources, {"patientId": patient_ids[0] if patient_ids else None}
    if "hook" in document or "context" in document:
        prefetch = document.get("prefetch") or {}
        return [v for v in prefetch.values() if isinstance(v, dict)], dict(document.get("context") or {})
    if document.get("resourceType"):
        return [document], {}
    raise click.ClickException("the file is neither a FHIR Bundle nor a CDS Hooks request")


def _show(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


@click.command("profile")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON instead of a table.")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Evaluate as of this date (default: today).")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="fhir_profiles folder (default: HER2CDS_PROFILES_DIR or the bundled one).")
def command(path: Path, as_json: bool, today, profiles_dir: Path | None) -> None:
    """Print the HER2 MBC clinical profile of a FHIR Bundle or CDS Hooks request file."""
    from ..config import from_env
    from ..core.criteria import build_profile
    from ..core.knowledge import KnowledgeError
    from ..core.knowledge.parameters import load_criteria_parameters
    from ..core.knowledge.terminology import load_terminology

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(document, dict):
        raise click.ClickException(f"{path}: expected a JSON object")
    try:
        folder = profiles_dir or from_env().profiles_dir
        terminology, parameters = load_terminology(folder), load_criteria_parameters(folder)
    except KnowledgeError as exc:
        raise click.ClickException(str(exc)) from None
    resources, context = resources_and_context(document)
    profile = build_profile(resources, context, terminology, parameters, today.date() if today else dt.date.today())
    if as_json:
        click.echo(json.dumps(profile.to_json(), indent=2, ensure_ascii=False))
        return
    width = max(len(k) for k in profile.facts)
    click.echo(f"Patient {profile.patient_id or '(unknown)'}")
    for name, fact in profile.facts.items():
        line = f"  {name.ljust(width)}  {_show(fact.value)}"
        if fact.refs:
            line += f"   [{', '.join(fact.refs[:4])}{' …' if len(fact.refs) > 4 else ''}]"
        if fact.note:
            line += f"   ({fact.note})"
        click.echo(line)
    if profile.draft_orders:
        click.echo("Draft orders")
        for d in profile.draft_orders:
            click.echo(f"  {d.resource_ref}: {', '.join(d.ingredients)} [{', '.join(d.classes)}]")
    if profile.findings:
        click.echo("Data-quality findings")
        for f in profile.findings:
            click.echo(f"  {f.code}: {f.message}")
    sys.stdout.flush()
