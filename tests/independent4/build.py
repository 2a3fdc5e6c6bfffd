"""Builds the synthetic CDS Hooks requests (independent reviewer 4). Dates anchored at 2026-06-01."""
import json, os, copy
OUT = os.path.join(os.path.dirname(__file__), "cases")
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LN = "http://loinc.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SVC = {"patient-view": "her2-mbc-patient-view", "order-select": "her2-mbc-order-select", "order-sign": "her2-mbc-order-sign"}
DRUG = {  # RxNorm ingredient codes as EHRs send them (IN), text as the order catalogue shows
 "trastuzumab": ("224905", "trastuzumab", "trastuzumab 6 mg/kg IV every 21 days"),
 "herceptin-text": (None, None, "Herceptin 440 mg IV q3w"),
 "pertuzumab": ("1298944", "pertuzumab", "pertuzumab 420 mg IV every 21 days"),
 "phesgo": ("2382605", "Phesgo", "PHESGO (pertuzumab/trastuzumab/hyaluronidase-zzxf) 600/600 mg SC q3w"),
 "docetaxel": ("72962", "docetaxel", "docetaxel 75 mg/m2 IV every 21 days"),
 "paclitaxel": ("56946", "paclitaxel", "paclitaxel 80 mg/m2 IV weekly"),
 "vinorelbine": ("39541", "vinorelbine", "vinorelbine 25 mg/m2 IV weekly"),
 "eribulin": ("1045453", "eribulin", "eribulin mesylate 1.4 mg/m2 IV days 1 and 8"),
 "capecitabine-scd": ("200328", "capecitabine 500 MG Oral Tablet", "capecitabine 500 mg tablet, 1000 mg/m2 BID d1-14"),
 "capecitabine": ("194000", "capecitabine", "capecitabine 1000 mg/m2 PO BID days 1-14"),
 "tucatinib": ("2361285", "tucatinib", "tucatinib 300 mg PO BID"),
 "warfarin-scd": ("855332", "warfarin sodium 5 MG Oral Tablet", "warfarin 5 mg PO daily"),
 "apixaban-scd": ("1364445", "apixaban 5 MG Oral Tablet", "apixaban 5 mg PO BID"),
 "doxorubicin": ("3639", "doxorubicin", "doxorubicin 60 mg/m2 IV every 21 days"),
 "cyclophosphamide": ("3002", "cyclophosphamide", "cyclophosphamide 600 mg/m2 IV every 21 days"),
 "tdxd": ("2267582", "fam-trastuzumab deruxtecan", "fam-trastuzumab deruxtecan-nxki (Enhertu) 5.4 mg/kg IV q3w"),
 "tdm1": ("1371041", "ado-trastuzumab emtansine", "ado-trastuzumab emtansine 3.6 mg/kg IV q3w"),
 "lapatinib": ("480167", "lapatinib", "lapatinib 1000 mg PO daily"),
 "letrozole": ("72965", "letrozole", "letrozole 2.5 mg PO daily"),
 "anastrozole": ("84857", "anastrozole", "anastrozole 1 mg PO daily"),
 "palbociclib": ("1601374", "palbociclib", "palbociclib 125 mg PO d1-21"),
}
def cc(key):
    code, disp, text = DRUG[key]
    c = {"text": text}
    if code: c["coding"] = [{"system": RX, "code": code, "display": disp}]
    return c
