"""``GET /cds-services``: the CDS services of fhir_profiles/services/ and their prefetch templates.

Prefetch templates use only CDS Hooks 2.0 tokens (``{{context.patientId}}``)
and the recommended query subset: instance read, type search with token
parameters (comma lists are OR), ``_count``.  A key the client leaves out is
fetched from ``fhirServer``; a *required* key (prefetch.json) that cannot be
got that way either makes the call a 412.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

from flask import Blueprint, current_app, jsonify

from ..auth import auth_notice
from ..config import Settings
from ..core.knowledge import load_knowledge
from ..core.knowledge.services import PORTABLE_PARAMETERS as _PORTABLE

# The services, their prefetch keys and each key's query (ValueSets, required or
# not, and why) are data: fhir_profiles/services/ (core/knowledge/services.py
# loads and checks them, and renders the templates from the loaded terminology,
# so a code added to a ValueSet is fetched and read alike).  Every query uses
# only ``patient``, ``code``, ``category``, ``status`` and ``_count``.
PORTABLE_PARAMETERS = _PORTABLE


def query_codes(terminology, key: str, services=None) -> list[tuple[str, str]]:
    """``(system, code)`` tokens of one coded query, in ValueSet order, without repeats."""
    return (services or default_knowledge().services).codes(terminology, key)


def prefetch_templates(knowledge, service=None) -> Mapping[str, str]:
    """The prefetch templates (key → FHIR query) of one service, or of every key when ``service`` is None.

    Rendered once when the knowledge is loaded (``Services.templates``); callers must not mutate it.
    """
    services = knowledge.services
    return services.templates_of(service) if service is not None else dict(services.templates)


@lru_cache(maxsize=1)
def default_knowledge():
    """The shipped ``fhir_profiles/`` (tools and tests without an app)."""
    return load_knowledge(Settings())


def default_prefetch() -> dict[str, str]:
    """The templates for the default ``fhir_profiles/``."""
    return prefetch_templates(default_knowledge())


def __getattr__(name: str):
    # The shipped knowledge's services and templates, built on first use rather than at
    # import (loading the knowledge takes a few hundred ms).
    if name == "PREFETCH":
        return default_prefetch()
    if name == "SERVICES":
        return default_knowledge().services.by_id
    if name == "PREFETCH_KEYS":
        return tuple(default_knowledge().services.queries)
    if name == "OBSERVATION_QUERIES":
        return {k: q.valuesets for k, q in default_knowledge().services.queries.items()
                if q.resource_type == "Observation"}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def usage_requirements(settings) -> str:
    return (
        "Needs read access to the patient's Patient, Observation, Condition, Procedure, MedicationStatement, "
        "MedicationRequest and MedicationAdministration resources (prefetch or fhirServer + fhirAuthorization with patient/*.read "
        "scopes). FHIR R4. " + auth_notice(settings)
    )


def discovery_document(settings, knowledge) -> dict:
    usage = usage_requirements(settings)
    return {
        "services": [
            {
                "hook": s.hook,
                "title": s.title,
                "description": s.description,
                "id": s.id,
                "prefetch": dict(prefetch_templates(knowledge, s)),
                "usageRequirements": usage,
            }
            for s in knowledge.services.by_id.values()
        ]
    }


bp = Blueprint("discovery", __name__)


@bp.get("/cds-services")
def discovery():
    knowledge = current_app.extensions["her2cds.knowledge"]
    return jsonify(discovery_document(current_app.config["SETTINGS"], knowledge))
