"""FHIR R4 resources → one explainable HER2 MBC ``PatientProfile``.

The fact names and value vocabularies are the contract with ``rules``
(docs/architecture.md).  Every fact carries the FHIR references it came from,
so a card can say why it fired.  Messy data is expected: coded or text values,
LOINC or SNOMED, final or preliminary, old or new.  When data is missing,
conflicting or unreadable the profile says ``unknown``/``None`` and records a
data-quality ``Finding``; it never guesses a clinical fact.

Only resources that matter are validated: they are filtered by type and code
on the raw dict first, then each is checked alone with ``fhir.resources.R4B``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..fhir import parse as fp
from ..knowledge.terminology import Drug, Terminology

# ---------------------------------------------------------------------------
# public types


@dataclass(frozen=True)
class Fact:
    """One derived fact: the value, the FHIR references behind it, and an optional why."""

    value: Any
    refs: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Finding:
    """A data-quality problem the clinician (or the integrator) should know about."""

    code: str
    message: str
    refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class DraftOrder:
    """A draft MedicationRequest of this hook call, normalized like the history."""

    resource_ref: str  # MedicationRequest/<id>: what a card's delete action names
    ingredients: tuple[str, ...]
    classes: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class MedEpisode:
    """One medication record (statement, request or administration) normalized to ingredients."""

    ref: str
    ingredients: tuple[str, ...]
    classes: tuple[str, ...]
    state: str  # active | past
    start: dt.date | None
    end: dt.date | None
    text: str
    kind: str  # MedicationStatement | MedicationRequest | MedicationAdministration
    cycles: int | None = None  # explicit completed-cycles extension
    period_days: float | None = None  # dosing interval (timing.repeat), when given


@dataclass(frozen=True)
class PatientProfile:
    """Immutable profile; ``facts`` is the only thing the rules read."""

    patient_id: str | None
    facts: Mapping[str, Fact]
    findings: tuple[Finding, ...] = ()
    draft_orders: tuple[DraftOrder, ...] = ()
    medications: tuple[MedEpisode, ...] = ()

    def value(self, name: str, default: Any = None) -> Any:
        fact = self.facts.get(name)
        return default if fact is None else fact.value

    def to_json(self) -> dict:
        """A JSON-able view (for the CLI and debugging)."""
        return {
            "patientId": self.patient_id,
            "facts": {k: {"value": f.value, "refs": list(f.refs), **({"note": f.note} if f.note else {})}
                      for k, f in self.facts.items()},
            "findings": [{"code": f.code, "message": f.message, "refs": list(f.refs)} for f in self.findings],
            "draftOrders": [{"resourceRef": d.resource_ref, "ingredients": list(d.ingredients),
                             "classes": list(d.classes), "text": d.text} for d in self.draft_orders],
            "medications": [{"ref": m.ref, "ingredients": list(m.ingredients), "state": m.state,
                             "start": m.start.isoformat() if m.start else None,
                             "end": m.end.isoformat() if m.end else None, "text": m.text}
                            for m in self.medications],
        }


COMPLETED_CYCLES_URL = "http://her2-cds.example.org/fhir/StructureDefinition/completed-cycles"
FINAL = frozenset({"final", "amended", "corrected"})
NOT_YET = frozenset({"preliminary", "registered"})
_RELEVANT = frozenset({"Patient", "Observation", "Condition", "MedicationStatement", "MedicationRequest",
                       "MedicationAdministration", "Medication"})
_OBS_KINDS = ("her2-interpretation", "her2-ihc", "her2-ish", "her2-ish-ratio", "her2-copy-number",
              "er-percent", "er-status", "pr-percent", "pr-status", "er-pr-combined", "genetic-variant",
              "ecog", "lvef", "disease-status", "alt", "ast", "bilirubin")
# Kinds where only the newest final result is used.  They are validated when
# read, newest first, so an older result that a newer readable one supersedes
# costs no FHIR validation (about 0.1 ms each) and, if malformed, raises no
# data-quality finding: it would not have changed the advice.
_NEWEST_WINS = frozenset({"ecog", "alt", "ast", "bilirubin"})
_HER2_KINDS = frozenset({"her2-interpretation", "her2-ihc", "her2-ish", "her2-ish-ratio", "her2-copy-number"})
_SCORE = re.compile(r"(?<![\d.])([0-3])\s*\+")
_LONE_SCORE = re.compile(r"^\s*(?:score\s*)?([0-3])\s*$", re.IGNORECASE)
_WORDS = (("not amplified", "negative"), ("non-amplified", "negative"), ("nonamplified", "negative"),
          ("amplified", "positive"), ("equivocal", "equivocal"), ("borderline", "equivocal"),
          ("negative", "negative"), ("positive", "positive"), ("not detected", "absent"),
          ("absent", "absent"), ("detected", "present"), ("present", "present"))
REFLEX_PAIRING_DAYS = 60  # IHC and reflex ISH without a shared specimen reference
REGIMEN_WINDOW_DAYS = 30  # agents started this close together form one regimen
MIN_CYCLE_GAP_DAYS = 14  # administrations closer than this are not one-per-cycle (weekly schedules)
DAYS_PER_MONTH = 30.4375


# ---------------------------------------------------------------------------
# entry point


def build_profile(resources: list[dict], context: dict | None, terminology: Terminology,
                  today: dt.date | None = None) -> PatientProfile:
    """Build the profile for one hook call.

    ``resources`` are prefetch/fetch results in any mix (Bundles are opened,
    duplicates by type/id dropped); ``context`` is the CDS Hooks context.
    """
    today = today or dt.date.today()
    context = context or {}
    b = _Builder(terminology, today, context)
    b.ingest(resources)
    return b.build()


# ---------------------------------------------------------------------------


@dataclass
class _Her2Item:
    ref: str
    date: dt.date | None
    specimen: str | None
    kind: str
    value: Any  # ihc: ("score", "2+") / ("answer", "positive"); ish: answer; ratio/copies: float; interp: answer


@dataclass
class _Her2Group:
    key: Any
    items: list[_Her2Item] = field(default_factory=list)

    @property
    def date(self) -> dt.date | None:
        dates = [i.date for i in self.items if i.date]
        return max(dates) if dates else None

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.ref for i in self.items))

    def kinds(self) -> set[str]:
        return {i.kind for i in self.items}


@dataclass
class _Her2Result:
    date: dt.date | None
    status: str  # positive | low | zero | negative (unscored) | equivocal_pending | unknown
    ihc: str | None
    ish_group: int | None
    refs: tuple[str, ...]
    label: str


def _newest_first(observations: list[dict]) -> list[tuple[dt.date | None, dict]]:
    """(date, observation) pairs, newest first; undated ones last."""
    rows = [(fp.observation_date(o), o) for o in observations]
    rows.sort(key=lambda r: r[0] or dt.date.min, reverse=True)
    return rows


class _Builder:
    def __init__(self, term: Terminology, today: dt.date, context: dict):
        self.t = term
        self.today = today
        self.context = context
        self.findings: list[Finding] = []
        self.facts: dict[str, Fact] = {}
        self.patient: dict | None = None
        self.observations: list[tuple[str, dict]] = []  # (kind, obs)
        self.menopausal_obs: list[tuple[str, dict]] = []
        self.conditions: list[dict] = []
        self.all_conditions: dict[str, dict] = {}
        self.med_resources: list[dict] = []
        self.medications: dict[str, dict] = {}
        self.draft_ids = self._draft_ids()

    # -- intake -------------------------------------------------------------
    def finding(self, code: str, message: str, refs: Iterable[str] = ()) -> None:
        self.findings.append(Finding(code, message, tuple(refs)))

    def _draft_ids(self) -> set[str]:
        ids = set()
        for entry in ((self.context.get("draftOrders") or {}).get("entry") or ()):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and res.get("id"):
                ids.add(f"{res.get('resourceType')}/{res['id']}")
        return ids

    def _flatten(self, resources: Iterable[Any]) -> Iterable[dict]:
        for r in resources or ():
            if not isinstance(r, dict):
                self.finding("malformed-resource", f"a prefetch item is a {type(r).__name__}, not a resource; skipped")
                continue
            if r.get("resourceType") == "Bundle":
                entries = r.get("entry") if isinstance(r.get("entry"), list) else ()
                yield from self._flatten(e.get("resource") for e in entries if isinstance(e, dict))
            else:
                yield r

    def ingest(self, resources: list[dict]) -> None:
        """Filter by type and code on the raw dicts, dedupe, then validate each kept resource."""
        seen: set[str] = set()
        for r in self._flatten(resources):
            rtype = r.get("resourceType")
            if rtype not in _RELEVANT:
                continue
            if "id" in r and not isinstance(r["id"], str):
                self.finding("malformed-resource", f"a {rtype} has an id that is not a string; skipped",
                             (f"{rtype}/?",))
                continue
            if r.get("id"):
                key = f"{rtype}/{r['id']}"
                if key in seen:
                    continue
                seen.add(key)
            if rtype == "Condition" and r.get("id"):
                self.all_conditions[r["id"]] = r  # raw, for related-primary look-ups only
            try:
                kind = self._relevance(r)
            except (TypeError, AttributeError, ValueError) as exc:
                # Shapes no FHIR resource has (a code that is an object, a list where a
                # string belongs) must cost this resource, never the request.
                self.finding("malformed-resource", f"{fp.reference_of(r)} could not be read "
                             f"({type(exc).__name__}); skipped", (fp.reference_of(r),))
                continue
            if kind is None:
                continue
            if kind in _NEWEST_WINS:
                self._accept(kind, r)  # validated when read: see _newest_usable
                continue
            problem = fp.check_r4(r)
            if problem:
                self.finding(problem[0], problem[1], (fp.reference_of(r),))
                continue
            self._accept(kind, r)

    def _relevance(self, r: dict) -> str | None:
        rtype = r["resourceType"]
        if rtype == "Observation":
            for c in fp.codings(r.get("code")):
                kinds = self.t.valuesets_of(c.get("system"), c.get("code"))
                for k in _OBS_KINDS:
                    if k in kinds:
                        return k
            for c in fp.codings(r.get("valueCodeableConcept")) + fp.codings(r.get("code")):
                if self.t.in_valueset("menopausal-status", c.get("system"), c.get("code")):
                    return "menopausal"
            return None
        if rtype == "Condition":
            for c in fp.codings(r.get("code")):
                if self.t.valuesets_of(c.get("system"), c.get("code")) & {"primary-breast-cancer", "metastatic-disease", "ild"}:
                    return "condition"
            return None
        if rtype == "MedicationRequest" and fp.reference_of(r) in self.draft_ids:
            return None  # the drafts of this hook are read from the context
        return rtype

    def _accept(self, kind: str, r: dict) -> None:
        if kind == "Patient":
            self.patient = self.patient or r
        elif kind == "menopausal":
            self.menopausal_obs.append((kind, r))
        elif kind == "condition":
            self.conditions.append(r)
        elif kind == "Medication":
            self.medications[f"Medication/{r.get('id')}"] = r
        elif kind in ("MedicationStatement", "MedicationRequest", "MedicationAdministration"):
            self.med_resources.append(r)
        else:
            self.observations.append((kind, r))

    # -- assembly -----------------------------------------------------------
    def set(self, name: str, value: Any, refs: Iterable[str] = (), note: str | None = None) -> None:
        self.facts[name] = Fact(value, tuple(dict.fromkeys(refs)), note)

    def build(self) -> PatientProfile:
        self._patient_facts()
        obs_by_kind: dict[str, list[dict]] = {}
        for kind, obs in self.observations:
            obs_by_kind.setdefault(kind, []).append(obs)
        self._her2(obs_by_kind)
        self._hormone_receptors(obs_by_kind)
        self._pik3ca(obs_by_kind.get("genetic-variant", []))
        self._ecog(obs_by_kind.get("ecog", []))
        self._lvef(obs_by_kind.get("lvef", []))
        for kind, name in (("alt", "liver.alt_x_uln"), ("ast", "liver.ast_x_uln"), ("bilirubin", "liver.bili_x_uln")):
            self._x_uln(obs_by_kind.get(kind, []), name)
        progression = self._disease_status(obs_by_kind.get("disease-status", []))
        self._conditions(obs_by_kind.get("disease-status", []))
        episodes = self._medication_history()
        drafts = self._draft_orders()
        self._therapy(episodes, drafts, progression)
        self._ild_on_tdxd(episodes)
        codes = sorted({f.code for f in self.findings})
        self.set("findings", codes, [r for f in self.findings for r in f.refs])
        return PatientProfile(
            patient_id=self.context.get("patientId") or (self.patient or {}).get("id"),
            facts=MappingProxyType(dict(self.facts)),
            findings=tuple(self.findings),
            draft_orders=tuple(drafts),
            medications=tuple(episodes),
        )

    # -- patient ------------------------------------------------------------
    def _patient_facts(self) -> None:
        p = self.patient or {}
        ref = (fp.reference_of(p),) if p else ()
        birth = fp.parse_date(p.get("birthDate"))
        age = None
        if birth and len(p.get("birthDate", "")) >= 10:
            age = self.today.year - birth.year - ((self.today.month, self.today.day) < (birth.month, birth.day))
        elif birth:
            age = self.today.year - birth.year  # year-only birth date: approximate, noted
        self.set("patient.age", age, ref, None if not birth or len(p.get("birthDate", "")) >= 10
                 else "birth date has no day; age approximate")
        gender = p.get("gender")
        self.set("patient.sex", gender if gender in ("female", "male", "other", "unknown") else "unknown", ref)
        # Menopausal status only from a coded Observation, newest first.
        best = None
        for _, obs in self.menopausal_obs:
            if obs.get("status") not in FINAL:
                continue
            value = None
            for cc in (obs.get("valueCodeableConcept"), obs.get("code")):
                value = value or self.t.translate_codeable("menopausal-status", cc)
            if value and (best is None or (fp.observation_date(obs) or dt.date.min) >= best[0]):
                best = (fp.observation_date(obs) or dt.date.min, value, fp.reference_of(obs))
        if best:
            self.set("patient.menopausal", best[1], (best[2],))
        else:
            self.set("patient.menopausal", "unknown", (), "no coded menopausal-status Observation")

    # -- HER2 ---------------------------------------------------------------
    def _final(self, obs: dict, what: str) -> bool:
        status = obs.get("status")
        if status in FINAL:
            return True
        if status in NOT_YET:
            self.finding("preliminary-ignored", f"{fp.reference_of(obs)} ({what}) is {status}; not used until final",
                         (fp.reference_of(obs),))
        return False

    def _answer(self, obs: dict) -> str | None:
        """Coded/word answer from value[x], falling back to interpretation."""
        a = self.t.translate_codeable("result-answer", obs.get("valueCodeableConcept"))
        if a:
            return a
        for text in fp.texts(obs.get("valueCodeableConcept")) + (
                [obs["valueString"]] if isinstance(obs.get("valueString"), str) else []):
            w = _word_answer(text)
            if w:
                return w
        if isinstance(obs.get("valueBoolean"), bool):
            return "positive" if obs["valueBoolean"] else "negative"
        for interp in fp.first_codeable(obs.get("interpretation")):
            a = self.t.translate_codeable("result-answer", interp)
            if a:
                return a
            for text in fp.texts(interp):
                w = _word_answer(text)
                if w:
                    return w
        return None

    def _ihc_value(self, obs: dict) -> tuple[str, str] | None:
        """('score', '0'..'3+') when a score is written anywhere, else ('answer', ...)."""
        candidates = fp.texts(obs.get("valueCodeableConcept"))
        if isinstance(obs.get("valueString"), str):
            candidates.append(obs["valueString"])
        for interp in fp.first_codeable(obs.get("interpretation")):
            candidates += fp.texts(interp)
        for text in candidates:
            m = _SCORE.search(text) or _LONE_SCORE.match(text)
            if m:
                return ("score", "0" if m.group(1) == "0" else f"{m.group(1)}+")
        n = None
        if "valueInteger" in obs or isinstance(obs.get("valueQuantity"), dict):
            n = fp.number_value(obs)
        if n is not None and n in (0, 1, 2, 3):
            return ("score", "0" if n == 0 else f"{int(n)}+")
        a = self._answer(obs)
        return ("answer", a) if a else None

    def _her2_items(self, obs: dict, kind: str) -> list[_Her2Item]:
        ref = fp.reference_of(obs)
        date = fp.observation_date(obs)
        specimen = (obs.get("specimen") or {}).get("reference")
        items: list[_Her2Item] = []

        def add(k: str, o: dict) -> None:
            if k == "her2-ihc":
                v = self._ihc_value(o)
            elif k in ("her2-ish", "her2-interpretation"):
                v = self._answer(o)
            else:
                v = fp.number_value(o)
                if v is not None and v < 0:
                    v = None
            if v is None:
                if any(key.startswith("value") for key in o) or o.get("interpretation"):
                    self.finding("unparsed-value", f"{ref}: the {k} result could not be read", (ref,))
                return
            items.append(_Her2Item(ref, date, specimen, k, v))

        if any(key.startswith("value") for key in obs) or obs.get("interpretation"):
            add(kind, obs)
        for comp in obs.get("component") or ():
            for c in fp.codings(comp.get("code")):
                ks = self.t.valuesets_of(c.get("system"), c.get("code")) & _HER2_KINDS
                if ks:
                    add(next(iter(ks)), comp)
                    break
        return items

    def _her2(self, obs_by_kind: dict[str, list[dict]]) -> None:
        items: list[_Her2Item] = []
        for kind in _HER2_KINDS:
            for obs in obs_by_kind.get(kind, []):
                if self._final(obs, "HER2"):
                    items.extend(self._her2_items(obs, kind))
        groups = _group_her2(items)
        results = [r for r in (_evaluate_her2_group(g) for g in groups) if r is not None]
        for r in results:
            if r.status == "unknown":
                self.finding("unparsed-value", f"HER2 result could not be interpreted: {r.label}", r.refs)
        usable = [r for r in results if r.status != "unknown"]
        if not usable:
            self.set("her2.status", "unknown", (), "no final HER2 result")
            self.set("her2.ihc", None)
            self.set("her2.ish_group", None)
            self.set("her2.negative", False)
            self.set("her2.conflict", False)
            self.finding("her2-missing", "no final/amended/corrected HER2 IHC, ISH or interpretation result")
            return
        usable.sort(key=lambda r: r.date or dt.date.min)
        newest_date = usable[-1].date
        newest = [r for r in usable if r.date == newest_date]
        definitive = {r.status for r in usable if r.status in ("positive", "low", "zero", "negative")}
        conflict = ("positive" in definitive and len(definitive) > 1) or {"low", "zero"} <= definitive
        same_day_disagree = len({r.status for r in newest}) > 1
        all_refs = [ref for r in usable for ref in r.refs]
        if conflict or same_day_disagree:
            listing = "; ".join(r.label for r in usable)
            self.finding("her2-conflict", f"HER2 results disagree: {listing}. Precedence: newest final/amended/"
                         "corrected result; on one specimen an explicit 48676-1 interpretation wins", all_refs)
        if same_day_disagree:
            status, ihc, group, refs = "unknown", None, None, [x for r in newest for x in r.refs]
            note = "results of the same date disagree"
        else:
            top = newest[0]
            status, ihc, group, refs, note = top.status, top.ihc, top.ish_group, list(top.refs), top.label
        negative = status in ("low", "zero", "negative")
        if status == "negative":
            status = "unknown"
            note = (note or "") + "; HER2-negative without an IHC score: low vs zero undetermined"
            self.finding("her2-unscored-negative", "HER2 is negative but no IHC score (0 / 1+) is recorded", refs)
        if status == "equivocal_pending":
            self.finding("her2-equivocal", "HER2 IHC 2+ (equivocal) without an ISH result; reflex ISH required", refs)
        self.set("her2.status", status, refs, note)
        self.set("her2.ihc", ihc, refs)
        self.set("her2.ish_group", group, refs)
        self.set("her2.negative", negative, refs)
        self.set("her2.conflict", bool(conflict or same_day_disagree), all_refs if conflict else refs)

    # -- ER / PR ------------------------------------------------------------
    def _receptor_results(self, status_obs: list[dict], percent_obs: list[dict], what: str, low_allowed: bool):
        """(date, category, percent, ref) per final result; category None when unreadable."""
        out = []
        for obs in percent_obs:
            if not self._final(obs, what):
                continue
            ref = fp.reference_of(obs)
            v, comp, problem = fp.percent_value(obs)
            cat = None
            if v is not None:
                cat = _percent_category(v, comp, low_allowed)
            elif problem is None:
                a = self._answer(obs)
                cat = {"positive": "positive", "negative": "negative"}.get(a or "")
            if cat is None:
                self.finding("unparsed-value", f"{ref}: {what} percentage could not be read"
                             + (f" ({problem})" if problem else ""), (ref,))
                continue
            out.append((fp.observation_date(obs), cat, v, ref))
        for obs in status_obs:
            if not self._final(obs, what):
                continue
            ref = fp.reference_of(obs)
            v, comp, _ = fp.percent_value(obs) if ("valueQuantity" in obs or "valueString" in obs) else (None, None, None)
            if v is not None:
                cat = _percent_category(v, comp, low_allowed)
            else:
                a = self._answer(obs)
                cat = {"positive": "positive", "present": "positive", "negative": "negative",
                       "absent": "negative"}.get(a or "")
            if cat is None:
                self.finding("unparsed-value", f"{ref}: {what} status could not be read", (ref,))
                continue
            out.append((fp.observation_date(obs), cat, v, ref))
        return out

    def _receptor_status(self, results, name: str) -> tuple[str, list[str], bool]:
        if not results:
            self.set(name, "unknown", (), "no final result")
            return "unknown", [], False
        newest_date = max((r[0] or dt.date.min) for r in results)
        newest = [r for r in results if (r[0] or dt.date.min) == newest_date]
        with_percent = [r for r in newest if r[2] is not None]
        chosen = with_percent or newest
        cats = {r[1] for r in chosen}
        refs = [r[3] for r in chosen]
        if len(cats) > 1:
            status, note = "unknown", "results of the same date disagree"
        else:
            status = cats.pop()
            pct = chosen[0][2]
            note = f"{pct:g}% positive cells" if pct is not None else None
        flips = {("negative" if r[1] == "negative" else "positive") for r in results}
        conflict = len(flips) > 1
        self.set(name, status, refs, note)
        return status, [r[3] for r in results], conflict

    def _hormone_receptors(self, by_kind: dict[str, list[dict]]) -> None:
        er = self._receptor_results(by_kind.get("er-status", []), by_kind.get("er-percent", []), "ER", True)
        pr = self._receptor_results(by_kind.get("pr-status", []), by_kind.get("pr-percent", []), "PR", False)
        er_status, er_refs, er_conflict = self._receptor_status(er, "er.status")
        pr_status, pr_refs, _ = self._receptor_status(pr, "pr.status")
        self.set("er.conflict", er_conflict, er_refs if er_conflict else ())
        if er_conflict:
            listing = "; ".join(f"{d or 'undated'}: {c}" for d, c, _, _ in sorted(er, key=lambda r: r[0] or dt.date.min))
            self.finding("er-conflict", f"ER status changed between results: {listing}", er_refs)
        if er_status in ("positive", "low") or pr_status == "positive":
            refs = (self.facts["er.status"].refs if er_status in ("positive", "low") else ()) + (
                self.facts["pr.status"].refs if pr_status == "positive" else ())
            self.set("hr.status", "positive", refs, "ER ≥1 % or PR ≥1 %")
        elif er_status == "negative" and pr_status == "negative":
            self.set("hr.status", "negative", self.facts["er.status"].refs + self.facts["pr.status"].refs)
        else:
            combined = self._receptor_results(by_kind.get("er-pr-combined", []), [], "ER+PR", False)
            if er_status == "unknown" and pr_status == "unknown" and combined:
                newest = max(combined, key=lambda r: r[0] or dt.date.min)
                self.set("hr.status", newest[1], (newest[3],), "from the combined ER+PR result")
            else:
                self.set("hr.status", "unknown", (), "ER and PR not both known")

    # -- PIK3CA, ECOG, LVEF, labs -------------------------------------------
    def _pik3ca(self, observations: list[dict]) -> None:
        mutated, absent = [], []
        for obs in observations:
            if not self._final(obs, "variant"):
                continue
            if not self._is_pik3ca(obs):
                continue
            a = self._answer(obs)
            ref = fp.reference_of(obs)
            if a in ("present", "positive"):
                mutated.append(ref)
            elif a in ("absent", "negative"):
                absent.append(ref)
        if mutated:
            self.set("pik3ca", "mutated", mutated)
        elif absent:
            self.set("pik3ca", "not_detected", absent)
        else:
            self.set("pik3ca", "unknown")

    def _is_pik3ca(self, obs: dict) -> bool:
        """Gene studied (48018-6) is HGNC:8975, or the gene is named PIK3CA in text."""
        for comp in obs.get("component") or ():
            if self.t.codings_in("gene-studied", comp.get("code")):
                value = comp.get("valueCodeableConcept")
                if fp.codings(value):  # a coded gene decides; its display is not trusted over the code
                    return self.t.codings_in("pik3ca-gene", value)
                if any("pik3ca" in s.lower() for s in fp.texts(value)):
                    return True
        return any("pik3ca" in s.lower() for s in fp.texts(obs.get("code")))

    def _newest_final(self, observations: list[dict], what: str) -> list[tuple[dt.date | None, dict]]:
        return _newest_first([o for o in observations if self._final(o, what)])

    def _newest_usable(self, observations: list[dict], what: str):
        """Newest first, the final results that are valid FHIR R4, validated as they are reached.

        For the ``_NEWEST_WINS`` kinds, whose readers stop at the first result
        they can use: the results older than that one are never validated.
        """
        for date, obs in _newest_first(observations):
            problem = fp.check_r4(obs)
            if problem:
                self.finding(problem[0], problem[1], (fp.reference_of(obs),))
            elif self._final(obs, what):
                yield date, obs

    def _ecog(self, observations: list[dict]) -> None:
        for date, obs in self._newest_usable(observations, "ECOG"):
            ref = fp.reference_of(obs)
            grade = None
            n = fp.number_value(obs)
            if n is not None and n == int(n) and 0 <= n <= 5:
                grade = int(n)
            if grade is None:
                g = self.t.translate_codeable("ecog", obs.get("valueCodeableConcept"))
                for interp in fp.first_codeable(obs.get("interpretation")):
                    g = g or self.t.translate_codeable("ecog", interp)
                grade = int(g) if g is not None else None
            if grade is None:
                self.finding("unparsed-value", f"{ref}: ECOG value could not be read", (ref,))
                continue
            self.set("ecog", grade, (ref,), f"on {date}" if date else None)
            return
        self.set("ecog", None)

    def _lvef(self, observations: list[dict]) -> None:
        readings = []
        for date, obs in self._newest_final(observations, "LVEF"):
            ref = fp.reference_of(obs)
            v, _, problem = fp.percent_value(obs)
            if v is None:
                self.finding("unparsed-value", f"{ref}: LVEF could not be read" + (f" ({problem})" if problem else ""), (ref,))
                continue
            readings.append((date, v, ref))
        if not readings:
            self.set("lvef.value", None)
            self.set("lvef.days_ago", None)
            self.set("lvef.drop", None)
            return
        date, value, ref = readings[0]
        self.set("lvef.value", round(value, 1), (ref,), f"on {date}" if date else "undated")
        self.set("lvef.days_ago", (self.today - date).days if date else None, (ref,))
        earlier = [r for r in readings[1:] if r[0] and date and r[0] < date]
        if earlier:
            best = max(earlier, key=lambda r: r[1])
            self.set("lvef.drop", round(max(0.0, best[1] - value), 1), (ref, best[2]),
                     f"from {best[1]:g}% on {best[0]}")
        else:
            self.set("lvef.drop", None, (ref,))

    def _x_uln(self, observations: list[dict], name: str) -> None:
        for date, obs in self._newest_usable(observations, name):
            ref = fp.reference_of(obs)
            q = obs.get("valueQuantity") or {}
            value = q.get("value") if isinstance(q.get("value"), (int, float)) else None
            high = None
            for rr in obs.get("referenceRange") or ():
                h = (rr or {}).get("high") or {}
                if isinstance(h.get("value"), (int, float)) and h["value"] > 0:
                    hu, vu = h.get("code") or h.get("unit"), q.get("code") or q.get("unit")
                    if hu and vu and hu != vu:
                        continue
                    high = h["value"]
                    break
            if value is None or high is None:
                self.finding("unparsed-value", f"{ref}: value or reference-range high missing; ×ULN not computed", (ref,))
                continue
            self.set(name, round(value / high, 2), (ref,), f"{value:g} / ULN {high:g} on {date}")
            return
        self.set(name, None)

    def _disease_status(self, observations: list[dict]) -> list[dt.date]:
        """Sets disease.progression from the newest 97509-4; returns every worsened date."""
        rows = self._newest_final(observations, "disease status")
        worsened = []
        for date, obs in rows:
            if self.t.translate_codeable("result-answer", obs.get("valueCodeableConcept")) == "worsened" and date:
                worsened.append(date)
        if rows:
            date, obs = rows[0]
            a = self.t.translate_codeable("result-answer", obs.get("valueCodeableConcept"))
            self.set("disease.progression", a == "worsened", (fp.reference_of(obs),),
                     f"latest disease status on {date}: {a or 'unreadable'}")
        else:
            self.set("disease.progression", False, (), "no disease-status observation")
        return worsened

    # -- conditions ---------------------------------------------------------
    def _conditions(self, disease_status: list[dict]) -> None:
        breast, mets, ild = [], [], []
        sites: dict[str, list[str]] = {}
        met_dates: list[tuple[dt.date, str]] = []
        brain: list[dict] = []
        for c in self.conditions:
            vstatus = _code_of(c.get("verificationStatus"))
            if vstatus in ("entered-in-error", "refuted"):
                continue
            ref = fp.reference_of(c)
            sets: set[str] = set()
            for cd in fp.codings(c.get("code")):
                sets |= self.t.valuesets_of(cd.get("system"), cd.get("code"))
            if "primary-breast-cancer" in sets:
                breast.append(ref)
            if "ild" in sets:
                ild.append(ref)
            if "metastatic-disease" in sets:
                if self._related_primary_not_breast(c):
                    continue
                mets.append(ref)
                site = self.t.translate_codeable("metastatic-site", c.get("code"))
                if site is None and not any(x.get("code") == "1287652008" for x in fp.codings(c.get("code"))):
                    site = "other"  # a secondary site the rules do not name; history-of-metastatic has none
                if site:
                    sites.setdefault(site, []).append(ref)
                if site == "brain":
                    brain.append(c)
                d = fp.parse_date(c.get("onsetDateTime")) or fp.period_bounds(c.get("onsetPeriod"))[0] \
                    or fp.parse_date(c.get("recordedDate"))
                if d:
                    met_dates.append((d, ref))
        self.set("breast_cancer", bool(breast), breast)
        self.set("metastatic", bool(mets), mets)
        order = ["bone", "liver", "lung", "brain", "pleura", "lymph_node", "other"]
        self.set("metastatic.sites", [s for s in order if s in sites], [r for s in sites.values() for r in s])
        if met_dates:
            d, ref = min(met_dates)
            self.set("metastatic.date", d.isoformat(), (ref,))
        else:
            self.set("metastatic.date", None, (), "no onset/recorded date on a metastatic Condition" if mets else None)
        self.set("brain_mets", bool(brain), [fp.reference_of(c) for c in brain])
        self._brain_activity(brain, disease_status)
        self.set("ild", bool(ild), ild)
        self._ild_conditions = [c for c in self.conditions if fp.reference_of(c) in ild]

    def _related_primary_not_breast(self, cond: dict) -> bool:
        """mCODE relatedPrimaryCancerCondition pointing to a known non-breast primary."""
        for ext in cond.get("extension") or ():
            if isinstance(ext, dict) and str(ext.get("url", "")).endswith(_RELATED_PRIMARY):
                ref = (ext.get("valueReference") or {}).get("reference") or ""
                primary = self.all_conditions.get(ref.split("/")[-1])
                if primary is not None and not self.t.codings_in("primary-breast-cancer", primary.get("code")):
                    return True
        return False

    def _brain_activity(self, brain: list[dict], disease_status: list[dict]) -> None:
        if not brain:
            self.set("brain_mets.activity", "unknown")
            return
        ids = {fp.reference_of(c) for c in brain}
        focused = [o for o in disease_status
                   if any((f or {}).get("reference") in ids for f in o.get("focus") or ())]
        rows = self._newest_final(focused, "brain disease status")
        if rows:
            date, obs = rows[0]
            a = self.t.translate_codeable("result-answer", obs.get("valueCodeableConcept"))
            activity = {"worsened": "active", "stable": "stable", "improved": "stable"}.get(a or "", "unknown")
            self.set("brain_mets.activity", activity, (fp.reference_of(obs),), f"disease status {a} on {date}")
            return
        statuses = {_code_of(c.get("clinicalStatus")) for c in brain}
        if statuses & {"active", "recurrence", "relapse"}:
            activity = "active"
        elif statuses and statuses <= {"inactive", "remission", "resolved"}:
            activity = "stable"
        else:
            activity = "unknown"
        self.set("brain_mets.activity", activity, sorted(ids), "from Condition.clinicalStatus")

    # -- medications ----------------------------------------------------------
    def _med_concepts(self, r: dict) -> tuple[list[Drug], str]:
        """Drugs of a medication[x] (CodeableConcept or a Medication, contained or referenced)."""
        cc = r.get("medicationCodeableConcept")
        med = None
        if cc is None:
            ref = (r.get("medicationReference") or {}).get("reference") or ""
            if ref.startswith("#"):
                med = next((c for c in r.get("contained") or () if isinstance(c, dict)
                            and c.get("id") == ref[1:] and c.get("resourceType") == "Medication"), None)
            else:
                med = self.medications.get("Medication/" + ref.split("/")[-1]) if ref else None
            cc = (med or {}).get("code")
            if cc is None and isinstance((r.get("medicationReference") or {}).get("display"), str):
                cc = {"text": r["medicationReference"]["display"]}
        drugs = self.t.drugs_for_codeable(cc)
        if not drugs and med:
            for ing in med.get("ingredient") or ():
                drugs += self.t.drugs_for_codeable((ing or {}).get("itemCodeableConcept"))
        text = next(iter(fp.texts(cc)), "") if cc else ""
        return drugs, text

    def _episode(self, r: dict, draft: bool = False) -> MedEpisode | None:
        rtype = r.get("resourceType")
        drugs, text = self._med_concepts(r)
        if not drugs:
            return None
        ingredients = tuple(dict.fromkeys(i for d in drugs for i in d.ingredients))
        classes = tuple(dict.fromkeys(k for d in drugs for k in d.classes))
        status = r.get("status")
        start = end = None
        period_days = None
        if rtype == "MedicationStatement":
            state = {"active": "active", "intended": "active", "on-hold": "active", "completed": "past",
                     "stopped": "past", "unknown": "past"}.get(status)
            start = fp.parse_date(r.get("effectiveDateTime"))
            if start is None:
                start, end = fp.period_bounds(r.get("effectivePeriod"))
            dosage = r.get("dosage")
        elif rtype == "MedicationRequest":
            state = {"active": "active", "on-hold": "active", "completed": "past", "stopped": "past"}.get(status)
            dosage = r.get("dosageInstruction")
            for d in dosage or ():
                s, e = fp.period_bounds((((d or {}).get("timing") or {}).get("repeat") or {}).get("boundsPeriod"))
                start, end = start or s, end or e
            vs, ve = fp.period_bounds((r.get("dispenseRequest") or {}).get("validityPeriod"))
            start = start or vs or fp.parse_date(r.get("authoredOn"))
            end = end or ve
        else:  # MedicationAdministration
            state = "past" if status in ("completed", "in-progress", "on-hold") else None
            start = fp.parse_date(r.get("effectiveDateTime"))
            if start is None:
                start, end = fp.period_bounds(r.get("effectivePeriod"))
            end = end or start
            dosage = None
        if draft:
            state = "draft"
        if state is None:
            return None
        if state == "active" and end and end < self.today:
            state = "past"
        for d in dosage or ():
            rep = (((d or {}).get("timing") or {}).get("repeat") or {})
            period_days = period_days or _period_days(rep)
        cycles = None
        for ext in r.get("extension") or ():
            if isinstance(ext, dict) and ext.get("url") == COMPLETED_CYCLES_URL and isinstance(ext.get("valueInteger"), int):
                cycles = ext["valueInteger"]
        return MedEpisode(fp.reference_of(r), ingredients, classes, state, start, end, text, rtype, cycles, period_days)

    def _medication_history(self) -> list[MedEpisode]:
        episodes = []
        for r in self.med_resources:
            try:
                e = self._episode(r)
            except (AttributeError, TypeError, ValueError) as exc:
                self.finding("malformed-resource", f"{fp.reference_of(r)} could not be read ({type(exc).__name__})",
                             (fp.reference_of(r),))
                continue
            if e is not None:
                episodes.append(e)
        for state in ("active", "past"):
            chosen = [e for e in episodes if e.state == state]
            self.set(f"meds.{state}.ingredients", sorted({i for e in chosen for i in e.ingredients}), [e.ref for e in chosen])
            self.set(f"meds.{state}.classes", sorted({k for e in chosen for k in e.classes}), [e.ref for e in chosen])
        self.set("meds.ever.ingredients", sorted({i for e in episodes for i in e.ingredients}), [e.ref for e in episodes])
        self.set("meds.ever.classes", sorted({k for e in episodes for k in e.classes}), [e.ref for e in episodes])
        return episodes

    def _draft_orders(self) -> list[DraftOrder]:
        bundle = self.context.get("draftOrders") or {}
        drafts: list[DraftOrder] = []
        for entry in bundle.get("entry") or () if isinstance(bundle, dict) else ():
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict) or res.get("resourceType") not in ("MedicationRequest",):
                continue
            ref = fp.reference_of(res)
            lenient = dict(res)
            lenient.setdefault("intent", "order")  # the sandbox omits intent
            lenient.setdefault("status", "draft")
            lenient.setdefault("subject", {"reference": f"Patient/{self.context.get('patientId') or 'unknown'}"})
            problem = fp.check_r4(lenient)
            if problem:
                self.finding(problem[0], problem[1].replace("; skipped", "; read leniently"), (ref,))
            try:
                e = self._episode(res, draft=True)
            except (AttributeError, TypeError, ValueError):
                e = None
            if e is None:
                continue
            drafts.append(DraftOrder(ref, e.ingredients, e.classes, e.text))
        selections = self.context.get("selections")
        chosen = drafts
        if isinstance(selections, list):
            wanted = {s for s in selections if isinstance(s, str)}
            chosen = [d for d in drafts if d.resource_ref in wanted]
        for prefix, group in (("draft", chosen), ("draft.all", drafts)):
            refs = [f"context.draftOrders/{d.resource_ref.split('/', 1)[1]}" for d in group]
            self.set(f"{prefix}.ingredients", sorted({i for d in group for i in d.ingredients}), refs)
            self.set(f"{prefix}.classes", sorted({k for d in group for k in d.classes}), refs)
        self._chosen_drafts = chosen
        return drafts

    # -- therapy line, taxane cycles --------------------------------------------
    def _therapy(self, episodes: list[MedEpisode], drafts: list[DraftOrder], progression: list[dt.date]) -> None:
        met = self.value("metastatic")
        mdate = fp.parse_date(self.value("metastatic.date"))
        anti = [e for e in episodes if "anti-her2" in e.classes]
        regimen = [e for e in episodes if e.state == "active" and set(e.classes) & _ANTICANCER]
        self.set("therapy.regimen.ingredients", sorted({i for e in regimen for i in e.ingredients}), [e.ref for e in regimen])
        draft_anti = {i for d in self._chosen_drafts if "anti-her2" in d.classes for i in d.ingredients}
        lines: list[dict] = []
        if mdate:
            after = sorted((e for e in anti if e.start and e.start >= mdate), key=lambda e: e.start)
            for e in after:
                if not lines:
                    lines.append({"start": e.start, "ingredients": set(e.ingredients), "episodes": [e]})
                    continue
                cur = lines[-1]
                if (e.start - cur["start"]).days <= REGIMEN_WINDOW_DAYS or set(e.ingredients) <= cur["ingredients"] \
                        or not _switched(cur, e.start, progression):
                    cur["ingredients"] |= set(e.ingredients)
                    cur["episodes"].append(e)
                else:
                    lines.append({"start": e.start, "ingredients": set(e.ingredients), "episodes": [e]})
        chemo = [e for e in episodes if "chemotherapy" in e.classes and mdate and e.start and e.start >= mdate]
        line_refs = [e.ref for ln in lines for e in ln["episodes"]]
        self.set("therapy.prior_metastatic_anti_her2", bool(lines), line_refs,
                 None if mdate or not met else "metastatic date unknown")
        self.set("therapy.prior_metastatic_chemo", bool(chemo), [e.ref for e in chemo])
        undated_anti = [e for e in anti if e.start is None]
        line: int | None
        note = None
        if not met:
            line, note = None, "not metastatic"
        elif mdate is None:
            line, note = (1, "no anti-HER2 therapy on record") if not anti else (None, "metastatic date unknown")
        elif undated_anti:
            line, note = None, "an anti-HER2 medication has no start date"
        elif not lines:
            line = 1
        else:
            cur = lines[-1]
            if draft_anti and not draft_anti <= cur["ingredients"] and _switched(cur, self.today, progression):
                line, note = len(lines) + 1, "drafted anti-HER2 regimen follows a switch or progression"
            else:
                line = len(lines)
        self.set("therapy.line", line, line_refs + [f"context.draftOrders/{d.resource_ref.split('/', 1)[1]}"
                                                    for d in self._chosen_drafts if "anti-her2" in d.classes], note)
        self._taxane(episodes, lines[-1]["start"] if lines else mdate)

    def _taxane(self, episodes: list[MedEpisode], anchor: dt.date | None) -> None:
        tax = [e for e in episodes if "taxane" in e.classes
               and (anchor is None or (e.start and e.start >= anchor - dt.timedelta(days=REGIMEN_WINDOW_DAYS)))]
        refs = [e.ref for e in tax]
        if not tax:
            self.set("taxane.cycles", None, (), "no taxane in the current line")
            self.set("taxane.months", None)
            return
        starts = [e.start for e in tax if e.start]
        ends = [(e.end if e.end else (self.today if e.state == "active" else e.start)) for e in tax if e.start]
        months = None
        if starts and all(ends):
            months = round((min(max(ends), self.today) - min(starts)).days / DAYS_PER_MONTH, 1)
        self.set("taxane.months", months, refs)
        explicit = [e.cycles for e in tax if e.cycles is not None]
        if explicit:
            self.set("taxane.cycles", max(explicit), refs, "completed-cycles extension")
            return
        admin = sorted({e.start for e in tax if e.kind == "MedicationAdministration" and e.start})
        if admin:
            gaps = [(b - a).days for a, b in zip(admin, admin[1:])]
            if all(g >= MIN_CYCLE_GAP_DAYS for g in gaps):
                self.set("taxane.cycles", len(admin), refs, "one administration per cycle")
            else:
                self.set("taxane.cycles", None, refs, "administrations closer than 14 days: cycles not derivable")
            return
        for e in tax:
            if e.start and e.period_days:
                stop = min(e.end or self.today, self.today)
                if stop >= e.start:
                    n = math.floor((stop - e.start).days / e.period_days) + 1
                    self.set("taxane.cycles", n, refs, f"every {e.period_days:g} days from {e.start} to {stop}")
                    return
        self.set("taxane.cycles", None, refs, "no administrations, cycle extension or dosing interval")

    def _ild_on_tdxd(self, episodes: list[MedEpisode]) -> None:
        tdxd = [e.start for e in episodes if "fam-trastuzumab deruxtecan" in e.ingredients and e.start]
        hits = []
        for c in getattr(self, "_ild_conditions", []):
            onset = fp.parse_date(c.get("onsetDateTime")) or fp.period_bounds(c.get("onsetPeriod"))[0] \
                or fp.parse_date(c.get("recordedDate"))
            if onset and tdxd and min(tdxd) <= onset:
                hits.append(fp.reference_of(c))
        self.set("ild.on_tdxd", bool(hits), hits)

    def value(self, name: str) -> Any:
        f = self.facts.get(name)
        return None if f is None else f.value


_RELATED_PRIMARY = ("relatedPrimaryCancerCondition", "related-primary-cancer-condition")
_ANTICANCER = frozenset({"anti-her2", "chemotherapy", "endocrine", "gnrh-agonist", "cdk46-inhibitor", "pi3k-inhibitor"})


def _switched(line: dict, when: dt.date, progression: list[dt.date]) -> bool:
    """A new line starts after progression, or when an anti-HER2 agent of the line was stopped."""
    if any(line["start"] < p <= when for p in progression):
        return True
    return any(e.state == "past" and e.end and e.end <= when + dt.timedelta(days=REGIMEN_WINDOW_DAYS)
               for e in line["episodes"])


def _word_answer(text: str) -> str | None:
    low = text.lower()
    for word, answer in _WORDS:
        if word in low:
            return answer
    return None


def _code_of(codeable: Any) -> str | None:
    for c in fp.codings(codeable):
        if c.get("code"):
            return c["code"]
    return None


def _period_days(repeat: dict) -> float | None:
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    if not isinstance(period, (int, float)) or period <= 0 or (repeat.get("frequency") not in (None, 1)):
        return None
    factor = {"d": 1, "wk": 7, "mo": DAYS_PER_MONTH}.get(unit)
    return period * factor if factor else None


def _percent_category(v: float, comparator: str | None, low_allowed: bool) -> str | None:
    """ASCO/CAP 2020: <1 % negative; 1–10 % ER-low; >10 % positive (PR: ≥1 % positive)."""
    if comparator in ("<", "<="):
        if v <= 1:
            return "negative"
        return None  # "<10 %" could be negative or low: not guessed
    if comparator in (">", ">="):
        if v >= 10 or (v >= 1 and not low_allowed):
            return "positive"
        return None  # ">5 %" could be ER-low or positive: not guessed
    if v < 1:
        return "negative"
    if low_allowed and v <= 10:
        return "low"
    return "positive"


# -- HER2 grouping and ASCO/CAP evaluation -------------------------------------

def _group_her2(items: list[_Her2Item]) -> list[_Her2Group]:
    """One group per specimen (or per date without a specimen); pair a lone ISH with a nearby IHC."""
    groups: dict[Any, _Her2Group] = {}
    for it in items:
        key = ("specimen", it.specimen) if it.specimen else ("date", it.date)
        groups.setdefault(key, _Her2Group(key)).items.append(it)
    ish_kinds = {"her2-ish", "her2-ish-ratio", "her2-copy-number"}
    lone = [g for g in groups.values() if g.key[0] == "date" and g.kinds() <= ish_kinds]
    for g in lone:
        candidates = [h for h in groups.values() if h is not g and h.key[0] == "date" and "her2-ihc" in h.kinds()
                      and not (h.kinds() & ish_kinds) and h.date and g.date
                      and abs((g.date - h.date).days) <= REFLEX_PAIRING_DAYS]
        if candidates:
            target = min(candidates, key=lambda h: abs((g.date - h.date).days))
            target.items.extend(g.items)
            del groups[g.key]
    return list(groups.values())


def _ish_group(ratio: float | None, copies: float | None) -> int | None:
    """ASCO/CAP 2018 dual-probe ISH groups 1–5 from HER2/CEP17 ratio and HER2 copies per cell."""
    if ratio is None or copies is None:
        return None
    if ratio >= 2.0:
        return 1 if copies >= 4.0 else 2
    if copies >= 6.0:
        return 3
    if copies >= 4.0:
        return 4
    return 5


def _evaluate_her2_group(g: _Her2Group) -> _Her2Result | None:
    """Status of one specimen per ASCO/CAP 2018/2023; an explicit 48676-1 interpretation wins."""
    def newest(kind):
        xs = [i for i in g.items if i.kind == kind]
        xs.sort(key=lambda i: i.date or dt.date.min)
        return xs[-1].value if xs else None

    ihc_v = newest("her2-ihc")
    ihc = ihc_v[1] if ihc_v and ihc_v[0] == "score" else None
    ihc_answer = ihc_v[1] if ihc_v and ihc_v[0] == "answer" else None
    ratio, copies = newest("her2-ish-ratio"), newest("her2-copy-number")
    group = _ish_group(ratio, copies)
    ish_answer = newest("her2-ish")
    interp = newest("her2-interpretation")
    parts = [f"IHC {ihc}" if ihc else (f"IHC {ihc_answer}" if ihc_answer else None),
             f"ISH group {group} (ratio {ratio:g}, {copies:g} copies)" if group else None,
             f"ISH {ish_answer}" if ish_answer and not group else None,
             f"interpretation {interp}" if interp else None]
    label_core = ", ".join(p for p in parts if p) or "no readable value"

    ish_pos: bool | None = None
    if group is not None:
        if group == 1:
            ish_pos = True
        elif group == 5:
            ish_pos = False
        elif ihc is None:
            ish_pos = None  # groups 2–4 need the concurrent IHC
        elif group == 3:
            ish_pos = ihc in ("2+", "3+")
        else:
            ish_pos = ihc == "3+"
    elif ish_answer in ("positive", "present"):
        ish_pos = True
    elif ish_answer in ("negative", "absent"):
        ish_pos = False

    def neg_status() -> str:
        if ihc == "0":
            return "zero"
        if ihc in ("1+", "2+"):
            return "low"
        return "negative"

    if interp in ("positive", "present"):
        status = "positive"
    elif interp in ("negative", "absent"):
        status = neg_status() if ihc != "3+" else "negative"
    elif interp == "equivocal" and ish_pos is None:
        status = "equivocal_pending"
    elif ihc == "3+" or ish_pos is True:
        status = "positive"
    elif ihc == "2+":
        status = "low" if ish_pos is False else "equivocal_pending"
    elif ihc in ("0", "1+"):
        status = neg_status()
    elif ihc_answer == "positive":
        status = "positive"
    elif ihc_answer == "equivocal":
        status = "equivocal_pending" if ish_pos is None else ("low" if ish_pos is False else "positive")
    elif ish_pos is False or ihc_answer == "negative":
        status = "negative"
    elif group in (2, 3, 4) and ihc is None:
        status = "equivocal_pending"
    else:
        status = "unknown"
    date = g.date
    return _Her2Result(date, status, ihc, group, g.refs,
                       f"{date or 'undated'}: {label_core} → {status} ({', '.join(g.refs)})")
