"""``her2-cds rules check``: validate the rulebook without starting the service.

Why a command: a clinician editing ``fhir_profiles/rulebook/*.yaml`` should
learn that a rule is broken (by rule id and JSON path) before deploying,
with the same checks start-up runs.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from ..config import from_env
from ..core.rules.loading import RULEBOOK_DIRNAME, check_rulebook_dir


@click.group("rules")
def command() -> None:
    """Inspect and check the HER2 MBC rulebook."""


@command.command("check")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory holding rulebook/ (default: HER2CDS_PROFILES_DIR or fhir_profiles/).")
def check(profiles_dir: Path | None) -> None:
    """Check the rulebook against its JSON Schema and cross-references; exit 1 on any problem."""
    base = profiles_dir or from_env().profiles_dir
    rulebook, problems = check_rulebook_dir(Path(base) / RULEBOOK_DIRNAME)
    if problems:
        for p in problems:
            click.echo(f"error: {p}", err=True)
        click.echo(f"{len(problems)} problem(s) in {Path(base) / RULEBOOK_DIRNAME}", err=True)
        sys.exit(1)
    by_hook = Counter(h for r in rulebook.rules for h in r.hooks)
    click.echo(f"rulebook {rulebook.id} {rulebook.version}: {len(rulebook.rules)} rules in "
               f"{len(rulebook.files)} file(s), {len(rulebook.evidence)} evidence sources — OK")
    for hook in ("patient-view", "order-select", "order-sign"):
        click.echo(f"  {hook:<13} {by_hook[hook]} rules")
    for item in rulebook.left_out:
        click.echo(f"  left out / partial: {item['id']}")


@command.command("matrix")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory holding rulebook/ (default: HER2CDS_PROFILES_DIR or fhir_profiles/).")
def matrix_cmd(profiles_dir: Path | None) -> None:
    """Print the label safety matrix as Markdown (docs/label-safety-matrix.md is this output)."""
    from ..core.rules.matrix import load_matrix, markdown
    import yaml

    base = Path(profiles_dir or from_env().profiles_dir) / RULEBOOK_DIRNAME
    matrix = load_matrix(base)
    if matrix is None:
        raise click.ClickException(f"{base}: no label-matrix.yaml")
    evidence = (yaml.safe_load((base / "rulebook.yaml").read_text(encoding="utf-8")) or {}).get("evidence") or {}
    click.echo(markdown(matrix, evidence), nl=False)


@command.command("pathway")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory holding rulebook/ (default: HER2CDS_PROFILES_DIR or fhir_profiles/).")
def pathway_cmd(profiles_dir: Path | None) -> None:
    """Print the pathway coverage table as Markdown (docs/pathway-coverage.md is this output)."""
    from ..core.rules.pathway import load_pathway, markdown

    base = Path(profiles_dir or from_env().profiles_dir) / RULEBOOK_DIRNAME
    click.echo(markdown(load_pathway(base)), nl=False)
