#!/usr/bin/env python
"""Run the independent-review cases through her2-cds and score them.

    PATH=/work/main/.venv/bin:$PATH /work/main/.venv/bin/python run.py [CHECKOUT] [--only SUBSTR] [--show]

CHECKOUT (default /work/review-snapshot) is put on PYTHONPATH so that a fixed snapshot of the
service is tested.  Each case is run with
    her2-cds invoke-file --json --today DATE cases/NN-name.json
and its cards are checked against expected.yaml (see the `matching` block there).
Raw responses are written to results/NN-name.json for review.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent

# canonical drug names <- words that identify them in order text / codings -------------------
# order matters: combination / conjugate products first, so that "trastuzumab deruxtecan"
# is not also counted as plain trastuzumab.
CANON = [
    ("phesgo", [r"pertuzumab[ ,/-]+(and )?trastuzumab[ ,/-]+(and )?hyaluronidase(-zzxf)?", r"phesgo", r"hyaluronidase-zzxf", r"\bL01FY01\b"]),
    ("trastuzumab deruxtecan", [r"(fam-)?trastuzumab[ -]deruxtecan(-nxki)?", r"deruxtecan", r"enhertu", r"\bt-?dxd\b", r"\bL01FD04\b", r"\b2267576\b", r"\b2267581\b"]),
    ("trastuzumab emtansine", [r"(ado-)?trastuzumab[ -]emtansine", r"emtansine", r"kadcyla", r"\bt-?dm-?1\b", r"\bL01FD03\b", r"\b1371041\b", r"\b165808[47]\b"]),
    ("margetuximab", [r"margetuximab", r"margenza"]),
    ("trastuzumab", [r"trastuzumab", r"herceptin", r"ogivri", r"herzuma", r"ontruzant", r"trazimera", r"kanjinti", r"hercessi",
                     r"\bL01FD01\b", r"\b224905\b"]),
    ("pertuzumab", [r"pertuzumab", r"perjeta", r"\bL01FD02\b", r"\b1298944\b"]),
    ("docetaxel", [r"docetaxel", r"taxotere", r"\b72962\b"]),
    ("paclitaxel", [r"paclitaxel", r"taxol", r"abraxane", r"\b56946\b"]),
    ("capecitabine", [r"capecitabine", r"xeloda", r"\b194000\b"]),
    ("tucatinib", [r"tucatinib", r"tukysa", r"\b2361290\b"]),
    ("lapatinib", [r"lapatinib", r"tykerb", r"\b480167\b", r"\b672149\b"]),
    ("neratinib", [r"neratinib", r"nerlynx", r"\b1940648\b"]),
    ("loperamide", [r"loperamide", r"imodium"]),
    ("letrozole", [r"letrozole", r"femara", r"\b72965\b"]),
    ("anastrozole", [r"anastrozole", r"arimidex", r"\b84857\b"]),
    ("exemestane", [r"exemestane", r"aromasin"]),
    ("tamoxifen", [r"tamoxifen", r"\b10324\b"]),
    ("fulvestrant", [r"fulvestrant", r"faslodex", r"\b282357\b"]),
    ("goserelin", [r"goserelin", r"zoladex", r"\b50610\b"]),
    ("leuprolide", [r"leuprolide", r"leuprorelin", r"lupron"]),
    ("palbociclib", [r"palbociclib", r"ibrance", r"\b1601374\b"]),
    ("ribociclib", [r"ribociclib", r"kisqali"]),
    ("abemaciclib", [r"abemaciclib", r"verzenio"]),
    ("vinorelbine", [r"vinorelbine", r"navelbine"]),
]
COMBO_EXCLUDES = {"phesgo": {"trastuzumab", "pertuzumab"},
                  "trastuzumab deruxtecan": {"trastuzumab"},
                  "trastuzumab emtansine": {"trastuzumab"}}


def canon_drugs(text: str) -> set[str]:
    text = text or ""
    found: set[str] = set()
    for name, pats in CANON:
        if any(re.search(p, text, re.I) for p in pats):
            found.add(name)
    for combo, excl in COMBO_EXCLUDES.items():
        if combo in found:
            # "pertuzumab, trastuzumab and hyaluronidase" is Phesgo, not two more drugs; but keep a separate
            # trastuzumab only if it is named on its own elsewhere in the text
            stripped = text
            for p in dict(CANON)[combo]:
                stripped = re.sub(p, " ", stripped, flags=re.I)
            stripped = re.sub(r"fam-|ado-|-nxki|hyaluronidase[-\w]*", " ", stripped, flags=re.I)
            for e in excl:
                if not any(re.search(p, stripped, re.I) for p in dict(CANON)[e]):
                    found.discard(e)
    return found


def resource_text(res: dict | None) -> str:
    if not res:
        return ""
    parts = []
    mcc = res.get("medicationCodeableConcept") or {}
    parts.append(mcc.get("text") or "")
    for c in mcc.get("coding", []) or []:
        parts.append(f"{c.get('display') or ''} {c.get('code') or ''}")
    mref = res.get("medicationReference") or {}
    parts.append(mref.get("display") or "")
    for c in res.get("contained", []) or []:
        code = c.get("code") or {}
        parts.append(code.get("text") or "")
        for cd in code.get("coding", []) or []:
            parts.append(f"{cd.get('display') or ''} {cd.get('code') or ''}")
    return " ".join(parts)


def index_orders(req: dict) -> dict[str, dict]:
    """MedicationRequests the card may delete: draft orders and prefetched requests."""
    out = {}
    for e in (req.get("context", {}).get("draftOrders") or {}).get("entry", []) or []:
        r = e.get("resource") or {}
        out[f"{r.get('resourceType')}/{r.get('id')}"] = r
    for key, b in (req.get("prefetch") or {}).items():
        if isinstance(b, dict) and b.get("resourceType") == "Bundle":
            for e in b.get("entry", []) or []:
                r = e.get("resource") or {}
                out.setdefault(f"{r.get('resourceType')}/{r.get('id')}", r)
    return out


def card_actions(card: dict, orders: dict) -> tuple[set[str], set[str]]:
    adds, removes = set(), set()
    for s in card.get("suggestions", []) or []:
        for a in s.get("actions", []) or []:
            t = a.get("type")
            res = a.get("resource")
            txt = resource_text(res)
            if t == "delete" or (t == "update" and res and res.get("status") in ("cancelled", "stopped", "entered-in-error")):
                rid = a.get("resourceId")
                if isinstance(rid, list):
                    rid = rid[0] if rid else None
                if rid and rid in orders:
                    txt += " " + resource_text(orders[rid])
                removes |= canon_drugs(txt or a.get("description", ""))
            elif t == "create":
                adds |= canon_drugs(txt or a.get("description", ""))
    return adds, removes


def phrase_re(p: str) -> re.Pattern:
    if p.endswith("*"):
        return re.compile(r"(?<![A-Za-z0-9])" + re.escape(p[:-1]), re.I)
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(p) + r"(?![A-Za-z0-9])", re.I)


def card_matches(card: dict, cond: dict, orders: dict) -> bool:
    ind = cond.get("indicator")
    if ind is not None:
        allowed = [ind] if isinstance(ind, str) else list(ind)
        if card.get("indicator") not in allowed:
            return False
    if cond.get("any_of"):
        text = f"{card.get('summary', '')}\n{card.get('detail', '')}"
        if not any(phrase_re(p).search(text) for p in cond["any_of"]):
            return False
    adds, removes = card_actions(card, orders)
    if cond.get("suggests_add"):
        if not ({d.lower() for d in cond["suggests_add"]} & adds):
            return False
    if cond.get("suggests_remove"):
        if not ({d.lower() for d in cond["suggests_remove"]} & removes):
            return False
    return True


def describe(cond: dict) -> str:
    bits = []
    if cond.get("indicator"):
        bits.append(f"indicator {cond['indicator'] if isinstance(cond['indicator'], str) else '|'.join(cond['indicator'])}")
    if cond.get("any_of"):
        shown = cond["any_of"][:5]
        bits.append("text ~ " + "/".join(shown) + ("/..." if len(cond["any_of"]) > 5 else ""))
    if cond.get("suggests_add"):
        bits.append("adds " + "|".join(cond["suggests_add"]))
    if cond.get("suggests_remove"):
        bits.append("removes " + "|".join(cond["suggests_remove"]))
    return ", ".join(bits) or "any card"


def run_case(checkout: pathlib.Path, case: dict, data_dir: str) -> tuple[dict | None, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(checkout)
    env["PATH"] = "/work/main/.venv/bin:" + env.get("PATH", "")
    env["HER2CDS_DATA_DIR"] = data_dir
    cmd = ["her2-cds", "invoke-file", "--json", "--today", str(case["today"]), str(HERE / case["file"])]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=data_dir, timeout=300)
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-400:]}"
    try:
        return json.loads(p.stdout), ""
    except json.JSONDecodeError as exc:
        return None, f"bad JSON ({exc}): {p.stdout[:300]}"


def evaluate(case: dict, resp: dict, req: dict) -> list[str]:
    cards = resp.get("cards", []) or []
    orders = index_orders(req)
    problems = []
    if case.get("silent"):
        if cards:
            problems.append(f"expected no card, got {len(cards)}: " + "; ".join(c.get("summary", "") for c in cards))
        return problems
    for cond in case.get("must", []) or []:
        if not any(card_matches(c, cond, orders) for c in cards):
            problems.append(f"missing card [{describe(cond)}]")
    for cond in case.get("must_not", []) or []:
        hits = [c for c in cards if card_matches(c, cond, orders)]
        if hits:
            problems.append(f"unwanted card [{describe(cond)}]: " + "; ".join(f"{h.get('indicator')}: {h.get('summary')}" for h in hits))
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkout", nargs="?", default="/work/review-snapshot")
    ap.add_argument("--only", default=None, help="run only cases whose file contains this text")
    ap.add_argument("--show", action="store_true", help="print every card summary")
    args = ap.parse_args()
    checkout = pathlib.Path(args.checkout).resolve()
    spec = yaml.safe_load((HERE / "expected.yaml").read_text())
    cases = [c for c in spec["cases"] if not args.only or args.only in c["file"]]
    outdir = HERE / "results"
    outdir.mkdir(exist_ok=True)
    passed = 0
    with tempfile.TemporaryDirectory(prefix="her2cds-independent-") as data_dir:
        for case in cases:
            name = pathlib.Path(case["file"]).stem
            req = json.loads((HERE / case["file"]).read_text())
            resp, err = run_case(checkout, case, data_dir)
            if resp is None:
                print(f"FAIL {name}: service error: {err}")
                continue
            (outdir / f"{name}.json").write_text(json.dumps(resp, indent=1) + "\n")
            problems = evaluate(case, resp, req)
            ncards = len(resp.get("cards", []) or [])
            if problems:
                print(f"FAIL {name} ({ncards} cards): " + " | ".join(problems))
            else:
                passed += 1
                print(f"PASS {name} ({ncards} cards)")
            if args.show:
                orders = index_orders(req)
                for cond in case.get("must", []) or []:
                    for c in resp.get("cards", []) or []:
                        if card_matches(c, cond, orders):
                            text = f"{c.get('summary', '')}\n{c.get('detail', '')}"
                            hit = next((p for p in cond.get("any_of", []) if phrase_re(p).search(text)), None)
                            print(f"    must [{describe(cond)}] met by '{c.get('summary')}'" + (f" via '{hit}'" if hit else ""))
                            break
                for c in resp.get("cards", []) or []:
                    adds, removes = card_actions(c, index_orders(req))
                    extra = (f" [+{','.join(sorted(adds))}]" if adds else "") + (f" [-{','.join(sorted(removes))}]" if removes else "")
                    print(f"      {c.get('indicator'):8s} {c.get('summary')}{extra}")
    print(f"\nscore: {passed}/{len(cases)}")
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
