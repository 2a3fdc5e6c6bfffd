"""The one error the pure core raises: knowledge in fhir_profiles/ is missing or invalid."""

from __future__ import annotations


class KnowledgeError(RuntimeError):
    """A knowledge artifact in fhir_profiles/ is missing or invalid.

    It lives in the core, beside nothing else, so that the loaders
    (terminology, rulebook) and the package that ties them together can
    all import it without importing each other.
    """
