"""``her2-cds openapi``: print or write the OpenAPI 3.1 description.

Why a command: ``docs/openapi.json`` is generated from the schemas the
service validates with, so regenerating it after a schema change is one
command (``her2-cds openapi --output docs/openapi.json``), and ``--check``
lets CI fail when the committed copy is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..protocol.openapi import document_text


@click.command("openapi")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@click.option("--check", is_flag=True, help="Exit 1 if --output differs from the generated document.")
def command(output: Path | None, check: bool) -> None:
    """The OpenAPI 3.1 document (also served at GET /openapi.json)."""
    from ..config import from_env
    from ..core.knowledge import KnowledgeError, load_knowledge

    try:  # the services described are those the service would load with these settings
        knowledge = load_knowledge(from_env())
    except KnowledgeError as exc:
        raise click.ClickException(str(exc)) from None
    text = document_text(knowledge.services)
    if check:
        if output is None:
            raise click.UsageError("--check needs --output")
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            click.echo(f"{output} is out of date: run `her2-cds openapi --output {output}`", err=True)
            sys.exit(1)
        return
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
