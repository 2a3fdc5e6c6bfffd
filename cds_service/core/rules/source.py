"""Reading one rulebook YAML file: the one place a YAML error becomes a KnowledgeError naming the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import KnowledgeError

# PyYAML's libyaml binding when it was built with it (the manylinux wheels are): the same safe
# loader (same tags, same resulting documents; tests/test_rules_evaluator.py checks every shipped
# file) at about a tenth of the pure-Python parser's time, which was most of loading the knowledge
# (~0.2 s of each start-up and each `her2-cds rules check`).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_part(path: Path, list_key: str | None = None) -> dict:
    """The file's top-level mapping; with ``list_key``, it must hold a list under that key."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) or {}  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"rulebook: {path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise KnowledgeError(f"rulebook: {path}: top level must be a mapping")
    if list_key is not None and not isinstance(doc.get(list_key), list):
        raise KnowledgeError(f"rulebook: {path}: expected a mapping with a '{list_key}' list")
    return doc
