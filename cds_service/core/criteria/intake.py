"""Intake: every prefetch/fetch result → the relevant resources, sorted by clinical kind.

Only resources that matter are validated: they are filtered by type and code
on the raw dict first, then each is checked alone with ``fhir.resources.R4B``
(``core.parse.check_r4``), so one malformed or R5-shaped resource becomes a
data-quality finding instead of sinking the request.  Bundles are opened and
duplicates by type/id dropped.  The draft orders of this hook call are read
from the context, never from the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .. import parse as fp
from ..knowledge.terminology import Terminology
from .profile import Derived

RELEVANT = frozenset({"Patient", "Observation", "Condition", "Procedure", "MedicationStatement",
                      "MedicationRequest", "MedicationAdministration", "Medication"})
OBS_KINDS = ("her2-interpretation", "her2-ihc", "her2-ish", "her2-ish-ratio", "her2-copy-number",
             "er-percent", "er-status", "pr-percent", "pr-status", "er-pr-combined", "genetic-variant",
             "ecog", "lvef", "disease-status", "alt", "ast", "bilirubin", "tnm-distant-metastases",
             "tnm-stage-group", "alkaline-phosphatase", "neutrophils", "hcg")
CONDITION_SETS = ("primary-breast-cancer", "metastatic-disease", "ild", "pregnancy", "pregnancy-ended",
                  "severe-renal-impairment")
# Kinds where only the newest final result is used.  They are validated when
# read, newest first, so an older result that a newer readable one supersedes
# costs no FHIR validation (about 0.1 ms each) and, if malformed, raises no
# data-quality finding: it would not have changed the advice.
NEWEST_WINS = frozenset({"ecog", "alt", "ast", "bilirubin", "alkaline-phosphatase", "neutrophils"})
MEDICATION_RECORDS = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")


@dataclass
class Intake:
    """The resources of one hook call that the clinical domains read, by kind."""

    out: Derived = field(default_factory=Derived)  # intake findings (malformed, non-R4)
    patient: dict | None = None
    observations: dict[str, list[dict]] = field(default_factory=dict)  # kind → observations
    menopausal: list[dict] = field(default_factory=list)
    oophorectomy: list[dict] = field(default_factory=list)  # Procedure/Condition: both ovaries removed
    conditions: list[dict] = field(default_factory=list)
    all_conditions: dict[str, dict] = field(default_factory=dict)  # id → raw Condition (related-primary look-ups)
    med_records: list[dict] = field(default_factory=list)
    medications: dict[str, dict] = field(default_factory=dict)  # Medication/<id> → Medication
    kinds: dict[str, str] = field(default_factory=dict)  # reference → kind, for the timeline's labels
    # Type/id → each resource a clinical domain was handed (``_accept``): relevant by type and
    # code, the first of its type/id, valid R4 (``NEWEST_WINS`` kinds: validated when read, see
    # ``criteria._history``, which drops those found invalid).  Not the drafts of this call, nor a
    # resource without an id (nothing can name it).  What cards, presenter and timeline look a
    # fact's references up in, never the raw prefetch.
    records: dict[str, dict] = field(default_factory=dict)
    # Every prefetched MedicationRequest the drafts were compared with (``_relevance``): a draft
    # id among these takes its record out of the history; no other draft id changes what is read.
    medication_requests: set[str] = field(default_factory=set)

    def of_kind(self, kind: str) -> list[dict]:
        return self.observations.get(kind, [])


def draft_bundle(context: dict) -> dict:
    """``context.draftOrders`` when it is a Bundle-shaped object; anything else (a number, a string) is no drafts."""
    bundle = context.get("draftOrders")
    return bundle if isinstance(bundle, dict) else {}


def draft_entries(context: dict) -> list[dict]:
    """The draft resources of ``context.draftOrders`` (``parse.bundle_resources``: the one reading of a Bundle)."""
    return fp.bundle_resources(draft_bundle(context))


def draft_ids(context: dict) -> set[str]:
    return {f"{r.get('resourceType')}/{r['id']}" for r in draft_entries(context) if r.get("id")}


def read_resources(resources: Iterable[Any], context: dict, t: Terminology) -> Intake:
    """Filter by type and code on the raw dicts, dedupe, then validate each kept resource."""
    intake = Intake()
    drafts = draft_ids(context)
    seen: set[str] = set()
    for r in _flatten(resources, intake.out):
        rtype = r.get("resourceType")
        if rtype not in RELEVANT:
            continue
        if "id" in r and not isinstance(r["id"], str):
            intake.out.finding("malformed-resource", f"a {rtype} has an id that is not a string; skipped",
                               (f"{rtype}/?",))
            continue
        if r.get("id"):
            key = f"{rtype}/{r['id']}"
            if key in seen:
                continue
            seen.add(key)
        if rtype == "Condition" and r.get("id"):
            intake.all_conditions[r["id"]] = r  # raw, for related-primary look-ups only
        if rtype == "MedicationRequest":
            intake.medication_requests.add(fp.reference_of(r))
        try:
            kind = _relevance(r, t, drafts)
        except (TypeError, AttributeError, ValueError) as exc:
            # Shapes no FHIR resource has (a code that is an object, a list where a
            # string belongs) must cost this resource, never the request.
            intake.out.finding("malformed-resource", f"{fp.reference_of(r)} could not be read "
                               f"({type(exc).__name__}); skipped", (fp.reference_of(r),))
            continue
        if kind is None:
            continue
        if kind not in NEWEST_WINS:  # those are validated when read: see readings.newest_usable
            problem = fp.check_r4(r)
            if problem:
                intake.out.finding(problem[0], problem[1], (fp.reference_of(r),))
                continue
        _accept(intake, kind, r, t)
    return intake


def _flatten(resources: Iterable[Any], out: Derived) -> Iterable[dict]:
    for r in resources or ():
        if not isinstance(r, dict):
            out.finding("malformed-resource", f"a prefetch item is a {type(r).__name__}, not a resource; skipped")
            continue
        if r.get("resourceType") == "Bundle":
            yield from _flatten(fp.entry_resources(r), out)
        else:
            yield r


def _relevance(r: dict, t: Terminology, drafts: set[str]) -> str | None:
    """The clinical kind of a raw resource (an Observation's ValueSet, …), or None when no domain reads it."""
    rtype = r["resourceType"]
    if rtype == "Observation":
        for c in fp.codings(r.get("code")):
            kinds = t.valuesets_of(c.get("system"), c.get("code"))
            for k in OBS_KINDS:
                if k in kinds:
                    return k
        for c in fp.codings(r.get("valueCodeableConcept")) + fp.codings(r.get("code")):
            if t.in_valueset("menopausal-status", c.get("system"), c.get("code")):
                return "menopausal"
        return None
    if rtype in ("Condition", "Procedure") and any(
            t.in_valueset("bilateral-oophorectomy", c.get("system"), c.get("code")) for c in fp.codings(r.get("code"))):
        return "oophorectomy"
    if rtype == "Procedure":
        return None
    if rtype == "Condition":
        for c in fp.codings(r.get("code")):
            if t.valuesets_of(c.get("system"), c.get("code")) & set(CONDITION_SETS):
                return "condition"
        return None
    if rtype == "MedicationRequest" and fp.reference_of(r) in drafts:
        return None  # the drafts of this hook are read from the context
    return rtype


def _accept(intake: Intake, kind: str, r: dict, t: Terminology) -> None:
    if r.get("id"):
        intake.records[f"{r['resourceType']}/{r['id']}"] = r
    if kind == "Patient":
        intake.patient = intake.patient or r
    elif kind == "menopausal":
        intake.menopausal.append(r)
        intake.kinds[fp.reference_of(r)] = kind
    elif kind == "oophorectomy":
        intake.oophorectomy.append(r)
        intake.kinds[fp.reference_of(r)] = kind
    elif kind == "condition":
        intake.conditions.append(r)
        sets: set[str] = set()
        for c in fp.codings(r.get("code")):
            sets |= t.valuesets_of(c.get("system"), c.get("code"))
        intake.kinds[fp.reference_of(r)] = next(s for s in CONDITION_SETS[::-1] if s in sets)
    elif kind == "Medication":
        intake.medications[f"Medication/{r.get('id')}"] = r
    elif kind in MEDICATION_RECORDS:
        intake.med_records.append(r)
    else:
        intake.observations.setdefault(kind, []).append(r)
        intake.kinds[fp.reference_of(r)] = kind
