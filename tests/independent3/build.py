"""Builds the synthetic CDS Hooks requests in cases/ (third independent review).

Every patient is synthetic. Dates are relative to TODAY = 2026-06-01. Coding follows what
US EHRs send: US Core Patient, LOINC/UCUM observations with referenceRange, Conditions with
ICD-10-CM + SNOMED CT, RxNorm (ingredient/SCD/SBD), ATC or text-only medications,
MedicationStatements with a period only, MedicationAdministrations per dose.
Prefetch keys are the ones the service's discovery document asks for.
"""
import json
import uuid
from datetime import date, timedelta
from pathlib import Path

TODAY = date(2026, 6, 1)
OUT = Path(__file__).parent / "cases"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXN = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
KEYS = ["patient", "her2", "hormoneReceptors", "otherObservations", "menopausalStatus", "procedures",
        "conditions", "medicationStatements", "medicationRequests", "medicationAdministrations"]


def d(days_ago):
    return (TODAY - timedelta(days=days_ago)).isoformat()


# ---------------------------------------------------------------- drug concepts
def rx(code, display, text=None):
    return {"coding": [{"system": RXN, "code": code, "display": display}], "text": text or display}


def atc(code, display, text=None):
    return {"coding": [{"system": ATC, "code": code, "display": display}], "text": text or display}


def txt(t):
    return {"text": t}


DRUG = {
    "docetaxel": rx("72962", "docetaxel", "docetaxel 20 MG/ML Injectable Solution"),
    "herceptin": rx("224905", "trastuzumab", "Herceptin (trastuzumab) 150 MG Injection"),
    "kanjinti": txt("Kanjinti (trastuzumab-anns) 420 MG Injection"),
    "trastuzumab": rx("224905", "trastuzumab"),
    "perjeta": rx("1298944", "pertuzumab", "Perjeta (pertuzumab) 420 MG/14ML Injection"),
    "pertuzumab": rx("1298944", "pertuzumab"),
    "phesgo": atc("L01FY01", "pertuzumab and trastuzumab", "Phesgo"),
    "phesgo_txt": txt("Phesgo (pertuzumab, trastuzumab, and hyaluronidase-zzxf) 600 MG/600 MG/20,000 UNITS per 10 ML SC"),
    "paclitaxel": rx("56946", "paclitaxel", "paclitaxel 6 MG/ML Injectable Solution"),
    "enhertu": atc("L01FD04", "trastuzumab deruxtecan", "Enhertu 100 MG Injection"),
    "kadcyla": rx("1371046", "KADCYLA", "Kadcyla (ado-trastuzumab emtansine) 100 MG Injection"),
    "tukysa": atc("L01EH03", "tucatinib", "Tukysa 150 MG Oral Tablet"),
    "xeloda": rx("194000", "capecitabine", "Xeloda 500 MG Oral Tablet"),
    "capecitabine": rx("194000", "capecitabine", "capecitabine 500 MG Oral Tablet"),
    "nerlynx": atc("L01EH02", "neratinib", "Nerlynx 40 MG Oral Tablet"),
    "loperamide": rx("6468", "loperamide", "loperamide hydrochloride 2 MG Oral Capsule"),
    "ibrance": rx("1601374", "palbociclib", "Ibrance 125 MG Oral Capsule"),
    "verzenio": txt("Verzenio (abemaciclib) 150 MG Oral Tablet"),
    "piqray": atc("L01EM03", "alpelisib", "Piqray 300 MG Daily Dose (150 MG x 2) Oral Tablet Pack"),
    "fulvestrant": rx("282357", "fulvestrant", "fulvestrant 250 MG/5ML Prefilled Syringe"),
    "letrozole": rx("72965", "letrozole", "letrozole 2.5 MG Oral Tablet"),
    "anastrozole": rx("84857", "anastrozole", "Arimidex (anastrozole) 1 MG Oral Tablet"),
    "lupron": rx("42375", "leuprolide", "Lupron Depot 11.25 MG 3-Month Kit"),
}


