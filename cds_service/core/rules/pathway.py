"""The pathway coverage table: every decision node of HER2+ MBC care, where and how the service speaks.

``fhir_profiles/rulebook/pathway.yaml`` lists the nodes (group, node, source,
hooks, rule ids, fixture patients); ``markdown`` renders
``docs/pathway-coverage.md``.  Data, so that a node nobody covers is visible
as a row without a rule or a fixture (tests/test_pathway.py fails on it).
"""

from __future__ import annotations

from pathlib import Path

from .source import read_part

PATHWAY_FILE = "pathway.yaml"


def load_pathway(rulebook_dir: Path) -> dict:
    return read_part(Path(rulebook_dir) / PATHWAY_FILE, "nodes")


def markdown(pathway: dict) -> str:
    def cell(items) -> str:
        return ", ".join(items) if isinstance(items, list) else " ".join(str(items).split()).replace("|", "\\|")

    out = ["# Pathway coverage", "",
           "Generated from `fhir_profiles/rulebook/pathway.yaml` by `her2-cds rules pathway`; "
           "`tests/test_pathway.py` fails when a node has no rule or no fixture patient expecting one of its rules, "
           "or when this file is stale. Label safety criteria are listed one by one in "
           "[label-safety-matrix.md](label-safety-matrix.md).", "",
           "| group | decision node | hooks | rules | fixture patients | source |", "|---|---|---|---|---|---|"]
    for n in pathway["nodes"]:
        out.append(f"| {n['group']} | {cell(n['node'])} | {cell(n['hooks'])} | {cell(n['rules'])} | "
                   f"{cell(n['fixtures'])} | {cell(n['source'])} |")
    return "\n".join(out) + "\n"
