"""Synthetic HER2-positive MBC patients of a chosen size, and CDS Hooks requests for them.

Everything here is invented (no real patient data).  A patient is a fixed
clinical core — HER2 IHC 3+ and ISH, ER/PR, an LVEF series, ECOG, a primary
breast cancer with bone/liver metastases, disease status, past and current
anti-HER2 therapy with RxNorm codes — padded with *filler* of realistic
shape up to the requested total: repeated liver labs and LVEFs over the
years, comorbidity Conditions, supportive-care medications, and unrelated
labs (haemoglobin, creatinine, …) that the criteria should skip cheaply
(some EHRs return more than the ``code=`` filter asked for).

``patient(n)`` returns ``{prefetch key: [resources]}`` with exactly ``n``
resources in all (the Patient included); ``request(hook, p)`` wraps that in
a CDS Hooks request with one searchset Bundle per prefetch key, exactly the
keys the shipped ``fhir_profiles/services`` publish (``PREFETCH_KEYS``).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

from cds_service.config import Settings
from cds_service.core.knowledge import load_knowledge

#: The prefetch keys of the shipped knowledge, in published order: a benchmark request answers each.
PREFETCH_KEYS = tuple(load_knowledge(Settings()).services.queries)

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

SIZES = (10, 50, 200, 1000)
HOOKS = ("patient-view", "order-select", "order-sign")
SERVICE_OF = {
    "patient-view": "her2-mbc-patient-view",
    "order-select": "her2-mbc-order-select",
    "order-sign": "her2-mbc-order-sign",
}

TODAY = dt.date.today()


def _cc(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _day(days_ago: int) -> str:
    return (TODAY - dt.timedelta(days=days_ago)).isoformat()


def _ts(days_ago: int) -> str:
    return f"{_day(days_ago)}T09:30:00+00:00"


class _Maker:
    def __init__(self, pid: str, seed: int):
        self.pid = pid
        self.rng = random.Random(seed)
        self.n = 0

    def id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    @property
    def subject(self) -> dict:
        return {"reference": f"Patient/{self.pid}"}

    def obs(self, code: str, display: str, days_ago: int, category: str = "laboratory", **value) -> dict:
        res = {
            "resourceType": "Observation",
            "id": self.id("obs"),
            "meta": {"lastUpdated": _ts(days_ago)},
            "status": "final",
            "category": [{"coding": [{"system": OBS_CAT, "code": category}]}],
            "code": _cc(LOINC, code, display),
            "subject": self.subject,
            "effectiveDateTime": _ts(days_ago),
            "issued": _ts(max(days_ago - 1, 0)),
            "performer": [{"reference": "Organization/lab-1", "display": "Synthetic Pathology Lab"}],
        }
        res.update(value)
        return res

    def quantity(self, value: float, unit: str, code: str | None = None) -> dict:
        return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": code or unit}}

    def condition(self, system: str, code: str, display: str, days_ago: int, status: str = "active", **extra) -> dict:
        res = {
            "resourceType": "Condition",
            "id": self.id("cond"),
            "clinicalStatus": {"coding": [{"system": COND_CLIN, "code": status}]},
            "verificationStatus": {"coding": [{"system": COND_VER, "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "problem-list-item"}]}],
            "code": _cc(system, code, display),
            "subject": self.subject,
            "onsetDateTime": _ts(days_ago),
            "recordedDate": _ts(days_ago),
        }
        res.update(extra)
        return res

    def med_statement(self, rxcui: str, name: str, start: int, end: int | None, status: str) -> dict:
        period = {"start": _ts(start)}
        if end is not None:
            period["end"] = _ts(end)
        return {
            "resourceType": "MedicationStatement",
            "id": self.id("ms"),
            "status": status,
            "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medication-statement-category",
                                     "code": "outpatient"}]},
            "medicationCodeableConcept": _cc(RXNORM, rxcui, name),
            "subject": self.subject,
            "effectivePeriod": period,
            "dateAsserted": _ts(start),
            "informationSource": {"reference": "Practitioner/dr-1"},
        }

    def med_request(self, rxcui: str, name: str, days_ago: int, status: str, intent: str = "order") -> dict:
        return {
            "resourceType": "MedicationRequest",
            "id": self.id("mr"),
            "status": status,
            "intent": intent,
            "medicationCodeableConcept": _cc(RXNORM, rxcui, name),
            "subject": self.subject,
            "authoredOn": _ts(days_ago),
            "requester": {"reference": "Practitioner/dr-1"},
            "dosageInstruction": [{"text": "as directed, every 21 days",
                                   "timing": {"repeat": {"frequency": 1, "period": 21, "periodUnit": "d"}}}],
        }


# Filler kinds: (prefetch key, weight)
_FILLER = (
    ("otherObservations", 0.45),   # repeated ALT/AST/bilirubin/LVEF/ECOG over the years
    ("unrelated", 0.15),           # labs outside the requested codes (returned anyway by some EHRs)
    ("conditions", 0.12),
    ("medicationRequests", 0.18),
    ("medicationStatements", 0.10),
)
_UNRELATED_LABS = (("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.5),
                   ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.8),
                   ("6690-2", "Leukocytes [#/volume] in Blood", "10*3/uL", 6.1),
                   ("777-3", "Platelets [#/volume] in Blood", "10*3/uL", 240.0),
                   ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 95.0))
_COMORBID = (("38341003", "Hypertensive disorder"), ("44054006", "Diabetes mellitus type 2"),
             ("35489007", "Depressive disorder"), ("195967001", "Asthma"), ("13644009", "Hypercholesterolemia"))
_SUPPORTIVE = (("26225", "ondansetron"), ("3264", "dexamethasone"), ("161", "acetaminophen"),
               ("6809", "metformin"), ("29046", "lisinopril"), ("36567", "simvastatin"))


def core(m: _Maker) -> dict[str, list[dict]]:
    """The clinically relevant core (21 resources, 22 with a menopausal status key)."""
    met_days = 200  # metastatic disease diagnosed 200 days ago (400 until issue 23's third round: no patient-view card)
    out: dict[str, list[dict]] = {k: [] for k in PREFETCH_KEYS}
    out["patient"] = [{
        "resourceType": "Patient", "id": m.pid, "gender": "female", "birthDate": "1966-05-14",
        "name": [{"family": "Synthetic", "given": ["Bench"]}],
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": f"MRN-{m.pid}"}],
    }]
    out["her2"] = [
        m.obs("85319-2", "HER2 [Presence] in Breast cancer specimen by Immune stain", met_days + 30,
              valueCodeableConcept=_cc(SCT, "10828004", "Positive"),
              interpretation=[_cc("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "POS",
                                  "Positive")],
              note=[{"text": "IHC 3+"}],
              component=[{"code": _cc(LOINC, "85319-2", "HER2 IHC score"),
                          "valueCodeableConcept": {"text": "3+"}}]),
        m.obs("49683-6", "ERBB2/CEP17 [Ratio] in Tissue by FISH", met_days + 28, **m.quantity(4.2, "{ratio}")),
        m.obs("74860-8", "ERBB2 gene copies [#/nucleus] in Tissue by FISH", met_days + 28,
              **m.quantity(9.1, "{copies}/{nucleus}")),
    ]
    out["hormoneReceptors"] = [
        m.obs("85337-4", "Estrogen receptor Ag [Presence] in Breast cancer specimen", met_days + 30,
              valueCodeableConcept=_cc(SCT, "10828004", "Positive")),
        m.obs("85329-1", "Cells.estrogen receptor/100 cells in Breast cancer specimen", met_days + 30,
              **m.quantity(80, "%")),
        m.obs("85339-0", "Progesterone receptor Ag [Presence] in Breast cancer specimen", met_days + 30,
              valueCodeableConcept=_cc(SCT, "260385009", "Negative")),
    ]
    out["otherObservations"] = [
        m.obs("10230-1", "Left ventricular Ejection fraction", met_days + 10, "imaging", **m.quantity(62, "%")),
        m.obs("10230-1", "Left ventricular Ejection fraction", 200, "imaging", **m.quantity(58, "%")),
        m.obs("10230-1", "Left ventricular Ejection fraction", 40, "imaging", **m.quantity(55, "%")),
        m.obs("89247-1", "ECOG Performance Status score", 20, "survey",
              valueCodeableConcept=_cc(LOINC, "LA9623-5", "1")),
        m.obs("97509-4", "Cancer disease progression", 30, "exam",
              valueCodeableConcept=_cc(SCT, "359746009", "Stable")),
    ]
    if "menopausalStatus" in out:  # searched by code (SNOMED 161712005, as in the HL7 ICHOM breast cancer IG)
        meno = m.obs("", "Menopausal status", met_days + 30, "social-history",
                     valueCodeableConcept=_cc(SCT, "307429007", "After menopause"))
        meno["code"] = _cc(SCT, "161712005", "Menopause, function")
        out["menopausalStatus"] = [meno]
    out["conditions"] = [
        m.condition(SCT, "254837009", "Malignant neoplasm of breast", met_days + 400,
                    bodySite=[_cc(SCT, "80248007", "Left breast structure")]),
        m.condition(SCT, "94222008", "Secondary malignant neoplasm of bone", met_days),
        m.condition(SCT, "94381002", "Secondary malignant neoplasm of liver", met_days - 10),
    ]
    out["medicationStatements"] = [
        m.med_statement("224905", "trastuzumab", met_days + 300, met_days + 60, "completed"),
        m.med_statement("224905", "trastuzumab", met_days - 14, None, "active"),
        m.med_statement("1298944", "pertuzumab", met_days - 14, None, "active"),
    ]
    # The taxane induction as EHRs record it: a completed course with dates (6 three-weekly cycles,
    # 126 days, ended 60 days ago), no cycle count; the maintenance rules need an ended course, and
    # within 84 days of its end the maintenance decision is open at the chart opening too (M1 at
    # patient-view: the warm patient-view renders a card, as order-select does).
    out["medicationStatements"].append(m.med_statement("72962", "docetaxel", met_days - 14, met_days - 140,
                                                       "completed"))
    out["medicationRequests"] = [
        m.med_request("72962", "docetaxel", met_days - 14, "completed"),
    ]
    return out


def patient(n: int, seed: int = 7, pid: str | None = None) -> dict[str, list[dict]]:
    """``{prefetch key: [resources]}`` with exactly ``n`` resources (n >= 10)."""
    pid = pid or f"bench-{n}"
    m = _Maker(pid, seed)
    out = core(m)
    have = sum(len(v) for v in out.values())
    if n < have:
        # The smallest patient: keep the essentials, drop history.
        keep = {"patient": 1, "her2": 1, "hormoneReceptors": 2, "otherObservations": 2, "conditions": 2,
                "medicationStatements": 2, "medicationRequests": 0}
        out = {k: v[:keep.get(k, 1)] for k, v in out.items()}
        have = sum(len(v) for v in out.values())
        while have < n:
            out["otherObservations"].append(m.obs("1742-6", "ALT", 10 * have, **m.quantity(25, "U/L")))
            have += 1
        return out
    rest = n - have
    counts = {k: int(rest * w) for k, w in _FILLER}
    counts["otherObservations"] += rest - sum(counts.values())
    rng = m.rng
    for i in range(counts["otherObservations"]):
        days = 7 * (i + 1) + rng.randrange(3)
        kind = i % 6
        if kind == 0:
            out["otherObservations"].append(m.obs("1742-6", "Alanine aminotransferase [Enzymatic activity/volume]",
                                                  days, **m.quantity(20 + rng.randrange(30), "U/L"),
                                                  referenceRange=[{"high": {"value": 40, "unit": "U/L"}}]))
        elif kind == 1:
            out["otherObservations"].append(m.obs("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume]",
                                                  days, **m.quantity(18 + rng.randrange(30), "U/L"),
                                                  referenceRange=[{"high": {"value": 40, "unit": "U/L"}}]))
        elif kind == 2:
            out["otherObservations"].append(m.obs("1975-2", "Bilirubin.total [Mass/volume]", days,
                                                  **m.quantity(round(0.3 + rng.random(), 2), "mg/dL"),
                                                  referenceRange=[{"high": {"value": 1.2, "unit": "mg/dL"}}]))
        elif kind == 3:
            out["otherObservations"].append(m.obs("10230-1", "Left ventricular Ejection fraction", days + 60,
                                                  "imaging", **m.quantity(55 + rng.randrange(10), "%")))
        elif kind == 4:
            out["otherObservations"].append(m.obs("89247-1", "ECOG Performance Status score", days + 30, "survey",
                                                  valueCodeableConcept=_cc(LOINC, "LA9623-5", "1")))
        else:
            out["otherObservations"].append(m.obs("97509-4", "Cancer disease progression", days + 30, "exam",
                                                  valueCodeableConcept=_cc(SCT, "359746009", "Stable")))
    for i in range(counts["unrelated"]):
        code, name, unit, base = _UNRELATED_LABS[i % len(_UNRELATED_LABS)]
        out["otherObservations"].append(m.obs(code, name, 5 * (i + 1), **m.quantity(base, unit)))
    for i in range(counts["conditions"]):
        code, name = _COMORBID[i % len(_COMORBID)]
        out["conditions"].append(m.condition(SCT, code, name, 1000 + 30 * i,
                                             status="active" if i % 3 else "resolved"))
    for i in range(counts["medicationRequests"]):
        if i % 3 == 0:  # past anti-HER2 cycles
            rx = ("224905", "trastuzumab") if i % 2 else ("1298944", "pertuzumab")
            out["medicationRequests"].append(m.med_request(*rx, 21 * (i + 1), "completed"))
        else:
            out["medicationRequests"].append(
                m.med_request(*_SUPPORTIVE[i % len(_SUPPORTIVE)], 10 * (i + 1), "completed" if i % 4 else "active"))
    for i in range(counts["medicationStatements"]):
        rx = _SUPPORTIVE[i % len(_SUPPORTIVE)]
        out["medicationStatements"].append(m.med_statement(*rx, 30 * (i + 2), 30 * (i + 1), "completed"))
    assert sum(len(v) for v in out.values()) == n, (n, {k: len(v) for k, v in out.items()})
    return out


def searchset(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, r['id'])}",
                       "resource": r, "search": {"mode": "match"}} for r in resources]}


def prefetch_of(p: dict[str, list[dict]]) -> dict:
    out = {}
    for key in PREFETCH_KEYS:
        if key == "patient":
            out[key] = p["patient"][0]
        else:
            out[key] = searchset(p[key])
    return out


def draft_orders(hook: str, pid: str) -> list[dict]:
    """order-select: trastuzumab deruxtecan selected; order-sign: trastuzumab + pertuzumab + doxorubicin
    to sign (an anthracycline with trastuzumab: the safety check has something to say)."""
    def draft(rid: str, rxcui: str, name: str) -> dict:
        return {"resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order",
                "medicationCodeableConcept": _cc(RXNORM, rxcui, name), "subject": {"reference": f"Patient/{pid}"},
                "authoredOn": _ts(0), "dosageInstruction": [{"text": "IV every 21 days"}]}
    if hook == "order-select":
        return [draft("draft-tdxd", "2267576", "fam-trastuzumab deruxtecan")]
    return [draft("draft-t", "224905", "trastuzumab"), draft("draft-p", "1298944", "pertuzumab"),
            draft("draft-a", "3639", "doxorubicin")]


def request(hook: str, p: dict[str, list[dict]] | None, pid: str, *, fhir_server: str | None = None,
            instance: str | None = None) -> dict:
    """A CDS Hooks 2.0 request; ``p=None`` means no prefetch (the service must fetch from ``fhir_server``)."""
    context: dict = {"userId": "Practitioner/dr-1", "patientId": pid}
    if hook == "patient-view":
        pass
    else:
        drafts = draft_orders(hook, pid)
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": r} for r in drafts]}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{r['id']}" for r in drafts]
    body: dict = {"hook": hook, "hookInstance": instance or str(uuid.uuid4()), "context": context}
    if fhir_server:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {"access_token": "synthetic-bench-token", "token_type": "Bearer",
                                     "expires_in": 300, "scope": "patient/*.read", "subject": "her2-cds"}
    if p is not None:
        body["prefetch"] = prefetch_of(p)
    return body