# ---------------------------------------------------------------- builders
class P:
    def __init__(self, pid, gender, birth):
        self.pid = pid
        self.gender = gender
        self.birth = birth
        self.n = 0
        self.b = {k: [] for k in KEYS if k != "patient"}
        self.drafts = []

    def _id(self, kind):
        self.n += 1
        return f"{self.pid}-{kind}{self.n}"

    def _subj(self):
        return {"reference": f"Patient/{self.pid}"}

    def obs(self, key, code, display, when, system=LOINC, cat="laboratory", text=None, **value):
        r = {"resourceType": "Observation", "id": self._id("obs"), "status": "final",
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": cat}]}],
             "code": {"coding": [{"system": system, "code": code, "display": display}], "text": text or display},
             "subject": self._subj(), "effectiveDateTime": when}
        for k, v in value.items():
            if k == "ref":
                r["referenceRange"] = [v]
            elif k == "note":
                r["note"] = [{"text": v}]
            elif k == "interp":
                r["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": v}]}]
            else:
                r[k] = v
        self.b[key].append(r)
        return r

    def qty(self, key, code, display, when, value, unit, ucum=None, low=None, high=None, **kw):
        ref = {}
        if low is not None:
            ref["low"] = {"value": low, "unit": unit, "system": UCUM, "code": ucum or unit}
        if high is not None:
            ref["high"] = {"value": high, "unit": unit, "system": UCUM, "code": ucum or unit}
        extra = {"ref": ref} if ref else {}
        extra.update(kw)
        return self.obs(key, code, display, when,
                        valueQuantity={"value": value, "unit": unit, "system": UCUM, "code": ucum or unit}, **extra)

    # --- common clinical items
    def her2_ihc(self, when, score, as_cc=False, text=None):
        v = ({"valueCodeableConcept": {"text": text or score}} if as_cc else {"valueString": score})
        return self.obs("her2", "85319-2", "HER2 [Presence] in Breast cancer specimen by Immune stain", when, **v)

    def her2_ish(self, when, amplified):
        cc = ({"coding": [{"system": SCT, "code": "10828004", "display": "Positive"}], "text": "Amplified"} if amplified
              else {"coding": [{"system": SCT, "code": "260385009", "display": "Negative"}], "text": "Not amplified"})
        return self.obs("her2", "85318-4", "ERBB2 gene duplication [Presence] in Breast cancer specimen by FISH", when,
                        valueCodeableConcept=cc)

    def er(self, when, pct):
        self.qty("hormoneReceptors", "85329-1", "Cells.estrogen receptor/100 cells in Breast cancer specimen by Immune stain",
                 when, pct, "%")
        pos = pct >= 1
        self.obs("hormoneReceptors", "85337-4", "Estrogen receptor Ag [Presence] in Breast cancer specimen by Immune stain", when,
                 valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA6576-8" if pos else "LA6577-6",
                                                    "display": "Positive" if pos else "Negative"}],
                                       "text": "Positive" if pos else "Negative"})

    def pr(self, when, pct):
        self.qty("hormoneReceptors", "85325-9", "Cells.progesterone receptor/100 cells in Breast cancer specimen by Immune stain",
                 when, pct, "%")
        pos = pct >= 1
        self.obs("hormoneReceptors", "85339-0", "Progesterone receptor Ag [Presence] in Breast cancer specimen by Immune stain", when,
                 valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA6576-8" if pos else "LA6577-6",
                                                    "display": "Positive" if pos else "Negative"}],
                                       "text": "Positive" if pos else "Negative"})

    def ecog(self, when, score):
        self.obs("otherObservations", "89247-1", "ECOG Performance Status score", when, cat="survey", valueInteger=score)

    def lvef(self, when, pct, code="10230-1", display="Left ventricular Ejection fraction", low=50):
        self.qty("otherObservations", code, display, when, pct, "%", low=low)

    def status(self, when, worse=True, sct=None):
        code, disp = sct or (("271299001", "Patient's condition worsened") if worse else ("359746009", "Patient's condition stable"))
        self.obs("otherObservations", "97509-4", "Cancer disease status", when, cat="exam",
                 valueCodeableConcept={"coding": [{"system": SCT, "code": code, "display": disp}], "text": disp})

    def meno(self, when, post=True):
        code, disp = ("307429007", "After menopause") if post else ("309606002", "Before menopause")
        self.obs("menopausalStatus", "161712005", "Menopausal status", when, system=SCT, cat="social-history",
                 valueCodeableConcept={"coding": [{"system": SCT, "code": code, "display": disp}], "text": disp})

    def anc(self, when, value, unit="10*3/uL", code="751-8", display="Neutrophils [#/volume] in Blood by Automated count",
            low=1.5, high=7.5):
        self.qty("otherObservations", code, display, when, value, unit, low=low, high=high)

    def cond(self, when, codings, text, status="active", stage=None, severity=None, abatement=None, note=None, category="problem-list-item"):
        r = {"resourceType": "Condition", "id": self._id("cond"),
             "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
             "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": category}]}],
             "code": {"coding": [{"system": s, "code": c, "display": disp} for s, c, disp in codings], "text": text},
             "subject": self._subj(), "onsetDateTime": when, "recordedDate": when}
        if stage:
            r["stage"] = [{"summary": stage, "type": {"coding": [{"system": SCT, "code": "260998006", "display": "Clinical staging (qualifier value)"}]}}]
        if severity:
            r["severity"] = severity
        if abatement:
            r["abatementDateTime"] = abatement
        if note:
            r["note"] = [{"text": note}]
        self.b["conditions"].append(r)
        return r

    def breast_primary(self, when, male=False, side="right", stage_iv=True):
        if male:
            codings = [(ICD10, "C50.921", "Malignant neoplasm of unspecified site of right male breast"),
                       (SCT, "372064008", "Malignant neoplasm of male breast")]
        else:
            codings = [(ICD10, "C50.911", "Malignant neoplasm of unspecified site of right female breast"),
                       (SCT, "254837009", "Malignant neoplasm of breast")]
        stage = {"coding": [{"system": SCT, "code": "1222806003", "display": "American Joint Committee on Cancer stage IV (qualifier value)"}],
                 "text": "Stage IV"} if stage_iv else None
        return self.cond(when, codings, "Invasive ductal carcinoma of breast, HER2-positive" if not male else "Male breast cancer",
                         stage=stage, category="encounter-diagnosis")

    def met(self, when, site):
        table = {
            "bone": [(ICD10, "C79.51", "Secondary malignant neoplasm of bone"), (SCT, "94222008", "Secondary malignant neoplasm of bone")],
            "liver": [(ICD10, "C78.7", "Secondary malignant neoplasm of liver and intrahepatic bile duct"), (SCT, "94381002", "Secondary malignant neoplasm of liver")],
            "lung": [(ICD10, "C78.01", "Secondary malignant neoplasm of right lung"), (SCT, "94391008", "Secondary malignant neoplasm of lung")],
            "brain": [(ICD10, "C79.31", "Secondary malignant neoplasm of brain"), (SCT, "94225005", "Secondary malignant neoplasm of brain")],
        }
        return self.cond(when, table[site], f"Metastasis to {site}")

    def cm1(self, when):
        self.obs("otherObservations", "21907-1", "Distant metastases.clinical [Class] Cancer", when, cat="exam",
                 valueCodeableConcept={"coding": [{"system": SCT, "code": "1229903009", "display": "American Joint Committee on Cancer cM1 (qualifier value)"}], "text": "cM1"})

    def stmt(self, drug, start, end=None, status="active", reason=None):
        r = {"resourceType": "MedicationStatement", "id": self._id("ms"), "status": status,
             "medicationCodeableConcept": DRUG[drug] if isinstance(drug, str) else drug,
             "subject": self._subj(), "effectivePeriod": {"start": start, **({"end": end} if end else {})},
             "dateAsserted": end or start}
        if reason:
            r["statusReason"] = [{"text": reason}]
        self.b["medicationStatements"].append(r)
        return r

    def admins(self, drug, first_days_ago, n, every=21):
        for i in range(n):
            when = d(first_days_ago - i * every)
            self.b["medicationAdministrations"].append({
                "resourceType": "MedicationAdministration", "id": self._id("ma"), "status": "completed",
                "medicationCodeableConcept": DRUG[drug] if isinstance(drug, str) else drug,
                "subject": self._subj(), "effectiveDateTime": when + "T10:00:00Z"})

    def req(self, drug, authored, status="active"):
        r = {"resourceType": "MedicationRequest", "id": self._id("mr"), "status": status, "intent": "order",
             "medicationCodeableConcept": DRUG[drug] if isinstance(drug, str) else drug,
             "subject": self._subj(), "authoredOn": authored}
        self.b["medicationRequests"].append(r)
        return r

    def draft(self, drug):
        r = {"resourceType": "MedicationRequest", "id": self._id("draft"), "status": "draft", "intent": "order",
             "medicationCodeableConcept": DRUG[drug] if isinstance(drug, str) else drug,
             "subject": self._subj(), "authoredOn": TODAY.isoformat()}
        self.drafts.append(r)
        return r

    def request(self, hook):
        pf = {"patient": {"resourceType": "Patient", "id": self.pid, "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
                          "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5.99999.1", "value": self.pid.upper()}],
                          "name": [{"family": "Synthetic", "given": [self.pid]}], "gender": self.gender, "birthDate": self.birth}}
        for k, rs in self.b.items():
            pf[k] = {"resourceType": "Bundle", "type": "searchset", "total": len(rs),
                     "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, r['id'])}", "resource": r, "search": {"mode": "match"}} for r in rs]}
        ctx = {"userId": "Practitioner/ind3-oncologist", "patientId": self.pid}
        if hook != "patient-view":
            ctx["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in self.drafts]}
            if hook == "order-select":
                ctx["selections"] = [f"MedicationRequest/{r['id']}" for r in self.drafts]
        return {"hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, self.pid + hook)), "hook": hook, "context": ctx, "prefetch": pf}


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def her2pos_base(p, hr_pos, meno_post=True, male=False, dx=400, ihc_as_cc=False):
    p.breast_primary(d(dx), male=male)
    p.met(d(dx), "bone")
    p.met(d(dx), "liver")
    p.cm1(d(dx))
    p.her2_ihc(d(dx + 5), "3+", as_cc=ihc_as_cc, text="3+ (Positive)")
    p.er(d(dx + 5), 85 if hr_pos else 0)
    p.pr(d(dx + 5), 40 if hr_pos else 0)
    if not male:
        p.meno(d(dx), post=meno_post)
    p.ecog(d(14), 1)


def thp_done_on_hp(p, start_days_ago=300, cycles=6, hp_drugs=("herceptin", "perjeta")):
    """THP induction given as administrations, then HP maintenance continuing."""
    p.admins("docetaxel", start_days_ago, cycles)
    for dr in hp_drugs:
        p.admins(dr, start_days_ago, cycles + (start_days_ago - cycles * 21) // 21)
        p.stmt(dr, d(start_days_ago))


# ============================================================== cases
@case
def c01():
    p = P("ind3-01-palbo-anc-900", "female", "1970-02-11")
    her2pos_base(p, hr_pos=True)
    thp_done_on_hp(p)
    p.stmt("letrozole", d(60))
    p.lvef(d(40), 61)
    p.anc(d(3), 900, unit="/uL", code="26499-4", display="Neutrophils [#/volume] in Blood", low=1500, high=7500)
    p.draft("ibrance")
    return "01-palbociclib-anc-900.json", "order-select", p


@case
def c02():
    p = P("ind3-02-palbo-anc-1000", "female", "1968-07-30")
    her2pos_base(p, hr_pos=True)
    thp_done_on_hp(p)
    p.stmt("letrozole", d(60))
    p.lvef(d(40), 60)
    p.anc(d(3), 1.0)
    p.draft("ibrance")
    return "02-palbociclib-anc-1000-negative.json", "order-select", p


@case
def c03():
    p = P("ind3-03-abema-anc-700", "female", "1961-04-02")
    her2pos_base(p, hr_pos=True, dx=700)
    p.admins("docetaxel", 690, 6)
    p.stmt("trastuzumab", d(690), d(60), status="completed")
    p.stmt("pertuzumab", d(690), d(60), status="completed")
    p.status(d(45))
    p.stmt("enhertu", d(40), d(10), status="stopped", reason="patient preference")
    p.stmt("fulvestrant", d(20))
    p.stmt("kanjinti", d(20))
    p.lvef(d(30), 58)
    p.anc(d(2), 0.7)
    p.draft("verzenio")
    return "03-abemaciclib-anc-700.json", "order-select", p


def third_line_base(p):
    her2pos_base(p, hr_pos=False, dx=900)
    p.admins("docetaxel", 890, 6)
    p.stmt("trastuzumab", d(890), d(500), status="completed")
    p.stmt("pertuzumab", d(890), d(500), status="completed")
    p.stmt("enhertu", d(480), d(30), status="completed")
    p.status(d(20))
    p.lvef(d(25), 59)


@case
def c04():
    p = P("ind3-04-cape-crcl-25", "female", "1953-09-19")
    third_line_base(p)
    p.cond(d(700), [(ICD10, "N18.4", "Chronic kidney disease, stage 4 (severe)"), (SCT, "431857002", "Chronic kidney disease stage 4")],
           "CKD stage 4")
    p.qty("otherObservations", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", d(4), 2.1, "mg/dL", low=0.5, high=1.1)
    p.qty("otherObservations", "35591-7", "Creatinine renal clearance predicted by Cockcroft-Gault formula", d(4), 25, "mL/min", low=90)
    for k in ("tukysa", "xeloda", "kanjinti"):
        p.draft(k)
    return "04-capecitabine-crcl-25.json", "order-select", p


@case
def c05():
    p = P("ind3-05-cape-crcl-31", "female", "1952-01-07")
    third_line_base(p)
    p.cond(d(700), [(ICD10, "N18.32", "Chronic kidney disease, stage 3b"), (SCT, "700379002", "Chronic kidney disease stage 3B")],
           "CKD stage 3b")
    p.qty("otherObservations", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", d(4), 1.6, "mg/dL", low=0.5, high=1.1)
    p.qty("otherObservations", "35591-7", "Creatinine renal clearance predicted by Cockcroft-Gault formula", d(4), 31, "mL/min", low=90)
    for k in ("tukysa", "xeloda", "kanjinti"):
        p.draft(k)
    return "05-capecitabine-crcl-31-negative.json", "order-select", p


@case
def c06():
    p = P("ind3-06-alpelisib-dm", "female", "1963-05-25")
    her2pos_base(p, hr_pos=True, dx=600)
    p.admins("docetaxel", 590, 6)
    p.stmt("phesgo", d(590))
    p.stmt("letrozole", d(450), d(30), status="stopped", reason="progression")
    p.status(d(30))
    p.obs("otherObservations", "69548-6", "Genetic variant assessment", d(25),
          valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA9633-4", "display": "Present"}], "text": "PIK3CA H1047R detected"},
          note="PIK3CA p.H1047R pathogenic variant detected (tumor NGS)")
    p.cond(d(3000), [(ICD10, "E11.65", "Type 2 diabetes mellitus with hyperglycemia"), (SCT, "44054006", "Diabetes mellitus type 2")],
           "Type 2 diabetes mellitus, uncontrolled")
    p.qty("otherObservations", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", d(6), 9.1, "%", high=5.6)
    p.qty("otherObservations", "1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma", d(6), 212, "mg/dL", low=70, high=99)
    p.lvef(d(40), 60)
    p.draft("piqray")
    p.draft("fulvestrant")
    return "06-alpelisib-uncontrolled-diabetes.json", "order-select", p


@case
def c07():
    p = P("ind3-07-phesgo-lvef-38", "female", "1977-03-03")
    her2pos_base(p, hr_pos=False)
    p.admins("docetaxel", 300, 6)
    p.admins("phesgo_txt", 300, 14)
    p.stmt("phesgo_txt", d(300))
    p.lvef(d(300), 62, code="8806-2", display="Left ventricular Ejection fraction by 2D echo")
    p.lvef(d(6), 38, code="8806-2", display="Left ventricular Ejection fraction by 2D echo")
    p.draft("phesgo_txt")
    return "07-phesgo-lvef-38.json", "order-sign", p


@case
def c08():
    p = P("ind3-08-tdm1-lvef-43", "female", "1968-10-14")
    third_line_base(p)
    p.b["otherObservations"] = [o for o in p.b["otherObservations"] if o["code"]["coding"][0]["code"] != "10230-1"]
    p.lvef(d(150), 58)
    p.admins("kadcyla", 84, 5)
    p.stmt("kadcyla", d(84))
    p.lvef(d(4), 43)
    p.draft("kadcyla")
    return "08-tdm1-lvef-43-drop-15.json", "order-select", p


@case
def c09():
    p = P("ind3-09-thp-lvef-50", "female", "1972-12-01")
    her2pos_base(p, hr_pos=False, dx=60)
    p.lvef(d(62), 52)
    p.admins("docetaxel", 42, 2)
    p.admins("herceptin", 42, 2)
    p.admins("perjeta", 42, 2)
    p.lvef(d(5), 50)
    for k in ("docetaxel", "herceptin", "perjeta"):
        p.draft(k)
    return "09-thp-lvef-50-no-drop-negative.json", "order-select", p


@case
def c10():
    p = P("ind3-10-tdxd-after-g2-ild", "female", "1965-06-21")
    her2pos_base(p, hr_pos=False, dx=900)
    p.admins("docetaxel", 890, 6)
    p.stmt("trastuzumab", d(890), d(500), status="completed")
    p.stmt("pertuzumab", d(890), d(500), status="completed")
    p.stmt("enhertu", d(480), d(260), status="stopped", reason="Grade 2 pneumonitis")
    p.cond(d(265), [(ICD10, "J84.89", "Other interstitial pulmonary diseases"), (SCT, "233703007", "Interstitial lung disease")],
           "Interstitial lung disease / pneumonitis, CTCAE grade 2, attributed to Enhertu",
           status="resolved", abatement=d(180),
           severity={"coding": [{"system": SCT, "code": "6736007", "display": "Moderate"}], "text": "Grade 2"},
           note="Symptomatic pneumonitis on trastuzumab deruxtecan; prednisone 1 mg/kg; resolved on CT.")
    p.admins("kadcyla", 250, 10)
    p.stmt("kadcyla", d(250), d(25), status="completed")
    p.status(d(20))
    p.lvef(d(30), 60)
    p.draft("enhertu")
    return "10-tdxd-rechallenge-after-grade2-ild.json", "order-sign", p


@case
def c11():
    p = P("ind3-11-tucatinib-cp-c", "female", "1960-08-08")
    third_line_base(p)
    p.cond(d(1500), [(ICD10, "K70.31", "Alcoholic cirrhosis of liver with ascites"), (SCT, "420054005", "Alcoholic cirrhosis")],
           "Alcoholic cirrhosis with ascites", note="Child-Pugh class C (score 11): albumin 2.6, INR 2.4, moderate ascites, grade 1 encephalopathy")
    p.qty("otherObservations", "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", d(3), 1.7, "mg/dL", low=0.1, high=1.2)
    p.qty("otherObservations", "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", d(3), 38, "U/L", high=33)
    p.qty("otherObservations", "1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", d(3), 52, "U/L", high=32)
    for k in ("tukysa", "capecitabine", "herceptin"):
        p.draft(k)
    return "11-tucatinib-child-pugh-c.json", "order-select", p


@case
def c12():
    p = P("ind3-12-tucatinib-cp-a", "female", "1962-02-16")
    third_line_base(p)
    p.cond(d(1500), [(ICD10, "K74.60", "Unspecified cirrhosis of liver"), (SCT, "19943007", "Cirrhosis of liver")],
           "Compensated cirrhosis (NASH)", note="Child-Pugh class A (score 5)")
    p.qty("otherObservations", "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", d(3), 0.9, "mg/dL", low=0.1, high=1.2)
    p.qty("otherObservations", "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", d(3), 28, "U/L", high=33)
    for k in ("tukysa", "capecitabine", "herceptin"):
        p.draft(k)
    return "12-tucatinib-child-pugh-a-negative.json", "order-select", p


@case
def c13():
    p = P("ind3-13-neratinib-no-lop", "female", "1971-11-30")
    third_line_base(p)
    p.stmt("loperamide", d(1400), d(1300), status="completed")
    for k in ("nerlynx", "capecitabine"):
        p.draft(k)
    return "13-neratinib-no-antidiarrheal-prophylaxis.json", "order-select", p


@case
def c14():
    p = P("ind3-14-male-palbo", "male", "1962-03-14")
    her2pos_base(p, hr_pos=True, male=True)
    thp_done_on_hp(p)
    p.lvef(d(40), 59)
    p.anc(d(3), 2.4)
    p.draft("letrozole")
    p.draft("ibrance")
    return "14-male-letrozole-palbociclib-no-gnrh.json", "order-select", p


@case
def c15():
    p = P("ind3-15-premeno-ai", "female", "1985-01-20")
    her2pos_base(p, hr_pos=True, meno_post=False)
    thp_done_on_hp(p)
    p.lvef(d(40), 63)
    p.draft("anastrozole")
    return "15-premenopausal-anastrozole-no-ofs.json", "order-select", p


@case
def c16():
    p = P("ind3-16-premeno-ai-lupron", "female", "1984-09-09")
    her2pos_base(p, hr_pos=True, meno_post=False)
    thp_done_on_hp(p)
    p.lvef(d(40), 63)
    p.stmt("lupron", d(130))
    p.admins("lupron", 130, 2, every=84)
    p.draft("letrozole")
    return "16-premenopausal-letrozole-with-leuprolide-negative.json", "order-select", p


@case
def c17():
    p = P("ind3-17-leptomeningeal", "female", "1974-05-05")
    her2pos_base(p, hr_pos=False, dx=500)
    p.admins("docetaxel", 490, 6)
    p.stmt("phesgo", d(490))
    p.admins("phesgo", 63, 4)
    p.cond(d(8), [(ICD10, "C79.32", "Secondary malignant neoplasm of cerebral meninges")],
           "Leptomeningeal carcinomatosis (MRI enhancement + positive CSF cytology)")
    p.status(d(8))
    p.lvef(d(60), 61)
    return "17-leptomeningeal-disease-patient-view.json", "patient-view", p


@case
def c18():
    p = P("ind3-18-stable-brain", "female", "1978-07-17")
    her2pos_base(p, hr_pos=False, dx=420)
    p.met(d(260), "brain")
    p.b["conditions"][-1]["note"] = [{"text": "Two lesions treated with SRS; MRI 2026-05 stable, no new lesions. Extracranial disease controlled."}]
    p.admins("docetaxel", 410, 6)
    p.admins("herceptin", 290, 14)
    p.admins("perjeta", 290, 14)
    p.stmt("herceptin", d(410))
    p.stmt("perjeta", d(410))
    p.status(d(12), worse=False)
    p.lvef(d(50), 60)
    return "18-stable-treated-brain-mets-on-hp-patient-view.json", "patient-view", p


@case
def c19():
    p = P("ind3-19-her2low-tdxd", "female", "1966-12-24")
    p.breast_primary(d(400))
    p.met(d(400), "liver")
    p.met(d(400), "lung")
    p.her2_ihc(d(395), "1+")
    p.her2_ish(d(395), amplified=False)
    p.er(d(395), 0)
    p.pr(d(395), 0)
    p.meno(d(400))
    p.ecog(d(10), 1)
    p.stmt("paclitaxel", d(380), d(60), status="completed")
    p.status(d(20))
    p.lvef(d(15), 62)
    p.draft("enhertu")
    return "19-her2-low-tdxd-after-chemo.json", "order-select", p


@case
def c20():
    p = P("ind3-20-ultralow-tdxd", "female", "1959-10-10")
    p.breast_primary(d(900))
    p.met(d(900), "bone")
    p.met(d(300), "liver")
    p.her2_ihc(d(295), "0", as_cc=True,
               text="0 (HER2-ultralow: faint, incomplete membrane staining in <=10% of tumor cells)")
    p.er(d(295), 90)
    p.pr(d(295), 30)
    p.meno(d(900))
    p.ecog(d(10), 1)
    p.stmt("letrozole", d(890), d(320), status="completed")
    p.stmt("ibrance", d(890), d(320), status="completed")
    p.stmt("fulvestrant", d(310), d(25), status="stopped", reason="progression")
    p.status(d(25))
    p.lvef(d(15), 63)
    p.draft("enhertu")
    return "20-her2-ultralow-tdxd-after-et.json", "order-select", p


@case
def c21():
    p = P("ind3-21-er-low", "female", "1969-08-27")
    p.breast_primary(d(320))
    p.met(d(320), "bone")
    p.met(d(320), "lung")
    p.her2_ihc(d(325), "3+")
    p.er(d(325), 5)
    p.b["hormoneReceptors"][-1]["valueCodeableConcept"]["text"] = "Low positive (5%, weak)"
    p.pr(d(325), 0)
    p.meno(d(320))
    p.ecog(d(14), 0)
    thp_done_on_hp(p, start_days_ago=300, cycles=8)
    p.status(d(20), worse=False)
    p.lvef(d(40), 61)
    return "21-er-low-after-thp-patient-view.json", "patient-view", p


@case
def c22():
    p = P("ind3-22-prog-1l", "female", "1971-01-31")
    her2pos_base(p, hr_pos=False, dx=360)
    p.admins("docetaxel", 350, 6)
    p.admins("herceptin", 350, 16)
    p.admins("perjeta", 350, 16)
    p.stmt("herceptin", d(350), d(10), status="stopped", reason="disease progression")
    p.stmt("perjeta", d(350), d(10), status="stopped", reason="disease progression")
    p.status(d(15))
    p.lvef(d(30), 60)
    return "22-progression-on-first-line-patient-view.json", "patient-view", p


@case
def c23():
    p = P("ind3-23-prog-on-tdxd", "female", "1964-04-18")
    her2pos_base(p, hr_pos=False, dx=800)
    p.admins("docetaxel", 790, 6)
    p.stmt("trastuzumab", d(790), d(470), status="completed")
    p.stmt("pertuzumab", d(790), d(470), status="completed")
    p.admins("enhertu", 460, 21)
    p.stmt("enhertu", d(460), d(14), status="stopped", reason="disease progression")
    p.status(d(12))
    p.lvef(d(30), 59)
    return "23-progression-after-tdxd-patient-view.json", "patient-view", p


@case
def c24():
    p = P("ind3-24-frail-84", "female", "1942-02-02")
    p.breast_primary(d(20))
    p.met(d(20), "bone")
    p.met(d(20), "lung")
    p.cm1(d(20))
    p.her2_ihc(d(25), "3+")
    p.er(d(25), 70)
    p.pr(d(25), 10)
    p.meno(d(20))
    p.ecog(d(7), 2)
    p.cond(d(3000), [(ICD10, "I50.32", "Chronic diastolic (congestive) heart failure"), (SCT, "441481004", "Chronic diastolic heart failure")], "HFpEF")
    p.cond(d(400), [(ICD10, "R54", "Age-related physical debility"), (SCT, "248279007", "Frailty")], "Frailty")
    p.lvef(d(10), 56)
    for k in ("docetaxel", "herceptin", "perjeta"):
        p.draft(k)
    return "24-elderly-frail-ecog2-thp.json", "order-select", p


@case
def c25():
    p = P("ind3-25-docetaxel-9", "female", "1976-06-06")
    her2pos_base(p, hr_pos=False, dx=180)
    p.admins("docetaxel", 168, 8)
    p.admins("herceptin", 168, 8)
    p.admins("perjeta", 168, 8)
    p.status(d(10), sct=("268910001", "Patient's condition improved"))
    p.lvef(d(30), 60)
    for k in ("docetaxel", "herceptin", "perjeta"):
        p.draft(k)
    return "25-ninth-docetaxel-cycle.json", "order-select", p


@case
def c26():
    p = P("ind3-26-on-phesgo-ai", "female", "1964-09-12")
    her2pos_base(p, hr_pos=True, dx=420)
    p.admins("docetaxel", 410, 6)
    p.admins("phesgo_txt", 410, 19)
    p.stmt("phesgo_txt", d(410))
    p.stmt("anastrozole", d(280))
    p.req("anastrozole", d(30))
    p.status(d(14), worse=False)
    p.lvef(d(45), 61)
    return "26-already-on-phesgo-anastrozole-patient-view.json", "patient-view", p


@case
def c27():
    p = P("ind3-27-no-her2", "female", "1967-03-23")
    p.breast_primary(d(15))
    p.met(d(15), "liver")
    p.er(d(18), 60)
    p.pr(d(18), 20)
    p.meno(d(15))
    p.ecog(d(7), 1)
    p.lvef(d(10), 62)
    for k in ("docetaxel", "herceptin", "perjeta"):
        p.draft(k)
    return "27-missing-her2-thp-order.json", "order-select", p


@case
def c28():
    p = P("ind3-28-her2-discordant", "female", "1973-11-11")
    p.breast_primary(d(1200))
    p.met(d(30), "liver")
    p.her2_ihc(d(1200), "3+")
    p.her2_ihc(d(28), "0")
    p.her2_ish(d(28), amplified=False)
    p.er(d(28), 0)
    p.pr(d(28), 0)
    p.meno(d(30))
    p.ecog(d(7), 1)
    p.lvef(d(10), 62)
    for k in ("docetaxel", "herceptin", "perjeta"):
        p.draft(k)
    return "28-discordant-her2-primary-3plus-met-0.json", "order-select", p


@case
def c29():
    p = P("ind3-29-pregnant", "female", "1992-05-05")
    her2pos_base(p, hr_pos=False, meno_post=False, dx=40)
    p.obs("otherObservations", "2118-8", "Choriogonadotropin (pregnancy test) [Presence] in Serum or Plasma", d(4),
          valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA6576-8", "display": "Positive"}], "text": "Positive"})
    p.cond(d(4), [(ICD10, "Z3A.08", "8 weeks gestation of pregnancy"), (SCT, "72892002", "Normal pregnancy")], "Pregnancy, 8 weeks")
    p.lvef(d(10), 64)
    for k in ("paclitaxel", "herceptin", "perjeta"):
        p.draft(k)
    return "29-pregnant-hcg-positive-trastuzumab.json", "order-sign", p


@case
def c30():
    p = P("ind3-30-clean-1l", "female", "1974-02-14")
    p.breast_primary(d(20))
    p.met(d(20), "liver")
    p.met(d(20), "bone")
    p.cm1(d(20))
    p.her2_ihc(d(25), "2+")
    p.her2_ish(d(25), amplified=True)
    p.er(d(25), 0)
    p.pr(d(25), 0)
    p.meno(d(20))
    p.ecog(d(7), 0)
    p.lvef(d(10), 64)
    p.anc(d(3), 4.2)
    p.qty("otherObservations", "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", d(3), 0.6, "mg/dL", low=0.1, high=1.2)
    p.qty("otherObservations", "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", d(3), 22, "U/L", high=33)
    for k in ("docetaxel", "herceptin", "perjeta"):
        p.draft(k)
    return "30-clean-de-novo-thp-negative.json", "order-select", p


# ------------------------------------------------------------ supplementary cases (added after the first run,
# to separate the question asked from the service's "maintenance decision still open" window)
@case
def c31():
    p = P("ind3-31-er-low-open", "female", "1969-08-28")
    p.breast_primary(d(200))
    p.met(d(200), "bone")
    p.met(d(200), "lung")
    p.her2_ihc(d(205), "3+")
    p.er(d(205), 5)
    p.b["hormoneReceptors"][-1]["valueCodeableConcept"]["text"] = "Low positive (5%, weak)"
    p.pr(d(205), 0)
    p.meno(d(200))
    p.ecog(d(14), 0)
    p.admins("docetaxel", 168, 8)
    p.admins("herceptin", 168, 8)
    p.admins("perjeta", 168, 8)
    p.stmt("herceptin", d(168))
    p.stmt("perjeta", d(168))
    p.status(d(10), worse=False)
    p.lvef(d(30), 61)
    return "31-er-low-induction-just-completed-patient-view.json", "patient-view", p


@case
def c32():
    p = P("ind3-32-on-phesgo-ai-open", "female", "1964-09-13")
    her2pos_base(p, hr_pos=True, dx=180)
    p.admins("docetaxel", 168, 8)
    p.admins("phesgo_txt", 168, 8)
    p.stmt("phesgo_txt", d(168))
    p.stmt("anastrozole", d(20))
    p.req("anastrozole", d(20))
    p.status(d(10), worse=False)
    p.lvef(d(30), 61)
    return "32-already-on-phesgo-anastrozole-induction-just-completed-patient-view.json", "patient-view", p


@case
def c33():
    p = P("ind3-33-pregnant-sct", "female", "1991-07-07")
    her2pos_base(p, hr_pos=False, meno_post=False, dx=40)
    p.cond(d(6), [(SCT, "77386006", "Pregnancy")], "Pregnant")
    p.lvef(d(10), 64)
    for k in ("paclitaxel", "herceptin", "perjeta"):
        p.draft(k)
    return "33-pregnant-snomed-only-trastuzumab.json", "order-sign", p


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for fn in CASES:
        name, hook, p = fn()
        (OUT / name).write_text(json.dumps(p.request(hook), indent=1) + "\n")
        print(name, hook)