def ref(pid): return {"reference": f"Patient/{pid}"}
def bundle(res): return {"resourceType": "Bundle", "type": "searchset", "total": len(res), "entry": [{"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r} for r in res]}

class P:
    def __init__(s, pid, birth="1958-03-02", sex="female"):
        s.pid = pid; s.n = 0
        s.patient = {"resourceType": "Patient", "id": pid, "gender": sex, "birthDate": birth, "name": [{"family": "Synthetic", "given": [pid]}]}
        s.her2 = []; s.hr = []; s.obs = []; s.cond = []; s.ms = []; s.mr = []; s.ma = []; s.meno = []; s.proc = []
    def nid(s, p): s.n += 1; return f"{s.pid}-{p}{s.n}"
    def o(s, code, disp, date, **val):
        r = {"resourceType": "Observation", "id": s.nid("obs"), "status": "final", "code": {"coding": [{"system": LN, "code": code, "display": disp}], "text": disp}, "subject": ref(s.pid), "effectiveDateTime": date}
        r.update(val); return r
    def her2_ihc(s, score, date="2025-09-10", interp=None, text=None):
        r = s.o("85319-2", "HER2 [Presence] in Breast cancer specimen by Immune stain", date, valueCodeableConcept={"text": text or score})
        if interp: r["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": interp}]}]
        s.her2.append(r); return r
    def her2_ish(s, pos, date="2025-09-10"):
        a = ("LA6576-8", "Positive") if pos else ("LA6577-6", "Negative")
        s.her2.append(s.o("85318-4", "HER2 [Presence] in Breast cancer specimen by FISH", date, valueCodeableConcept={"coding": [{"system": LN, "code": a[0], "display": a[1]}], "text": "Amplified" if pos else "Not amplified"}))
    def er(s, pos, date="2025-09-10", pct=None):
        a = ("LA6576-8", "Positive") if pos else ("LA6577-6", "Negative")
        s.hr.append(s.o("85337-4", "Estrogen receptor Ag [Presence] in Breast cancer specimen by Immune stain", date, valueCodeableConcept={"coding": [{"system": LN, "code": a[0], "display": a[1]}]}))
        if pct is not None:
            s.hr.append(s.o("85336-6", "Estrogen receptor Ag [Interpretation] in Breast cancer specimen by Immune stain - % cells", date, valueQuantity={"value": pct, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}))
    def pr(s, pos, date="2025-09-10"):
        a = ("LA6576-8", "Positive") if pos else ("LA6577-6", "Negative")
        s.hr.append(s.o("85339-0", "Progesterone receptor Ag [Presence] in Breast cancer specimen by Immune stain", date, valueCodeableConcept={"coding": [{"system": LN, "code": a[0], "display": a[1]}]}))
    def ecog(s, g, date="2026-05-20"):
        la = {0: "LA9622-7", 1: "LA9623-5", 2: "LA9624-3"}[g]
        s.obs.append(s.o("89247-1", "ECOG Performance Status score", date, valueCodeableConcept={"coding": [{"system": LN, "code": la, "display": str(g)}], "text": str(g)}))
    def lvef(s, v, date="2026-04-20"):
        s.obs.append(s.o("10230-1", "Left ventricular Ejection fraction", date, valueQuantity={"value": v, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}))
    def anc(s, v, date="2026-05-31"):
        s.obs.append(s.o("751-8", "Neutrophils [#/volume] in Blood by Automated count", date, valueQuantity={"value": v, "unit": "10*3/uL", "system": "http://unitsofmeasure.org", "code": "10*3/uL"}, referenceRange=[{"low": {"value": 1.8, "unit": "10*3/uL"}, "high": {"value": 7.7, "unit": "10*3/uL"}}]))
    def lab(s, code, disp, v, unit, high, date="2026-05-31"):
        s.obs.append(s.o(code, disp, date, valueQuantity={"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}, referenceRange=[{"high": {"value": high, "unit": unit}}]))
    def liver(s, alt=25, ast=24, alp=90, bili=0.7, date="2026-05-31"):
        s.lab("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", alt, "U/L", 40, date)
        s.lab("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", ast, "U/L", 40, date)
        s.lab("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", alp, "U/L", 120, date)
        s.lab("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", bili, "mg/dL", 1.2, date)
    def status(s, worse, date):
        a = ("271299001", "Patient's condition worsened") if worse else ("359746009", "Patient's condition stable")
        s.obs.append(s.o("97509-4", "Cancer disease status", date, valueCodeableConcept={"coding": [{"system": SCT, "code": a[0], "display": a[1]}]}))
    def c(s, code, disp, onset, system=ICD):
        s.cond.append({"resourceType": "Condition", "id": s.nid("cond"), "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
            "code": {"coding": [{"system": system, "code": code, "display": disp}], "text": disp}, "subject": ref(s.pid), "onsetDateTime": onset})
    def mbc(s, onset="2025-09-01", sites=("liver",)):
        s.c("C50.911", "Malignant neoplasm of unspecified site of right female breast", "2025-08-20" if onset >= "2025-08-20" else onset)
        m = {"liver": ("C78.7", "Secondary malignant neoplasm of liver and intrahepatic bile duct"), "bone": ("C79.51", "Secondary malignant neoplasm of bone"),
             "lung": ("C78.01", "Secondary malignant neoplasm of right lung"), "nodes": ("C77.3", "Secondary malignant neoplasm of axilla and upper limb lymph nodes")}
        for x in sites: s.c(m[x][0], m[x][1], onset)
    def stmt(s, key, start, end=None, status="active", period_only=False):
        r = {"resourceType": "MedicationStatement", "id": s.nid("ms"), "status": status, "medicationCodeableConcept": cc(key), "subject": ref(s.pid)}
        if period_only or end: r["effectivePeriod"] = {"start": start, **({"end": end} if end else {})}
        else: r["effectiveDateTime"] = start
        s.ms.append(r); return r
    def req(s, key, authored, status="active"):
        r = {"resourceType": "MedicationRequest", "id": s.nid("mr"), "status": status, "intent": "order", "medicationCodeableConcept": cc(key), "subject": ref(s.pid), "authoredOn": authored}
        s.mr.append(r); return r
    def admin(s, key, dates):
        for d in dates:
            s.ma.append({"resourceType": "MedicationAdministration", "id": s.nid("ma"), "status": "completed", "medicationCodeableConcept": cc(key), "subject": ref(s.pid), "effectiveDateTime": d + "T10:00:00Z"})
    def prefetch(s):
        return {"patient": s.patient, "her2": bundle(s.her2), "hormoneReceptors": bundle(s.hr), "otherObservations": bundle(s.obs), "menopausalStatus": bundle(s.meno),
                "procedures": bundle(s.proc), "conditions": bundle(s.cond), "medicationStatements": bundle(s.ms), "medicationRequests": bundle(s.mr), "medicationAdministrations": bundle(s.ma)}

def draft(p, key, n=1):
    return {"resourceType": "MedicationRequest", "id": f"{p.pid}-draft{n}", "status": "draft", "intent": "order", "medicationCodeableConcept": cc(key), "subject": ref(p.pid), "authoredOn": "2026-06-01"}

def write(name, p, hook, drafts=(), extra_prefetch=None):
    ctx = {"userId": "Practitioner/rev4-onc", "patientId": p.pid}
    if hook != "patient-view":
        ctx["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]}
        ctx["encounterId"] = f"enc-{p.pid}"
        if hook == "order-select": ctx["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    pf = p.prefetch()
    if extra_prefetch: extra_prefetch(pf)
    body = {"hook": hook, "hookInstance": f"rev4-{name}-{hook}", "context": ctx, "prefetch": pf}
    with open(os.path.join(OUT, name + ".json"), "w") as f: json.dump(body, f, indent=1)

def her2pos(p, hr=False, **kw):
    p.her2_ihc("3+", interp="POS"); p.er(hr, pct=(80 if hr else 0)); p.pr(hr)

def q21(start, n):
    import datetime
    d = datetime.date.fromisoformat(start)
    return [(d + datetime.timedelta(days=21 * i)).isoformat() for i in range(n)]

# ---- 2nd-line-or-later helper: THP first line, progressed, then given drug
def after_thp(p, prog="2026-05-10"):
    p.mbc("2024-10-01", ("liver", "bone"))
    for k in ("trastuzumab", "pertuzumab"): p.stmt(k, "2024-10-15", "2026-05-10", status="completed")
    p.stmt("docetaxel", "2024-10-15", "2025-02-20", status="completed")
    p.status(True, prog)

# 01 paclitaxel + HP first line, ANC 1.2 at day of dose (paclitaxel USPI 2.x/5.x: do not give if ANC <1500)
p = P("rev4-01"); her2pos(p); p.mbc(); p.ecog(1); p.lvef(62); p.anc(1.2); p.liver()
write("01-paclitaxel-anc-1200", p, "order-select", [draft(p, "paclitaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
# 02 negative: ANC 1.6
p = P("rev4-02"); her2pos(p); p.mbc(); p.ecog(1); p.lvef(62); p.anc(1.6); p.liver()
write("02-paclitaxel-anc-1600-neg", p, "order-select", [draft(p, "paclitaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
# 03 vinorelbine + trastuzumab (HERNATA), 3rd line, ANC 0.8 at order-sign
p = P("rev4-03"); her2pos(p); after_thp(p, "2025-11-01"); p.stmt("tdxd", "2025-11-20", "2026-05-05", status="completed"); p.status(True, "2026-05-05")
p.ecog(1); p.lvef(58); p.anc(0.8); p.liver()
write("03-vinorelbine-anc-800", p, "order-sign", [draft(p, "vinorelbine", 1), draft(p, "trastuzumab", 2)])
# 04 negative: vinorelbine ANC 1.6 (>=1500 full dose)
p = P("rev4-04"); her2pos(p); after_thp(p, "2025-11-01"); p.stmt("tdxd", "2025-11-20", "2026-05-05", status="completed"); p.status(True, "2026-05-05")
p.ecog(1); p.lvef(58); p.anc(1.6); p.liver()
write("04-vinorelbine-anc-1600-neg", p, "order-sign", [draft(p, "vinorelbine", 1), draft(p, "trastuzumab", 2)])
# 05 eribulin + trastuzumab, later line, ANC 0.9 (Halaven 2.2: do not administer if ANC <1000)
p = P("rev4-05"); her2pos(p); after_thp(p, "2025-06-01"); p.stmt("tdxd", "2025-06-20", "2025-12-01", status="completed")
p.stmt("tucatinib", "2025-12-15", "2026-05-01", status="completed"); p.stmt("capecitabine", "2025-12-15", "2026-05-01", status="completed"); p.status(True, "2026-05-01")
p.ecog(1); p.lvef(60); p.anc(0.9); p.liver()
write("05-eribulin-anc-900", p, "order-select", [draft(p, "eribulin", 1), draft(p, "trastuzumab", 2)])
# 06 negative: eribulin ANC 1.1
p = P("rev4-06"); her2pos(p); after_thp(p, "2025-06-01"); p.stmt("tdxd", "2025-06-20", "2025-12-01", status="completed")
p.stmt("tucatinib", "2025-12-15", "2026-05-01", status="completed"); p.stmt("capecitabine", "2025-12-15", "2026-05-01", status="completed"); p.status(True, "2026-05-01")
p.ecog(1); p.lvef(60); p.anc(1.1); p.liver()
write("06-eribulin-anc-1100-neg", p, "order-select", [draft(p, "eribulin", 1), draft(p, "trastuzumab", 2)])
# 07 capecitabine (SCD code) + tucatinib + trastuzumab after T-DXd, on warfarin recorded as MedicationStatement with effectivePeriod only
p = P("rev4-07"); her2pos(p); after_thp(p, "2025-06-01"); p.stmt("tdxd", "2025-06-20", "2026-05-05", status="completed"); p.status(True, "2026-05-05")
p.ecog(1); p.lvef(60); p.anc(3.1); p.liver()
w = p.stmt("warfarin-scd", "2025-03-01", period_only=True); w["status"] = "active"
write("07-capecitabine-warfarin", p, "order-select", [draft(p, "capecitabine-scd", 1), draft(p, "tucatinib", 2), draft(p, "trastuzumab", 3)])
# 08 negative: same on apixaban (not a vitamin K antagonist)
p = P("rev4-08"); her2pos(p); after_thp(p, "2025-06-01"); p.stmt("tdxd", "2025-06-20", "2026-05-05", status="completed"); p.status(True, "2026-05-05")
p.ecog(1); p.lvef(60); p.anc(3.1); p.liver()
p.stmt("apixaban-scd", "2025-03-01", period_only=True)
write("08-capecitabine-apixaban-neg", p, "order-select", [draft(p, "capecitabine-scd", 1), draft(p, "tucatinib", 2), draft(p, "trastuzumab", 3)])
# 09 docetaxel THP first line, bilirubin 1.8 (> ULN 1.2): docetaxel boxed warning / 5.2: should not be given
p = P("rev4-09"); her2pos(p); p.mbc("2026-05-01", ("liver",)); p.ecog(1); p.lvef(64); p.anc(4.2); p.liver(alt=38, ast=36, alp=110, bili=1.8)
write("09-docetaxel-bilirubin-high", p, "order-sign", [draft(p, "docetaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
# 10 negative: ALT 80 (2x ULN) with normal ALP and bilirubin (label combination not met)
p = P("rev4-10"); her2pos(p); p.mbc("2026-05-01", ("liver",)); p.ecog(1); p.lvef(64); p.anc(4.2); p.liver(alt=80, ast=70, alp=110, bili=0.8)
write("10-docetaxel-alt-2x-alp-normal-neg", p, "order-sign", [draft(p, "docetaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
# 11 positive: ALT 80 (>1.5x ULN) with ALP 330 (>2.5x ULN 120), bilirubin normal
p = P("rev4-11"); her2pos(p); p.mbc("2026-05-01", ("liver",)); p.ecog(1); p.lvef(64); p.anc(4.2); p.liver(alt=80, ast=70, alp=330, bili=0.9)
write("11-docetaxel-alt-alp-high", p, "order-sign", [draft(p, "docetaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
# 12 negative: docetaxel ANC exactly 1.5 (label: do not give if <1500)
p = P("rev4-12"); her2pos(p); p.mbc("2026-05-01", ("liver",)); p.ecog(1); p.lvef(64); p.anc(1.5); p.liver()
write("12-docetaxel-anc-1500-neg", p, "order-sign", [draft(p, "docetaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
# 13 trastuzumab drafted together with doxorubicin + cyclophosphamide (concurrent anthracycline)
p = P("rev4-13"); her2pos(p); p.mbc("2026-05-01", ("bone", "lung")); p.ecog(0); p.lvef(60); p.anc(4.0); p.liver()
write("13-trastuzumab-with-doxorubicin", p, "order-select", [draft(p, "doxorubicin", 1), draft(p, "cyclophosphamide", 2), draft(p, "trastuzumab", 3)])
# 14 current trastuzumab charted only as MedicationAdministration every 21 days; doxorubicin drafted
p = P("rev4-14"); her2pos(p); p.mbc("2025-09-01", ("lung",)); p.ecog(1); p.lvef(57); p.anc(3.0); p.liver()
p.stmt("docetaxel", "2025-09-20", "2026-01-10", status="completed")
p.admin("trastuzumab", q21("2025-09-20", 12)); p.admin("pertuzumab", q21("2025-09-20", 12))
write("14-ma-trastuzumab-then-doxorubicin", p, "order-sign", [draft(p, "doxorubicin", 1)])
# 15 duplicate HER2 antibodies: active IV Herceptin (brand in text only, no coding) + Phesgo drafted
p = P("rev4-15"); her2pos(p); p.mbc("2025-12-01", ("liver",)); p.ecog(1); p.lvef(60); p.anc(3.0); p.liver()
p.stmt("docetaxel", "2025-12-10", "2026-03-20", status="completed")
p.req("herceptin-text", "2026-05-11"); p.req("pertuzumab", "2026-05-11")
write("15-iv-herceptin-plus-phesgo", p, "order-sign", [draft(p, "phesgo", 1)])
# 16 T-DXd ordered in HER2-zero (IHC 0, no membrane staining, ISH not amplified), HR+ after ET+CDK4/6
p = P("rev4-16"); p.her2_ihc("0", interp="NEG", text="0 (no staining observed)"); p.her2_ish(False); p.er(True, pct=95); p.pr(True)
p.mbc("2024-06-01", ("bone", "liver")); p.stmt("letrozole", "2024-06-15", "2026-04-01", status="completed"); p.stmt("palbociclib", "2024-06-15", "2026-04-01", status="completed"); p.status(True, "2026-04-01")
p.ecog(1); p.lvef(60); p.anc(3.0); p.liver()
write("16-tdxd-her2-zero", p, "order-select", [draft(p, "tdxd", 1)])
# 17 lapatinib + trastuzumab, HR-negative, after THP, T-DXd, tucatinib-capecitabine (EGF104900; NCCN other regimen)
p = P("rev4-17"); her2pos(p, hr=False); after_thp(p, "2025-04-01"); p.stmt("tdxd", "2025-04-20", "2025-11-01", status="completed")
p.stmt("tucatinib", "2025-11-20", "2026-05-01", status="completed"); p.stmt("capecitabine", "2025-11-20", "2026-05-01", status="completed"); p.status(True, "2026-05-01")
p.ecog(1); p.lvef(58); p.anc(3.0); p.liver()
write("17-lapatinib-trastuzumab-hr-neg", p, "order-select", [draft(p, "lapatinib", 1), draft(p, "trastuzumab", 2)])
# 18 de novo HR+ postmenopausal (age 66) starting THP induction
p = P("rev4-18", birth="1960-02-11"); her2pos(p, hr=True); p.mbc("2026-05-10", ("bone", "liver")); p.ecog(0); p.lvef(63); p.anc(4.5); p.liver()
write("18-denovo-hrpos-thp-induction", p, "order-select", [draft(p, "docetaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
# 19 same kind of patient after 6 cycles (MedicationAdministration), now HP only, patient-view: endocrine maintenance
p = P("rev4-19", birth="1960-02-11"); her2pos(p, hr=True); p.mbc("2025-10-01", ("bone", "liver")); p.ecog(0); p.lvef(61, "2026-05-05"); p.anc(3.5); p.liver()
p.admin("docetaxel", q21("2025-10-15", 6)); p.admin("trastuzumab", q21("2025-10-15", 11)); p.admin("pertuzumab", q21("2025-10-15", 11)); p.status(False, "2026-05-02")
write("19-hrpos-after-induction-maintenance-pv", p, "patient-view")
# 20 progression after THP (first line) -> patient-view (run twice over HTTP for repeats)
p = P("rev4-20"); her2pos(p); after_thp(p, "2026-05-20"); p.ecog(1); p.lvef(60); p.anc(3.2); p.liver()
write("20-progression-pv", p, "patient-view")
# 21 capecitabine+warfarin order-select then order-sign of the same draft (HTTP repeats); same data as 07 with own id
p = P("rev4-21"); her2pos(p); after_thp(p, "2025-06-01"); p.stmt("tdxd", "2025-06-20", "2026-05-05", status="completed"); p.status(True, "2026-05-05")
p.ecog(1); p.lvef(60); p.anc(3.1); p.liver(); p.stmt("warfarin-scd", "2025-03-01", period_only=True)
ds = [draft(p, "capecitabine", 1), draft(p, "tucatinib", 2), draft(p, "trastuzumab", 3)]
write("21a-select-then-sign-select", p, "order-select", ds); write("21b-select-then-sign-sign", p, "order-sign", ds)
# 22 data quality: R5-shaped MedicationStatement + malformed Observation among good data; paclitaxel with ANC 0.9
p = P("rev4-22"); her2pos(p); p.mbc(); p.ecog(1); p.lvef(62); p.anc(0.9); p.liver()
def dq(pf):
    pf["medicationStatements"]["entry"].append({"resource": {"resourceType": "MedicationStatement", "id": "rev4-22-r5", "status": "recorded",
        "medication": {"concept": {"coding": [{"system": RX, "code": "72965", "display": "letrozole"}]}}, "subject": ref("rev4-22"), "effectiveDateTime": "2024-01-01"}})
    pf["otherObservations"]["entry"].append({"resource": {"resourceType": "Observation", "id": "rev4-22-bad", "status": "final",
        "code": {"coding": [{"system": LN, "code": "10230-1"}]}, "subject": ref("rev4-22"), "effectiveDateTime": "2026-05-30", "valueQuantity": [{"value": 40}]}})
write("22-dq-r5-and-malformed-paclitaxel-anc-900", p, "order-select", [draft(p, "paclitaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)], dq)
# 23 data quality: newest HER2 Observation malformed (value as number list, no status), older good IHC 3+; THP drafted
p = P("rev4-23"); her2pos(p); p.mbc("2026-05-01", ("liver",)); p.ecog(1); p.lvef(62); p.anc(4.0); p.liver()
def dq2(pf):
    pf["her2"]["entry"].append({"resource": {"resourceType": "Observation", "id": "rev4-23-bad-her2", "code": {"coding": [{"system": LN, "code": "85319-2"}]},
        "subject": ref("rev4-23"), "effectiveDateTime": "2026-05-25", "valueCodeableConcept": 3}})
write("23-dq-malformed-newest-her2-thp", p, "order-select", [draft(p, "docetaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)], dq2)
# 24 negative: eribulin ANC exactly 1.0 (label: <1,000 hold) with platelets not sent; also ANC reported in cells/uL units
p = P("rev4-24"); her2pos(p); after_thp(p, "2025-06-01"); p.stmt("tdxd", "2025-06-20", "2025-12-01", status="completed")
p.stmt("tucatinib", "2025-12-15", "2026-05-01", status="completed"); p.stmt("capecitabine", "2025-12-15", "2026-05-01", status="completed"); p.status(True, "2026-05-01")
p.ecog(1); p.lvef(60); p.liver()
p.obs.append(p.o("751-8", "Neutrophils [#/volume] in Blood by Automated count", "2026-05-31", valueQuantity={"value": 1000, "unit": "/uL", "system": "http://unitsofmeasure.org", "code": "/uL"}))
write("24-eribulin-anc-1000-cells-per-uL-neg", p, "order-select", [draft(p, "eribulin", 1), draft(p, "trastuzumab", 2)])
# 25 paclitaxel ANC 1.2 reported as 1200 cells/uL (unit variant) at order-sign
p = P("rev4-25"); her2pos(p); p.mbc(); p.ecog(1); p.lvef(62); p.liver()
p.obs.append(p.o("751-8", "Neutrophils [#/volume] in Blood by Automated count", "2026-05-31", valueQuantity={"value": 1200, "unit": "/uL", "system": "http://unitsofmeasure.org", "code": "/uL"}))
write("25-paclitaxel-anc-1200-per-uL-sign", p, "order-sign", [draft(p, "paclitaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
print("written", len(os.listdir(OUT)))

# ---- batch 2 (written 2026-12-04 ~02:45 UTC after batch 1 ran; expectations written before their first run)
# 26 brand names in text only: "Xeloda" draft (no coding) + "Coumadin" MedicationStatement (no coding, effectivePeriod only)
DRUG["xeloda-text"] = (None, None, "Xeloda 500 mg tablet - 2000 mg PO BID days 1-14 q21d")
DRUG["coumadin-text"] = (None, None, "Coumadin 5 mg tablet daily")
p = P("rev4-26"); her2pos(p); after_thp(p, "2025-06-01"); p.stmt("tdxd", "2025-06-20", "2026-05-05", status="completed"); p.status(True, "2026-05-05")
p.ecog(1); p.lvef(60); p.anc(3.1); p.liver(); p.stmt("coumadin-text", "2024-11-01", period_only=True)
write("26-xeloda-coumadin-text-only", p, "order-select", [draft(p, "xeloda-text", 1), draft(p, "tucatinib", 2), draft(p, "trastuzumab", 3)])
# 27 negative: warfarin stopped 2025-12-01 (MedicationStatement completed, effectivePeriod with end)
p = P("rev4-27"); her2pos(p); after_thp(p, "2025-06-01"); p.stmt("tdxd", "2025-06-20", "2026-05-05", status="completed"); p.status(True, "2026-05-05")
p.ecog(1); p.lvef(60); p.anc(3.1); p.liver(); p.stmt("warfarin-scd", "2025-03-01", "2025-12-01", status="completed")
write("27-capecitabine-warfarin-stopped-neg", p, "order-select", [draft(p, "capecitabine", 1), draft(p, "tucatinib", 2), draft(p, "trastuzumab", 3)])
# 28 negative: docetaxel with bilirubin exactly at ULN (1.2 / ULN 1.2)
p = P("rev4-28"); her2pos(p); p.mbc("2026-05-01", ("liver",)); p.ecog(1); p.lvef(64); p.anc(4.2); p.liver(bili=1.2)
write("28-docetaxel-bilirubin-at-uln-neg", p, "order-sign", [draft(p, "docetaxel", 1), draft(p, "trastuzumab", 2), draft(p, "pertuzumab", 3)])
# 29 vinorelbine with ANC 1.2 (1,000-1,499: give 50% of the dose)
p = P("rev4-29"); her2pos(p); after_thp(p, "2025-11-01"); p.stmt("tdxd", "2025-11-20", "2026-05-05", status="completed"); p.status(True, "2026-05-05")
p.ecog(1); p.lvef(58); p.anc(1.2); p.liver()
write("29-vinorelbine-anc-1200-half-dose", p, "order-select", [draft(p, "vinorelbine", 1), draft(p, "trastuzumab", 2)])
