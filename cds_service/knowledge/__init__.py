"""Everything the service knows, loaded once at start-up.

A broken ValueSet, ConceptMap or rule raises ``KnowledgeError`` with the file
and the path inside it, so ``her2-cds serve`` refuses to start rather than
answer with half a rulebook.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import KnowledgeError
from ..rules.rulebook import Rulebook, load_rulebook
from .terminology import Terminology, load_terminology

__all__ = ["Knowledge", "KnowledgeError", "load_knowledge"]


@dataclass(frozen=True)
class Knowledge:
    terminology: Terminology
    rulebook: Rulebook


def load_knowledge(settings) -> Knowledge:
    terminology = load_terminology(settings.profiles_dir)
    rulebook = load_rulebook(settings.profiles_dir, terminology)
    return Knowledge(terminology=terminology, rulebook=rulebook)
