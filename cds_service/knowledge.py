"""Everything the service knows, loaded once at start-up.

A broken ValueSet, ConceptMap or rule raises ``KnowledgeError`` with the file
and the path inside it, so ``her2-cds serve`` refuses to start rather than
answer with half a rulebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class KnowledgeError(RuntimeError):
    """A knowledge artifact in fhir_profiles/ is missing or invalid."""


@dataclass(frozen=True)
class Knowledge:
    terminology: Any
    rulebook: Any


def load_knowledge(settings) -> Knowledge:
    from .rules import load_rulebook
    from .terminology import load_terminology

    terminology = load_terminology(settings.profiles_dir)
    rulebook = load_rulebook(settings.profiles_dir, terminology)
    return Knowledge(terminology=terminology, rulebook=rulebook)
