"""The CDS services as data: one JSON file per service, one for the prefetch queries they share.

``fhir_profiles/services/<service-id>.json`` holds what discovery publishes
for a service (hook, title, description) and the prefetch keys it asks for;
``prefetch.json`` holds each key's query as ValueSets, never as codes,
whether the key is *required* (no advice without it: 412 when it cannot be
got), and how the SMART page speaks of it: its ``label`` (what it reads, in
clinical words: "HER2 test results") and whether an empty answer is
``expected`` to be called out (an HER2 MBC record without it is suspect).  So
a key added to the prefetch is named on the page without a Python edit.  This is the shape of AHRQ CDS Connect's CQL Services (one JSON per
hook): a service is described where the knowledge is, and adding a query
key, a ValueSet to a query or a fourth service is an edit of data.

The templates are rendered here, once at load, from the loaded terminology:
the codes a query asks for are exactly the codes the criteria classify.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..errors import KnowledgeError
from .artifact import read_object
from .terminology import Terminology

SERVICES_DIR = "services"
PREFETCH_FILE = "prefetch.json"
HOOKS = ("patient-view", "order-select", "order-sign")
# The query parameters a template may use: what HAPI and the major EHR FHIR APIs support.
PORTABLE_PARAMETERS = frozenset({"patient", "code", "category", "status", "_count"})


@dataclass(frozen=True)
class PrefetchQuery:
    key: str
    resource_type: str
    valuesets: tuple[str, ...]  # empty: the resource type is fetched whole (or read, for Patient)
    param: str | None
    count: int | None
    required: bool
    read: bool  # an instance read (Patient/{{context.patientId}}), not a search
    why: str
    label: str  # what it reads, as the SMART page names it ("HER2 test results")
    expected: bool  # the page calls out an empty answer (a record without it is suspect)


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    prefetch: tuple[str, ...]  # prefetch keys, in published order


@dataclass(frozen=True)
class Services:
    by_id: Mapping[str, Service]
    queries: Mapping[str, PrefetchQuery]  # key → query, in file order
    templates: Mapping[str, str]  # key → FHIR query template (CDS Hooks prefetch)
    required: frozenset[str]
    by_service: Mapping[str, Mapping[str, str]]  # service id → its keys' templates (rendered at load)

    def codes(self, terminology: Terminology, key: str) -> list[tuple[str, str]]:
        """``(system, code)`` tokens of one coded query, in ValueSet order, without repeats."""
        return _codes(self.queries[key], terminology)

    def templates_of(self, service: Service) -> Mapping[str, str]:
        return self.by_service[service.id]


def _codes(query: PrefetchQuery, terminology: Terminology) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for valueset_id in query.valuesets:
        for token in terminology.valueset_codes(valueset_id):
            if token not in out:
                out.append(token)
    return out


def _fail(path: Path, where: str, why: str) -> KnowledgeError:
    return KnowledgeError(f"fhir_profiles/{SERVICES_DIR}/{path.name}: {where}: {why}")


def _query(path: Path, i: int, q: object, terminology: Terminology) -> PrefetchQuery:
    where = f"$.queries[{i}]"
    if not isinstance(q, dict) or not isinstance(q.get("key"), str) or not isinstance(q.get("resourceType"), str):
        raise _fail(path, where, "each query needs a string key and resourceType")
    valuesets = q.get("valuesets") or []
    if not isinstance(valuesets, list) or not all(isinstance(v, str) for v in valuesets):
        raise _fail(path, f"{where}.valuesets", "a list of ValueSet ids")
    for v in valuesets:
        try:
            terminology.valueset_codes(v)
        except KeyError:
            raise _fail(path, f"{where}.valuesets", f"no ValueSet with id {v!r} in fhir_profiles/terminology") from None
    param = q.get("param")
    if valuesets and param not in PORTABLE_PARAMETERS:
        raise _fail(path, f"{where}.param", f"a coded query needs a portable search parameter, not {param!r}")
    count = q.get("count")
    if not q.get("read") and not (isinstance(count, int) and count > 0):
        raise _fail(path, f"{where}.count", "a search needs a positive _count")
    if not isinstance(q.get("required"), bool) or not isinstance(q.get("why"), str) or not q["why"].strip():
        raise _fail(path, where, "say whether the key is required, and why it is fetched")
    if not isinstance(q.get("label"), str) or not q["label"].strip():
        raise _fail(path, f"{where}.label", "say what the query reads, as the SMART page names it")
    if not isinstance(q.get("expected"), bool):
        raise _fail(path, f"{where}.expected", "say whether the SMART page calls out an empty answer (true/false)")
    return PrefetchQuery(q["key"], q["resourceType"], tuple(valuesets), param, count, q["required"],
                         bool(q.get("read")), q["why"], q["label"].strip(), q["expected"])


def _template(q: PrefetchQuery, terminology: Terminology) -> str:
    if q.read:
        return f"{q.resource_type}/{{{{context.patientId}}}}"
    base = f"{q.resource_type}?patient={{{{context.patientId}}}}"
    if q.valuesets:
        tokens = ",".join(f"{system}|{code}" for system, code in _codes(q, terminology))
        return f"{base}&{q.param}={tokens}&_count={q.count}"
    return f"{base}&_count={q.count}"


def load_services(profiles_dir, terminology: Terminology) -> Services:
    """The services and their prefetch, checked against the terminology (every ValueSet must exist)."""
    folder = Path(profiles_dir) / SERVICES_DIR
    path = folder / PREFETCH_FILE
    if not path.is_file():
        raise KnowledgeError(f"fhir_profiles/{SERVICES_DIR}/{PREFETCH_FILE} is required (the prefetch queries)")
    doc = read_object(path)
    queries: dict[str, PrefetchQuery] = {}
    for i, q in enumerate(doc.get("queries") or ()):
        query = _query(path, i, q, terminology)
        if query.key in queries:
            raise _fail(path, f"$.queries[{i}].key", f"duplicate key {query.key!r}")
        queries[query.key] = query
    by_id: dict[str, Service] = {}
    for spath in sorted(folder.glob("*.json")):
        if spath.name == PREFETCH_FILE:
            continue
        s = read_object(spath)
        if not isinstance(s, dict) or not all(isinstance(s.get(k), str) and s[k] for k in
                                               ("id", "hook", "title", "description")):
            raise _fail(spath, "$", "a service needs id, hook, title and description")
        if s["id"] != spath.stem:
            raise _fail(spath, "$.id", f"the id {s['id']!r} must be the file name {spath.stem!r}")
        if s["hook"] not in HOOKS:
            raise _fail(spath, "$.hook", f"{s['hook']!r} is not a hook this service answers ({', '.join(HOOKS)})")
        keys = s.get("prefetch") or []
        unknown = [k for k in keys if k not in queries]
        if unknown:
            raise _fail(spath, "$.prefetch", f"keys not in {PREFETCH_FILE}: {', '.join(unknown)}")
        missing = [k for k, q in queries.items() if q.required and k not in keys]
        if missing:
            raise _fail(spath, "$.prefetch", f"required keys missing: {', '.join(missing)}")
        by_id[s["id"]] = Service(s["id"], s["hook"], s["title"], s["description"], tuple(keys))
    if not by_id:
        raise KnowledgeError(f"fhir_profiles/{SERVICES_DIR}/ has no service file")
    # published in the order a chart is used: opened, orders selected, orders signed
    by_id = dict(sorted(by_id.items(), key=lambda kv: (HOOKS.index(kv[1].hook), kv[0])))
    templates = {k: _template(q, terminology) for k, q in queries.items()}
    by_service = {sid: MappingProxyType({k: templates[k] for k in svc.prefetch}) for sid, svc in by_id.items()}
    return Services(MappingProxyType(by_id), MappingProxyType(queries), MappingProxyType(templates),
                    frozenset(k for k, q in queries.items() if q.required), MappingProxyType(by_service))
