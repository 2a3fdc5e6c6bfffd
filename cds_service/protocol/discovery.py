"""The three CDS services and their prefetch templates (``GET /cds-services``).

Prefetch templates use only CDS Hooks 2.0 tokens (``{{context.patientId}}``)
and the recommended query subset: instance read, type search with token
parameters (comma lists are OR), ``_count``.  Each key is *required* data: if
the client leaves it out the service fetches it from ``fhirServer``; if that
is impossible the call gets 412.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, jsonify

from ..auth import auth_notice

LOINC = "http://loinc.org"

# Observation codes the criteria read. Kept here (not derived from the
# ValueSets at request time) because discovery must stay stable and cheap;
# tests check that every code here is in the fhir_profiles ValueSets.
HER2_CODES = ["85319-2", "18474-7", "85318-4", "31150-6", "96893-3", "49683-6", "74860-8", "48676-1"]
HR_CODES = ["85337-4", "40556-3", "16112-5", "85329-1", "85339-0", "40557-1", "16113-3", "85325-9", "10480-2"]
OTHER_OBS_CODES = [
    "69548-6",  # genetic variant assessment (PIK3CA)
    "89247-1",  # ECOG
    "10230-1", "18043-0", "8808-8", "8810-4", "8811-2", "8806-2",  # LVEF
    "97509-4",  # cancer disease status
    "1742-6", "1920-8", "1975-2",  # ALT, AST, total bilirubin (tucatinib safety)
]
SNOMED = "http://snomed.info/sct"
# Menopausal status has no LOINC question code in common use; EHRs record it as
# an Observation whose *value* is a SNOMED menopausal phase (DICOM CID 6086), so
# it is searched by value (the standard R4 ``value-concept`` token parameter).
MENOPAUSAL_VALUES = ["309606002", "303111005", "307429007", "371036001", "31351009"]


def _codes(codes: list[str], system: str = LOINC) -> str:
    return ",".join(f"{system}|{c}" for c in codes)


PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "her2": "Observation?patient={{context.patientId}}&code=" + _codes(HER2_CODES) + "&_count=100",
    "hormoneReceptors": "Observation?patient={{context.patientId}}&code=" + _codes(HR_CODES) + "&_count=100",
    "otherObservations": "Observation?patient={{context.patientId}}&code=" + _codes(OTHER_OBS_CODES) + "&_count=200",
    "menopausalStatus": "Observation?patient={{context.patientId}}&value-concept="
    + _codes(MENOPAUSAL_VALUES, SNOMED) + "&_count=20",
    "conditions": "Condition?patient={{context.patientId}}&_count=200",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}&_count=200",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&_count=200",
}


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
            "options after induction (endocrine therapy, palbociclib, tucatinib), missing or conflicting "
            "biomarkers, overdue cardiac monitoring, each with trial evidence.",
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
        "Needs read access to the patient's Patient, Observation, Condition, MedicationStatement and "
        "MedicationRequest resources (prefetch or fhirServer + fhirAuthorization with patient/*.read "
        "scopes). FHIR R4. " + auth_notice(settings)
    )


def discovery_document(settings) -> dict:
    usage = usage_requirements(settings)
    return {
        "services": [
            {
                "hook": s.hook,
                "title": s.title,
                "description": s.description,
                "id": s.id,
                "prefetch": dict(PREFETCH),
                "usageRequirements": usage,
            }
            for s in SERVICES.values()
        ]
    }


bp = Blueprint("discovery", __name__)


@bp.get("/cds-services")
def discovery():
    return jsonify(discovery_document(current_app.config["SETTINGS"]))
