"""``her2-cds config``: the settings, their variables, defaults and current values."""

from __future__ import annotations

import dataclasses

import click

from ..config import SETTINGS_DOC, Settings, from_env

# Settings whose value is a secret: shown as set/unset, never printed (terminals and CI logs keep it).
SECRET_SETTINGS = frozenset({"secret_key", "metrics_token"})


def settings_table(current: Settings | None = None) -> str:
    """The README's configuration table (Markdown); with ``current``, a value column too."""
    defaults = Settings()
    head = "| variable | default | meaning |" + (" current |" if current else "")
    rule = "|---|---|---|" + ("---|" if current else "")
    rows = [head, rule]
    for f in dataclasses.fields(Settings):
        if f.name not in SETTINGS_DOC:
            continue
        default = getattr(defaults, f.name)
        if f.name == "profiles_dir":
            default = "`fhir_profiles/`"
        elif default in ("", None):
            default = "(unset)"
        else:
            default = f"`{default}`"
        row = f"| `HER2CDS_{f.name.upper()}` | {default} | {SETTINGS_DOC[f.name]} |"
        if current:
            value = getattr(current, f.name)
            if value in ("", None):
                row += " (unset) |"
            elif f.name in SECRET_SETTINGS:
                row += " (set, hidden) |"
            else:
                row += f" `{value}` |"
        rows.append(row)
    return "\n".join(rows)


@click.command("config")
@click.option("--markdown", is_flag=True, help="Print only the README table (no current values).")
def command(markdown: bool) -> None:
    """Show every HER2CDS_* setting with its default and current value."""
    click.echo(settings_table(None if markdown else from_env()))
