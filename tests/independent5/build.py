"""Builds the synthetic CDS Hooks requests of the fifth independent review. Dates anchored at 2026-06-01.

Focus: how records as EHRs send them are read (text-only HER2, ISH numbers, staging text, refuted
and entered-in-error Conditions, neutrophil unit spellings, labs with/without reference ranges,
LVEF drops, hCG, menopausal status, ATC / RxNorm product codes, period-only statements, MAs).
"""
import datetime
import json
import os

OUT = os.path.join(os.path.dirname(__file__), "cases")
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
LN = "http://loinc.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
DRUG = {  # key: (system, code, display, order text)
    "trastuzumab": (RX, "224905", "trastuzumab", "trastuzumab 6 mg/kg IV every 21 days"),
    "pertuzumab": (RX, "1298944", "pertuzumab", "pertuzumab 420 mg IV every 21 days"),
    "docetaxel": (RX, "72962", "docetaxel", "docetaxel 75 mg/m2 IV every 21 days"),
    "paclitaxel": (RX, "56946", "paclitaxel", "paclitaxel 80 mg/m2 IV weekly"),
    "abraxane": (RX, "589511", "Abraxane", "ABRAXANE (paclitaxel protein-bound particles) 100 mg/m2 IV days 1, 8, 15 q28d"),
    "tdxd": (RX, "2267582", "fam-trastuzumab deruxtecan", "fam-trastuzumab deruxtecan-nxki 5.4 mg/kg IV q3w"),
    "enhertu-product": (RX, "2267581", "fam-trastuzumab deruxtecan-nxki 100 MG Injection [Enhertu]", "Enhertu 5.4 mg/kg IV q3w"),
    "tdm1": (RX, "1371041", "ado-trastuzumab emtansine", "ado-trastuzumab emtansine 3.6 mg/kg IV q3w"),
    "letrozole": (RX, "72965", "letrozole", "letrozole 2.5 mg PO daily"),
    "palbociclib": (RX, "1601374", "palbociclib", "palbociclib 125 mg PO d1-21 q28d"),
    "exemestane-scd": (RX, "310261", "exemestane 25 MG Oral Tablet", "exemestane 25 mg PO daily"),
    "docetaxel-atc": (ATC, "L01CD02", "docetaxel", "Docetaxel"),
    "trastuzumab-atc": (ATC, "L01FD01", "trastuzumab", "Trastuzumab infusion"),
    "pertuzumab-atc-old": (ATC, "L01XC13", "pertuzumab", "Pertuzumab infusion"),
}


def cc(key):
    system, code, disp, text = DRUG[key]
    return {"coding": [{"system": system, "code": code, "display": disp}], "text": text}


def ref(pid):
    return {"reference": f"Patient/{pid}"}


