"""``GET /cds-services``: the CDS services of fhir_profiles/services/ and their prefetch templates.

Prefetch templates use only CDS Hooks 2.0 tokens (``{{context.patientId}}``)
and the recommended query subset: instance read, type search with token
parameters (comma lists are OR), ``_count``.  A key the client leaves out is
fetched from ``fhirServer``; a *required* key (prefetch.json) that cannot be
got that way either makes the call a 412.
"""

from __future__ import annotations

from typing import Mapping

from flask import Blueprint, current_app, jsonify

from ..auth import auth_notice

# The services, their prefetch keys and each key's query (ValueSets, required or
# not, and why) are data: fhir_profiles/services/ (core/knowledge/services.py
# loads and checks them, and renders the templates from the loaded terminology,
# so a code added to a ValueSet is fetched and read alike).  Every query uses
# only ``patient``, ``code``, ``category``, ``status`` and ``_count``
# (``services.PORTABLE_PARAMETERS``).  This module holds no knowledge of its own:
# each caller passes the one it loaded (the app's is ``extensions["her2cds.knowledge"]``).


def prefetch_templates(knowledge, service=None) -> Mapping[str, str]:
    """The prefetch templates (key → FHIR query) of one service, or of every key when ``service`` is None.

    Rendered once when the knowledge is loaded (``Services.templates``); callers must not mutate it.
    """
    services = knowledge.services
    return services.templates_of(service) if service is not None else dict(services.templates)


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
