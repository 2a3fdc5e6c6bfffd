"""The three CDS services and their prefetch templates (``GET /cds-services``).

Prefetch templates use only CDS Hooks 2.0 tokens (``{{context.patientId}}``)
and the recommended query subset: instance read, type search with token
parameters (comma lists are OR), ``_count``.  Each key is *required* data: if
the client leaves it out the service fetches it from ``fhirServer``; if that
is impossible the call gets 412.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from flask import Blueprint, current_app, jsonify

from ..auth import auth_notice
from ..config import Settings
from ..core.knowledge import load_knowledge

# The Observation queries: which ValueSets' codes each asks for, by which search
# parameter, and how many results per page.  The codes themselves live only in
# fhir_profiles/terminology (the same ValueSets the criteria classify results
# with), so a code added to a ValueSet is fetched and read alike.
#
# Menopausal status is searched by its Observation *code* (SNOMED 161712005
# "Menopause, function", as in the HL7 ICHOM breast cancer IG): ``value-concept``
# is not supported by major EHR FHIR APIs, and a refused query cost every chart
# opening a "could not be read" card (issue 12).  Every query uses only
# ``patient``, ``code``, ``category``, ``status`` and ``_count``.
OBSERVATION_QUERIES: dict[str, tuple[tuple[str, ...], str, int]] = {
    "her2": (("her2-ihc", "her2-ish", "her2-ish-ratio", "her2-copy-number", "her2-interpretation"), "code", 100),
    "hormoneReceptors": (("er-status", "er-percent", "pr-status", "pr-percent", "er-pr-combined"), "code", 100),
    "otherObservations": (("genetic-variant", "ecog", "lvef", "disease-status", "alt", "ast", "bilirubin",
                           "tnm-distant-metastases", "tnm-stage-group", "alkaline-phosphatase", "neutrophils"),
                          "code", 200),
    "menopausalStatus": (("menopausal-status-question",), "code", 20),
}
# Other coded searches: key → (resource type, ValueSets, _count).  A bilateral
# oophorectomy makes a woman postmenopausal (NCCN); Conditions (Z90.722) come
# with the conditions query.
CODED_QUERIES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "procedures": ("Procedure", ("bilateral-oophorectomy",), 50),
}
# The other resource types are fetched whole: the criteria classify them by code.
# MedicationAdministration is how infusion suites chart each taxane dose.
OTHER_QUERIES = {
    "conditions": "Condition?patient={{context.patientId}}&_count=200",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}&_count=200",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&_count=200",
    "medicationAdministrations": "MedicationAdministration?patient={{context.patientId}}&_count=200",
}
PREFETCH_KEYS = ("patient", *OBSERVATION_QUERIES, *CODED_QUERIES, *OTHER_QUERIES)
# The query parameters a template may use: what HAPI and the major EHR FHIR APIs support.
PORTABLE_PARAMETERS = frozenset({"patient", "code", "category", "status", "_count"})


def query_codes(terminology, key: str) -> list[tuple[str, str]]:
    """``(system, code)`` tokens of one Observation query, in ValueSet order, without repeats."""
    out: list[tuple[str, str]] = []
    valuesets = OBSERVATION_QUERIES[key][0] if key in OBSERVATION_QUERIES else CODED_QUERIES[key][1]
    for valueset_id in valuesets:
        for token in terminology.valueset_codes(valueset_id):
            if token not in out:
                out.append(token)
    return out


@lru_cache(maxsize=8)
def prefetch_templates(terminology) -> dict[str, str]:
    """The prefetch templates (key → FHIR query), generated from the loaded terminology.

    Cached per Terminology object (immutable, loaded once at start-up), so
    discovery and every hook call reuse one dict; callers must not mutate it.
    """
    out = {"patient": "Patient/{{context.patientId}}"}
    for key, (_, param, count) in OBSERVATION_QUERIES.items():
        tokens = ",".join(f"{system}|{code}" for system, code in query_codes(terminology, key))
        out[key] = f"Observation?patient={{{{context.patientId}}}}&{param}={tokens}&_count={count}"
    for key, (rtype, _, count) in CODED_QUERIES.items():
        tokens = ",".join(f"{system}|{code}" for system, code in query_codes(terminology, key))
        out[key] = f"{rtype}?patient={{{{context.patientId}}}}&code={tokens}&_count={count}"
    out.update(OTHER_QUERIES)
    return out


@lru_cache(maxsize=1)
def default_prefetch() -> dict[str, str]:
    """The templates for the default ``fhir_profiles/`` (tools and tests without an app)."""
    return prefetch_templates(load_knowledge(Settings()).terminology)


def __getattr__(name: str):
    # ``PREFETCH``, the templates for the shipped fhir_profiles/, built on first use
    # rather than at import (loading the terminology takes a few hundred ms).
    if name == "PREFETCH":
        return default_prefetch()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str


SERVICES: dict[str, Service] = {
    s.id: s
    for s in (
        Service(
            "her2-mbc-patient-view",
            "patient-view",
            "HER2+ metastatic breast cancer: treatment plan review",
            "When a chart is opened, reviews the HER2-positive metastatic breast cancer plan: maintenance "
            "options while that decision is open (endocrine therapy, palbociclib, tucatinib), the next line "
            "once after a recorded progression, brain metastases, missing or conflicting biomarkers, "
            "pregnancy, each with trial evidence. Overdue cardiac monitoring is checked when the next dose "
            "is ordered.",
        ),
        Service(
            "her2-mbc-order-select",
            "order-select",
            "HER2+ metastatic breast cancer: regimen selection",
            "When anticancer medications are selected, judges the selected orders against the patient's "
            "HER2/HR status, line of therapy and history (CLEOPATRA, DESTINY-Breast09/03, PATINA, "
            "HER2CLIMB, HER2CLIMB-05) and offers one-click alternatives.",
        ),
        Service(
            "her2-mbc-order-sign",
            "order-sign",
            "HER2+ metastatic breast cancer: safety check before signing",
            "Before orders are signed, checks every draft order for hard stops: interstitial lung disease "
            "with trastuzumab deruxtecan, low LVEF with anti-HER2 therapy, anthracycline with trastuzumab, "
            "duplicate HER2 agents, HER2-positive-only drugs for HER2-low/zero disease.",
        ),
    )
}


def usage_requirements(settings) -> str:
    return (
        "Needs read access to the patient's Patient, Observation, Condition, Procedure, MedicationStatement, "
        "MedicationRequest and MedicationAdministration resources (prefetch or fhirServer + fhirAuthorization with patient/*.read "
        "scopes). FHIR R4. " + auth_notice(settings)
    )


def discovery_document(settings, terminology) -> dict:
    usage = usage_requirements(settings)
    prefetch = prefetch_templates(terminology)
    return {
        "services": [
            {
                "hook": s.hook,
                "title": s.title,
                "description": s.description,
                "id": s.id,
                "prefetch": dict(prefetch),
                "usageRequirements": usage,
            }
            for s in SERVICES.values()
        ]
    }


bp = Blueprint("discovery", __name__)


@bp.get("/cds-services")
def discovery():
    knowledge = current_app.extensions["her2cds.knowledge"]
    return jsonify(discovery_document(current_app.config["SETTINGS"], knowledge.terminology))