def bundle(res):
    return {"resourceType": "Bundle", "type": "searchset", "total": len(res),
            "entry": [{"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r} for r in res]}


def q21(start, n):
    d = datetime.date.fromisoformat(start)
    return [(d + datetime.timedelta(days=21 * i)).isoformat() for i in range(n)]


class P:
    def __init__(s, pid, birth="1960-03-02"):
        s.pid, s.n = pid, 0
        s.patient = {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": birth,
                     "name": [{"family": "Synthetic", "given": [pid]}]}
        s.her2, s.hr, s.obs, s.cond, s.ms, s.mr, s.ma, s.meno, s.proc = [], [], [], [], [], [], [], [], []

    def nid(s, p):
        s.n += 1
        return f"{s.pid}-{p}{s.n}"

    def o(s, code, disp, date, **val):
        r = {"resourceType": "Observation", "id": s.nid("obs"), "status": "final",
             "code": {"coding": [{"system": LN, "code": code, "display": disp}], "text": disp},
             "subject": ref(s.pid), "effectiveDateTime": date}
        r.update(val)
        return r

    # HER2 / receptors
    def ihc(s, date="2025-09-10", **val):
        s.her2.append(s.o("85319-2", "HER2 [Presence] in Breast cancer specimen by Immune stain", date, **val))

    def her2pos(s):
        s.ihc(valueCodeableConcept={"text": "3+"},
              interpretation=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "POS"}]}])

    def ratio(s, date="2025-09-10", **val):
        s.her2.append(s.o("49683-6", "HER2/Chromosome 17 centromere [Ratio] in Blood or Tissue by FISH", date, **val))

    def copies(s, date="2025-09-10", **val):
        s.her2.append(s.o("74860-8", "ERBB2 gene copy number [#/cell] in Blood or Tissue by FISH", date, **val))

    def receptors(s, er_pct, pr_pos, date="2025-09-10"):
        s.hr.append(s.o("85329-1", "Cells.estrogen receptor/100 cells in Breast cancer specimen by Immune stain", date,
                        valueQuantity={"value": er_pct, "unit": "%", "system": UCUM, "code": "%"}))
        a = ("LA6576-8", "Positive") if pr_pos else ("LA6577-6", "Negative")
        s.hr.append(s.o("85339-0", "Progesterone receptor Ag [Presence] in Breast cancer specimen by Immune stain", date,
                        valueCodeableConcept={"coding": [{"system": LN, "code": a[0], "display": a[1]}]}))

    # other observations
    def ecog(s, g=1, date="2026-05-20"):
        s.obs.append(s.o("89247-1", "ECOG Performance Status score", date, valueInteger=g))

    def lvef(s, v, date="2026-05-10", low=None):
        kw = {"valueQuantity": {"value": v, "unit": "%", "system": UCUM, "code": "%"}}
        if low is not None:
            kw["referenceRange"] = [{"low": {"value": low, "unit": "%", "system": UCUM, "code": "%"}}]
        s.obs.append(s.o("10230-1", "Left ventricular Ejection fraction", date, **kw))

    def anc(s, v, unit="10*3/uL", code=None, date="2026-05-31"):
        q = {"value": v, "unit": unit}
        if code:
            q.update(system=UCUM, code=code)
        s.obs.append(s.o("751-8", "Neutrophils [#/volume] in Blood by Automated count", date, valueQuantity=q))

    def lab(s, code, disp, v, unit, high=None, date="2026-05-31"):
        kw = {"valueQuantity": {"value": v, "unit": unit, "system": UCUM, "code": unit}}
        if high is not None:
            kw["referenceRange"] = [{"high": {"value": high, "unit": unit, "system": UCUM, "code": unit}}]
        s.obs.append(s.o(code, disp, date, **kw))

    def liver(s, alt=(25, 40), ast=(24, 40), alp=(90, 120), bili=(0.7, 1.2), bili_unit="mg/dL", date="2026-05-31"):
        s.lab("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", alt[0], "U/L", alt[1], date)
        s.lab("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", ast[0], "U/L", ast[1], date)
        s.lab("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", alp[0], "U/L", alp[1], date)
        code = "14631-6" if bili_unit == "umol/L" else "1975-2"
        s.lab(code, "Bilirubin.total [Moles/volume] in Serum or Plasma" if bili_unit == "umol/L" else "Bilirubin.total [Mass/volume] in Serum or Plasma",
              bili[0], bili_unit, bili[1], date)

    def status(s, worse, date):
        a = ("271299001", "Patient's condition worsened") if worse else ("359746009", "Patient's condition stable")
        s.obs.append(s.o("97509-4", "Cancer disease status", date,
                         valueCodeableConcept={"coding": [{"system": SCT, "code": a[0], "display": a[1]}]}))

    # conditions
    def c(s, code, disp, onset, system=ICD, ver="confirmed", clinical="active", **extra):
        r = {"resourceType": "Condition", "id": s.nid("cond"),
             "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": ver}]},
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
             "code": {"coding": [{"system": system, "code": code, "display": disp}], "text": disp},
             "subject": ref(s.pid), "onsetDateTime": onset}
        if clinical:
            r["clinicalStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]}
        r.update(extra)
        s.cond.append(r)
        return r

    def primary(s, onset="2025-08-20", code="C50.911", **extra):
        return s.c(code, "Malignant neoplasm of unspecified site of right female breast" if code == "C50.911"
                   else "Malignant neoplasm of unspecified site of left female breast", onset, **extra)

    def mbc(s, onset="2026-05-01", site="liver"):
        s.primary(onset=min(onset, "2025-08-20"))
        m = {"liver": ("C78.7", "Secondary malignant neoplasm of liver and intrahepatic bile duct", ICD),
             "bone-sct": ("94222008", "Secondary malignant neoplasm of bone", SCT),
             "bone": ("C79.51", "Secondary malignant neoplasm of bone", ICD)}[site]
        s.c(m[0], m[1], onset, system=m[2])

    # medications
    def stmt(s, key, start, end=None, status="completed"):
        r = {"resourceType": "MedicationStatement", "id": s.nid("ms"), "status": status, "medicationCodeableConcept": cc(key),
             "subject": ref(s.pid), "effectivePeriod": {"start": start, **({"end": end} if end else {})}}
        s.ms.append(r)

    def admin(s, key, dates):
        for d in dates:
            s.ma.append({"resourceType": "MedicationAdministration", "id": s.nid("ma"), "status": "completed",
                         "medicationCodeableConcept": cc(key), "subject": ref(s.pid), "effectiveDateTime": d + "T10:00:00Z"})

    def prefetch(s):
        return {"patient": s.patient, "her2": bundle(s.her2), "hormoneReceptors": bundle(s.hr), "otherObservations": bundle(s.obs),
                "menopausalStatus": bundle(s.meno), "procedures": bundle(s.proc), "conditions": bundle(s.cond),
                "medicationStatements": bundle(s.ms), "medicationRequests": bundle(s.mr), "medicationAdministrations": bundle(s.ma)}


def draft(p, key, n):
    return {"resourceType": "MedicationRequest", "id": f"{p.pid}-draft{n}", "status": "draft", "intent": "order",
            "medicationCodeableConcept": cc(key), "subject": ref(p.pid), "authoredOn": "2026-06-01"}


def write(name, p, hook, keys=()):
    drafts = [draft(p, k, i + 1) for i, k in enumerate(keys)]
    ctx = {"userId": "Practitioner/rev5-onc", "patientId": p.pid}
    if hook != "patient-view":
        ctx["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]}
        ctx["encounterId"] = f"enc-{p.pid}"
        if hook == "order-select":
            ctx["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    body = {"hook": hook, "hookInstance": f"rev5-{name}-{hook}", "context": ctx, "prefetch": p.prefetch()}
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(body, f, indent=1)


THP = ("docetaxel", "trastuzumab", "pertuzumab")


def first_line(pid, anc=(4.2, "10*3/uL", "10*3/uL"), liver=None, **kw):
    """De novo HER2+ HR- MBC (liver), untreated, all baseline tests recent and normal unless given."""
    p = P(pid, **kw)
    p.her2pos(); p.receptors(0, False); p.mbc()
    p.ecog(1); p.lvef(64)
    if anc:
        p.anc(anc[0], anc[1], anc[2])
    p.liver(**(liver or {}))
    return p


def after_thp(pid, prog="2026-05-10", **kw):
    """THP first line from 2024-10, progression recorded; ready for a second line."""
    p = P(pid, **kw)
    p.her2pos(); p.receptors(0, False); p.mbc("2024-10-01", "liver")
    p.stmt("trastuzumab", "2024-10-15", prog); p.stmt("pertuzumab", "2024-10-15", prog)
    p.stmt("docetaxel", "2024-10-15", "2025-02-20")
    p.status(True, prog)
    p.ecog(1)
    return p


os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.remove(os.path.join(OUT, f))

# 01 / 02 docetaxel and ANC (K/uL unit text only; 10^9/L at exactly 1.5)
write("01-docetaxel-anc-1.45-KuL-sign", first_line("rev5-01", anc=(1.45, "K/uL", None)), "order-sign", THP)
write("02-docetaxel-anc-1.5-10e9L-sign-neg", first_line("rev5-02", anc=(1.5, "10^9/L", None)), "order-sign", THP)
# 03 nab-paclitaxel by brand code, ANC 1400 /mm3
write("03-abraxane-bn-anc-1400-mm3-select", first_line("rev5-03", anc=(1400, "/mm3", None)), "order-select", ("abraxane", "trastuzumab", "pertuzumab"))
# 04 weekly paclitaxel, ANC 1100 cells/uL
write("04-paclitaxel-anc-1100-cells-uL-sign", first_line("rev5-04", anc=(1100, "cells/uL", None)), "order-sign", ("paclitaxel", "trastuzumab", "pertuzumab"))


# 05 / 06 T-DXd second line, on treatment (MAs), neutrophils 0.9 10*9/L vs 1.0 G/L
def on_tdxd(pid, lvefs=((58, "2026-01-20"), (57, "2026-05-10"))):
    p = after_thp(pid, prog="2026-01-10")
    p.admin("tdxd", q21("2026-01-28", 6))
    for v, d in lvefs:
        p.lvef(v, d)
    p.liver()
    return p


p = on_tdxd("rev5-05"); p.anc(0.9, "10*9/L", "10*9/L")
write("05-enhertu-product-anc-0.9-10e9L-sign", p, "order-sign", ("enhertu-product",))
p = on_tdxd("rev5-06"); p.anc(1.0, "G/L", None)
write("06-tdxd-anc-1.0-GL-sign-neg", p, "order-sign", ("tdxd",))

# 07-09 docetaxel and bilirubin without / with reference ranges, SI units
p = first_line("rev5-07", liver={"bili": (1.5, None)})
write("07-docetaxel-bili-1.5-no-range-sign", p, "order-sign", THP)
p = first_line("rev5-08", liver={"bili": (1.0, None)})
write("08-docetaxel-bili-1.0-no-range-sign-neg", p, "order-sign", THP)
p = first_line("rev5-09", liver={"bili": (30, 21), "bili_unit": "umol/L"})
write("09-docetaxel-bili-umol-range-sign", p, "order-sign", THP)

# 10 / 11 T-DM1 second line, Hy's-law combination vs transaminases alone
for pid, name, bili in (("rev5-10", "10-tdm1-hys-law-sign", 2.6), ("rev5-11", "11-tdm1-ast-3.7x-bili-normal-sign-neg", 0.9)):
    p = after_thp(pid); p.lvef(60); p.anc(3.5, "10*3/uL", "10*3/uL")
    p.liver(alt=(150, 40), ast=(130, 35), bili=(bili, 1.0))
    write(name, p, "order-sign", ("tdm1",))


# 12 / 13 trastuzumab maintenance, LVEF drop below LLN vs above
def hp_maintenance(pid, hr_pos=False, birth="1960-03-02"):
    p = P(pid, birth=birth)
    p.her2pos(); p.receptors(90 if hr_pos else 0, hr_pos); p.mbc("2025-09-01", "bone")
    p.admin("docetaxel", q21("2025-09-20", 6))
    p.admin("trastuzumab", q21("2025-09-20", 12)); p.admin("pertuzumab", q21("2025-09-20", 12))
    p.status(False, "2026-05-15"); p.ecog(0); p.anc(3.2, "10*3/uL", "10*3/uL"); p.liver()
    return p


for pid, name, v in (("rev5-12", "12-trastuzumab-lvef-62-48-lln-sign", 48), ("rev5-13", "13-trastuzumab-lvef-62-51-sign-neg", 51)):
    p = hp_maintenance(pid); p.lvef(62, "2025-09-10", low=50); p.lvef(v, "2026-05-25", low=50)
    write(name, p, "order-sign", ("trastuzumab", "pertuzumab"))

# 14 / 15 T-DXd LVEF 44 vs 47 from 58
p = on_tdxd("rev5-14", ((58, "2026-01-20"), (44, "2026-05-25"))); p.anc(3.0, "10*3/uL", "10*3/uL")
write("14-tdxd-lvef-58-44-sign", p, "order-sign", ("tdxd",))
p = on_tdxd("rev5-15", ((58, "2026-01-20"), (47, "2026-05-25"))); p.anc(3.0, "10*3/uL", "10*3/uL")
write("15-tdxd-lvef-58-47-sign-neg", p, "order-sign", ("tdxd",))

# 16 serum quantitative beta-hCG positive, THP drafted
p = first_line("rev5-16", birth="1990-01-15")
p.obs.append(p.o("21198-7", "Choriogonadotropin.beta subunit [Units/volume] in Serum or Plasma", "2026-05-26",
                 valueQuantity={"value": 1250, "unit": "m[IU]/mL", "system": UCUM, "code": "m[IU]/mL"},
                 referenceRange=[{"high": {"value": 5, "unit": "m[IU]/mL", "system": UCUM, "code": "m[IU]/mL"}}],
                 interpretation=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H", "display": "High"}]}]))
write("16-hcg-serum-positive-thp-select", p, "order-select", THP)
# 17 pregnancy Condition entered-in-error (no clinicalStatus, as FHIR con-5 requires)
p = first_line("rev5-17", birth="1992-04-10")
p.c("Z33.1", "Pregnant state, incidental", "2026-05-20", ver="entered-in-error", clinical=None)
write("17-pregnancy-entered-in-error-thp-sign-neg", p, "order-sign", THP)

# 18-20 letrozole / exemestane after induction: age 62; 52 documented post; 52 unknown
p = hp_maintenance("rev5-18", hr_pos=True, birth="1964-02-11"); p.lvef(61, "2026-05-05")
write("18-letrozole-age-62-sign-neg", p, "order-sign", ("letrozole",))
p = hp_maintenance("rev5-19", hr_pos=True, birth="1974-02-11"); p.lvef(61, "2026-05-05")
p.meno.append(p.o("161712005", "Menopause, function", "2026-04-20", valueCodeableConcept={"coding": [{"system": SCT, "code": "307429007", "display": "Postmenopausal state"}], "text": "Postmenopausal"}))
p.meno[-1]["code"] = {"coding": [{"system": SCT, "code": "161712005", "display": "Menopause, function"}], "text": "Menopausal status"}
write("19-letrozole-52-documented-post-sign-neg", p, "order-sign", ("letrozole",))
p = hp_maintenance("rev5-20", hr_pos=True, birth="1974-02-11"); p.lvef(61, "2026-05-05")
write("20-exemestane-scd-52-unknown-sign", p, "order-sign", ("exemestane-scd",))


# 21-24 metastatic disease only in staging text; early-stage twins; refuted metastasis
def staged(pid, stage_text, code="C50.911"):
    p = P(pid)
    p.her2pos(); p.receptors(0, False)
    p.primary(onset="2026-05-05", code=code, stage=[{"summary": {"text": stage_text}}])
    p.ecog(0); p.lvef(63); p.anc(4.0, "10*3/uL", "10*3/uL"); p.liver()
    return p


write("21-stage-iv-text-only-th-select", staged("rev5-21", "Stage IV"), "order-select", ("docetaxel", "trastuzumab"))
write("22-stage-iib-text-th-select-neg", staged("rev5-22", "Stage IIB"), "order-select", ("docetaxel", "trastuzumab"))
write("23-stage-ct2n1m1-text-thp-select", staged("rev5-23", "cT2 N1 M1", code="C50.912"), "order-select", THP)
p = staged("rev5-24", "Stage IIA")
p.c("C78.7", "Secondary malignant neoplasm of liver", "2026-05-08", ver="refuted", clinical="inactive")
p.obs.append(p.o("21907-1", "Distant metastases.clinical [Class] Cancer", "2026-05-12", valueCodeableConcept={"text": "cM0"}))
write("24-refuted-liver-met-cm0-th-select-neg", p, "order-select", ("docetaxel", "trastuzumab"))

# 25 HER2 valueString "IHC 3+"; metastatic only from a pM1 TNM Observation
p = P("rev5-25")
p.ihc(valueString="IHC 3+"); p.receptors(0, False); p.primary(onset="2026-05-05")
p.obs.append(p.o("21901-4", "Distant metastases.pathology [Class] Cancer", "2026-05-12", valueCodeableConcept={"text": "pM1"}))
p.ecog(0); p.lvef(63); p.anc(4.0, "10*3/uL", "10*3/uL"); p.liver()
write("25-her2-valuestring-3plus-pm1-thp-select", p, "order-select", THP)


# 26 / 27 HR+ after ET + CDK4/6 in MBC, T-DXd: ultralow text vs null text
def after_et(pid, ihc_text):
    p = P(pid)
    p.ihc(valueCodeableConcept={"text": ihc_text}); p.receptors(95, True)
    p.mbc("2024-06-01", "bone-sct")
    p.stmt("letrozole", "2024-06-15", "2026-04-01"); p.stmt("palbociclib", "2024-06-15", "2026-04-01"); p.status(True, "2026-04-01")
    p.ecog(1); p.lvef(60); p.anc(3.0, "10*3/uL", "10*3/uL"); p.liver()
    return p


write("26-ultralow-text-tdxd-after-et-sign",
      after_et("rev5-26", "HER2 IHC 0, ultralow (faint incomplete membrane staining in \u226410% of cells)"), "order-sign", ("tdxd",))
write("27-her2-null-text-tdxd-after-et-select",
      after_et("rev5-27", "HER2 IHC 0 (null): no membrane staining observed"), "order-select", ("tdxd",))

# 28 / 29 IHC 2+ with ISH numbers only: group 1 (quantities) vs group 2 (strings)
p = first_line("rev5-28"); p.her2 = []
p.ihc(valueCodeableConcept={"coding": [{"display": "2+ (equivocal)"}]})
p.ratio(valueQuantity={"value": 2.2, "unit": "{ratio}", "system": UCUM, "code": "{ratio}"})
p.copies(valueQuantity={"value": 4.0, "unit": "{copies}/{cell}", "system": UCUM, "code": "{copies}/{cell}"})
write("28-ish-group1-quantity-thp-select", p, "order-select", THP)
p = first_line("rev5-29"); p.her2 = []
p.ihc(valueString="2+"); p.ratio(valueString="2.2"); p.copies(valueString="3.9")
write("29-ish-group2-strings-thp-select", p, "order-select", THP)

# 30 maintenance decision open: ATC-coded period-only docetaxel statement and HP administrations
p = P("rev5-30")
p.her2pos(); p.receptors(0, False); p.mbc("2025-11-15", "liver")
p.stmt("docetaxel-atc", "2025-12-01", "2026-04-10")
p.admin("trastuzumab-atc", q21("2025-12-01", 9)); p.admin("pertuzumab-atc-old", q21("2025-12-01", 9))
p.status(False, "2026-05-12"); p.ecog(0); p.lvef(61, "2026-05-01"); p.anc(3.5, "10*3/uL", "10*3/uL"); p.liver()
write("30-maintenance-pv-atc-coded-mas", p, "patient-view")
print("written", len(os.listdir(OUT)))
