"""The second independent reviewer's matcher (issue 20), kept as written; ``evaluate`` added.

A card matches a criterion when its indicator is one of those named, its summary or detail
holds one of the phrases (``word*`` = word prefix), and its suggestions add / remove the drugs
named. Drug names are canonicalised so brands and biosimilars count as their ingredient.
"""
import json
import re
def canon(text):
    t = (text or "").lower()
    if "phesgo" in t or "hyaluronidase" in t: return {"phesgo"}
    out = set()
    for key, names in {"trastuzumab deruxtecan": ["deruxtecan", "enhertu", "t-dxd"], "trastuzumab emtansine": ["emtansine", "kadcyla", "t-dm1"]}.items():
        if any(n in t for n in names): out.add(key)
    if not out and ("trastuzumab" in t or "herceptin" in t): out.add("trastuzumab")
    for n in ["pertuzumab", "docetaxel", "paclitaxel", "tucatinib", "capecitabine", "lapatinib", "neratinib", "loperamide", "letrozole",
              "anastrozole", "exemestane", "goserelin", "leuprolide", "tamoxifen", "fulvestrant", "palbociclib", "ribociclib", "abemaciclib", "vinorelbine"]:
        if n in t: out.add(n)
    return out
def concept_text(res):
    c = (res or {}).get("medicationCodeableConcept") or {}
    return " ".join([c.get("text") or ""] + [x.get("display") or "" for x in c.get("coding", [])])
def card_drugs(card, kind, drafts):
    s = set()
    for sug in card.get("suggestions") or []:
        for a in sug.get("actions") or []:
            if a.get("type") != kind: continue
            res = a.get("resource") or {}
            txt = concept_text(res)
            if not txt and kind == "delete":
                rid = (a.get("resourceId") or res.get("id") or "").split("/")[-1]
                txt = drafts.get(rid, "")
            s |= canon(txt)
    return s
def phrase_hit(text, ph):
    if ph.endswith("*"): return re.search(r"(?<![a-z0-9])" + re.escape(ph[:-1].lower()), text) is not None
    return ph.lower() in text
def matches(card, crit, drafts):
    ind = crit.get("indicator")
    if ind:
        if isinstance(ind, str): ind = [ind]
        if card.get("indicator") not in ind: return False
    text = ((card.get("summary") or "") + " \n " + (card.get("detail") or "")).lower()
    if crit.get("any_of") and not any(phrase_hit(text, p) for p in crit["any_of"]): return False
    for kind, key in (("create", "suggests_add"), ("delete", "suggests_remove")):
        if crit.get(key):
            got = card_drugs(card, kind, drafts)
            if not all(canon(x) <= got or x.lower() in got for x in crit[key]): return False
    return True
def drafts_of(body):
    m = {}
    for k in ("medicationRequests",):
        for e in ((body.get("prefetch") or {}).get(k) or {}).get("entry", []): m[e["resource"]["id"]] = concept_text(e["resource"])
    for e in ((body["context"].get("draftOrders") or {}).get("entry") or []): m[e["resource"]["id"]] = concept_text(e["resource"])
    return m


def evaluate(case, resp, body):
    """The reviewer's verdict on one case: a list of problems, empty when it passes."""
    drafts = drafts_of(body)
    cards = resp.get("cards", [])
    fails = []
    if case.get("silent") and cards:
        fails.append(f"expected silent, got {len(cards)} card(s): {[k.get('summary') for k in cards]}")
    for m in case.get("must", []):
        if not any(matches(k, m, drafts) for k in cards):
            fails.append(f"missing: {m}; cards: {[k.get('summary') for k in cards]}")
    for m in case.get("must_not", []):
        hit = [k.get("summary") for k in cards if matches(k, m, drafts)]
        if hit:
            fails.append(f"forbidden {m} matched: {hit}")
    return fails
