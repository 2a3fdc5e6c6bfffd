"""Recommendations → CDS Hooks 2.0 cards.

Why a separate module: the rulebook says *what* to recommend; this module
owns *how* a card must look to be valid CDS Hooks 2.0 (uuid, summary < 140,
``selectionBehavior`` with suggestions, ``resourceId`` on deletes, override
reasons with ``display``) and how it explains itself ("Why this card", the
evidence in numbers, the rule and rulebook version in ``extension``).

Two safety properties live here because they depend on the patient's
medication lists rather than on any single rule:

* a ``create`` for an ingredient the patient already takes or is already
  ordering is dropped (after ingredient normalization by criteria);
* a ``delete`` only ever targets a draft order of this hook's context;
* an ``update`` (``stop_active``) only ever stops a medication the record
  shows as *active*, and says plainly when that record is a MedicationStatement
  (a medication-list entry, not an order the EHR can cancel).

The ``detail`` is read in a narrow EHR panel, so it leads with the rule's own
advice (at most five short lines, checked by the rulebook), then one line per
evidence source with its link, then "Why this card" in clinical words: each
fact by its label from the rulebook's fact contract, and the results behind it
by their own display text and date ("HER2 IHC: Score 3+, 7 Apr 2025"), never
by profile key.  The full explanation lives in the SMART app.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
import json
import re
import uuid as uuid_mod
from typing import AbstractSet, Any, Iterable, Mapping
from urllib.parse import urlencode

from . import parse as fp
from .criteria.profile import DRAFT_REF
from .rules.conditions import fact_value
from .rules.model import Recommendation, RuleFacts, Rulebook, Suggestion
from .rules.wording import format_value, human_date, human_dates_in

SUMMARY_LIMIT = 139
# Longest a card's detail may be: advice (<= 500 characters in the rulebook), notes, the
# evidence list and "Why this card" (tests/test_card_consistency.py checks every fixture card).
DETAIL_LIMIT = 2600
EVIDENCE_LINE_LIMIT = 230
WHY_MAX_FACTS = 8
WHY_MAX_REFS = 2
# Records a CDS Hooks ``update`` can stop; a MedicationAdministration is one given dose, not a plan.
_STOPPABLE = frozenset({"MedicationRequest", "MedicationStatement"})


def _new_uuid() -> str:
    return str(uuid_mod.uuid4())


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")  # ( ) are harmless once [ ] are escaped


def md_text(text: str) -> str:
    """Text from the record, safe inside card markdown: every markdown-active character escaped.

    Why: ``detail`` is GitHub-flavoured markdown that the EHR renders; a
    Condition whose ``code.text`` is ``[Re-login](https://evil.example/p)``
    must read as that text, not become a live link inside a hard stop
    (issue 21).  Our own wording (the rulebook's) is markdown on purpose and
    does not pass through here.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("://", ":\\/\\/")  # no autolink either


def _evidence_key(ev: dict) -> str:
    """The key numbers of one source in one line: its ``key``, else PFS/OS/HR, else its first sentence."""
    if ev.get("key"):
        return ev["key"]
    numbers = "; ".join(p for p in (ev.get("pfs"), ev.get("os"), ev.get("hazard_ratio")) if p)
    if numbers:
        return numbers
    return ev["summary"].split(". ")[0].rstrip(".")


def _evidence_block(rulebook: Rulebook, ids: tuple[str, ...]) -> tuple[str, str, str | None]:
    """A rule's evidence as its card shows it: the detail's lines, the source label's names and
    the first source's url.  Knowledge only, so made once per rulebook and evidence list."""
    key = ("evidence", ids)
    block = rulebook.derived.get(key)
    if block is None:
        labels = ", ".join(dict.fromkeys(rulebook.cited(e)["label"] for e in ids))
        block = ("\n".join(_evidence_lines(rulebook, ids)), labels, rulebook.cited(ids[0]).get("url"))
        rulebook.derived[key] = block
    return block


def _evidence_lines(rulebook: Rulebook, ids: Iterable[str]) -> list[str]:
    lines = []
    for ref in ids:
        ev = rulebook.cited(ref)
        label = f"[{ev['label']}]({ev['url']})" if ev.get("url") else ev["label"]
        if ev.get("section"):  # a claim of a label: the label and its section are the citation
            line = f"- {label}, {ev['section']}: {_evidence_key(ev)}"
        else:
            cite = re.sub(r"\s*\([^)]*\)?", "", ev["citation"].split(";")[0]).strip()
            line = f"- {label}: {_evidence_key(ev)} ({cite})"
        lines.append(_shorten(line, EVIDENCE_LINE_LIMIT + len(ev.get("url", ""))))
    return lines


def _human_date(value: Any) -> str | None:
    d = fp.parse_date(value) if not isinstance(value, dt.date) else value
    return human_date(d) if d else None


def _concept_name(codeable: Any) -> str | None:
    names = fp.texts(codeable)
    return names[0] if names else None


def _result_value(obs: dict) -> str | None:
    for key in ("valueString", "valueInteger", "valueBoolean"):
        if obs.get(key) is not None:
            return str(obs[key])
    number = fp.quantity_number(obs.get("valueQuantity"))  # a malformed value (true, a list) names no value
    if number is not None:
        unit = obs["valueQuantity"].get("unit") or obs["valueQuantity"].get("code") or ""
        return f"{number:g}{unit}" if unit == "%" else f"{number:g} {unit}".strip()
    if obs.get("valueCodeableConcept"):
        return _concept_name(obs["valueCodeableConcept"])
    return None


def _describe_ref(ref: str, index: Mapping[str, dict], drafts: Mapping[str, Any]) -> str | None:
    """A FHIR reference as a clinician reads it: display text, value and date; None if unknown."""
    if ref.startswith(DRAFT_REF):
        d = drafts.get("MedicationRequest/" + ref.split("/", 1)[1])
        return f"ordering {_draft_label(d)}" if d is not None else None
    res = index.get(ref)
    if res is None:
        return None
    rtype = res.get("resourceType")
    if rtype == "Observation":
        parts = [p for p in (_concept_name(res.get("code")), _result_value(res)) if p]
        when = _human_date(fp.observation_date(res))
    elif rtype == "Condition":
        parts = [p for p in (_concept_name(res.get("code")), _concept_name(res.get("severity")),
                             _concept_name(res.get("clinicalStatus"))) if p]
        when = _human_date(fp.condition_onset(res))
    elif rtype in ("MedicationStatement", "MedicationRequest", "MedicationAdministration"):
        parts = [p for p in (_concept_name(res.get("medicationCodeableConcept")), res.get("status")) if p]
        start, end = fp.period_bounds(res.get("effectivePeriod"))
        when = _human_date(start or fp.parse_date(res.get("effectiveDateTime")) or fp.parse_date(res.get("authoredOn")))
        if when and end:
            when = f"{when} to {_human_date(end)}"
    elif rtype == "Patient":
        parts, when = [], _human_date(res.get("birthDate"))
        when = f"born {when}" if when else None
    else:
        parts, when = [_concept_name(res.get("code")) or rtype], None
    text = ", ".join(_shorten(str(p), 70) for p in parts)
    if when:
        text = f"{text}, {when}" if text else when
    return text or None


def _describe_refs(refs: Iterable[str], index: Mapping[str, dict], drafts: Mapping[str, Any]) -> list[str]:
    """Each reference as a clinician reads it; per-dose administrations of one drug as one line.

    An infusion suite charts every dose, so a course is six or more
    MedicationAdministrations: "docetaxel: 6 doses, 7 Jun 2025 to 20 Sep 2025"
    says what they show without listing each one.
    """
    out: list[str] = []
    doses: dict[str, list[str]] = {}
    for ref in sorted(refs):  # sorted: the same card whatever order the records were listed in
        res = index.get(ref)
        if res is not None and res.get("resourceType") == "MedicationAdministration":
            name = _concept_name(res.get("medicationCodeableConcept")) or "medication"
            doses.setdefault(name, []).append(
                fp.parse_date(res.get("effectiveDateTime")) or fp.period_bounds(res.get("effectivePeriod"))[0])
            continue
        described = _describe_ref(ref, index, drafts)
        if described:
            out.append(md_text(described))
    for name, dates in doses.items():
        known = sorted(d for d in dates if d)
        n = len(dates)
        text = f"{name}: {n} dose{'s' if n != 1 else ''} given"
        if known:
            first, last = _human_date(known[0]), _human_date(known[-1])
            text += f", {first}" if first == last else f", {first} to {last}"
        out.append(md_text(text))
    return out


class Descriptions:
    """References → the lines "Why this card" describes them with, for the cards of one call.

    Several facts rest on the same records (five of eleven at the bench patient's
    order-select), so each set of references is described once.  A set naming only
    records (each in ``index``, the profile's records) is kept in ``shared``: in the
    profile's ``history_cache``, which lives as long as its remembered history, so the
    chart's later hooks (every order-select selection, order-sign) describe the same
    records without reading them again; there are as many such sets as facts name.  Any
    other set (a draft order, a finding's ``MedicationRequest/<draft id>``, a prefetch
    key) is described for this call only: it changes with the drafts, and kept it would
    grow with every new draft id over one chart.
    """

    def __init__(self, index: Mapping[str, dict], drafts: Mapping[str, Any], shared: dict | None = None):
        self.index, self.drafts = index, drafts
        self.shared = {} if shared is None else shared
        self.call: dict = {}

    def lines(self, refs: Iterable[str]) -> tuple[str, ...]:
        key, index = tuple(refs), self.index
        memo = self.shared if all(r in index for r in key) else self.call
        texts = memo.get(key)
        if texts is None:
            texts = memo[key] = tuple(_describe_refs(key, index, self.drafts))
        return texts


def _why_lines(rec: Recommendation, rulebook: Rulebook, describe: Descriptions) -> list[str]:
    """Each fact the rule read, by its clinical label, with the results behind it.

    Facts the rule tests itself come first and are shown even when empty ("LVEF:
    not recorded" is why S2-DUE fired) unless the rule only asks them not to be
    true (no conflicting results); facts read through a named scope are shown
    only when they hold a value, to keep the list short.  ``describe`` names the
    records behind each fact (``Descriptions``).
    """
    direct = rec.rule.direct_tests
    own = {name for name, ops in direct.items() if ops - {"ne"}}
    items = sorted(rec.facts, key=lambda f: f[0] not in own)
    names = {name for name, _, _ in items}
    values = {name: value for name, value, _ in items}
    lines: list[str] = []
    previous: list[str] = []
    for name, value, refs in items:
        empty = value is None or value is False or value == [] or value == ()
        if empty and (name not in own or (isinstance(value, (list, tuple)) and "exists" not in direct[name])):
            continue
        if name.endswith(".classes") and name[: -len("classes")] + "ingredients" in names:
            continue  # the drugs themselves are listed; their classes would repeat them
        if name.startswith("draft.all.") and values.get("draft." + name[len("draft.all."):]) == value:
            continue  # all drafts are the selected ones: one line says it
        if len(lines) >= WHY_MAX_FACTS:
            break
        label = rulebook.fact_labels.get(name)
        if not label:  # every contract fact has a label (rulebook check); never show a key
            continue
        texts = describe.lines(refs)
        where = ""
        if texts and texts == previous:
            where = " (same records)"  # taxane cycles, schedule, dates: one course, named once
        elif texts:
            more = len(texts) - WHY_MAX_REFS
            where = " (" + "; ".join(texts[:WHY_MAX_REFS]) + (f"; +{more} more" if more > 0 else "") + ")"
        lines.append(f"- {label}: {format_value(rulebook.word(name, value))}{where}")
        previous = texts
    return lines


def _finding_lines(findings: Iterable[Any]) -> list[str]:
    lines = []
    for f in findings:
        message = getattr(f, "message", None) or str(f)
        refs = tuple(getattr(f, "refs", ()) or ())
        where = f" ({', '.join(refs)})" if refs else ""
        lines.append(f"- {md_text(human_dates_in(message))}{md_text(where)}")
    return lines


def render_detail(rec: Recommendation, rulebook: Rulebook, findings: Iterable[Any] = (),
                  describe: Descriptions | None = None) -> str:
    rule = rec.rule
    out = [rule.card["detail"].strip()]
    if rec.notes:
        out.append("\n".join(f"- {n}" for n in rec.notes))
    if rule.show_findings:
        lines = _finding_lines(findings)
        if lines:
            out.append("**Results and findings involved**\n" + "\n".join(lines))
    out.append("**Evidence**\n" + _evidence_block(rulebook, rule.evidence)[0])
    why = _why_lines(rec, rulebook, describe if describe is not None else Descriptions({}, {}))
    # The rule in words; its version and the rulebook's travel in the card's source and extension.
    why.append(f"- Rule {rule.id}: {rule.title}")
    out.append("**Why this card**\n" + "\n".join(why))
    return "\n\n".join(out)


def _matches(draft: Any, matcher: Mapping[str, list]) -> bool:
    ingredients = set(getattr(draft, "ingredients", ()) or ())
    classes = set(getattr(draft, "classes", ()) or ())
    hit = bool(ingredients & set(matcher.get("ingredients_any", ()))) or bool(
        classes & set(matcher.get("classes_any", ())))
    return hit and not (ingredients & set(matcher.get("ingredients_none", ())))


def _draft_label(draft: Any) -> str:
    return getattr(draft, "text", None) or ", ".join(getattr(draft, "ingredients", ()) or ()) or draft.resource_ref


def _delete_ref(draft: Any) -> str:
    """A relative reference for ``resourceId`` (the draft's ``Type/id``)."""
    ref = draft.resource_ref
    if ref.startswith(DRAFT_REF):
        return "MedicationRequest/" + ref.split("/", 1)[1]
    return ref


def _medication_request(med: dict, patient_id: str, dosage: str | None, intent: str) -> dict:
    resource = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": intent,
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {"coding": [dict(c) for c in med["coding"]], "text": med["text"]},
    }
    if dosage:
        resource["dosageInstruction"] = [{"text": dosage}]
    return resource


def _service_request(sr: dict, patient_id: str) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [dict(c) for c in sr["coding"]], "text": sr["text"]},
    }


def _stop_action(episode: Any, resource: dict) -> dict:
    """CDS Hooks ``update``: the whole active resource with status ``stopped``."""
    stopped = fp.json_copy(resource)
    stopped["status"] = "stopped"
    name = _concept_name(resource.get("medicationCodeableConcept")) or ", ".join(episode.ingredients)
    if resource["resourceType"] == "MedicationRequest":
        desc = f"Stop the active order: {name} (status set to stopped)"
    else:
        desc = (f"Mark {name} as stopped on the medication list. Only a medication statement is on record, "
                f"not an order: stop the treatment in the treatment plan as well")
    return {"type": "update", "description": desc, "resource": stopped}


def active_medications(medications: Iterable[Any], index: Mapping[str, dict]) -> list[tuple[Any, dict]]:
    """(episode, resource) for each active MedicationRequest/MedicationStatement on record.

    "Active" is the profile's episode state (criteria/medications.py owns which statuses are
    current therapy, on-hold included); this only keeps the records an ``update`` can stop.
    """
    out = []
    for m in medications or ():
        res = index.get(getattr(m, "ref", ""))
        if res and getattr(m, "state", None) == "active" and res.get("resourceType") in _STOPPABLE:
            out.append((m, res))
    # One order whatever the order the FHIR server or the prefetch listed them in.
    return sorted(out, key=lambda pair: (pair[1]["resourceType"], pair[1]["id"]))


def build_actions(suggestion: Suggestion, rulebook: Rulebook, patient_id: str, draft_orders: Iterable[Any],
                  taken: AbstractSet[str], active: Iterable[tuple[Any, dict]] = ()) -> tuple[list[dict], bool]:
    """Concrete actions of one suggestion, and whether anything was dropped as a duplicate.

    ``taken`` = ingredients active or already in draftOrders: never suggested again.
    ``active`` = (episode, resource) of active medications, the only targets of ``stop_active``.
    """
    actions: list[dict] = []
    deleted: set[str] = set()
    dropped = False
    for spec in suggestion.actions:
        if "delete_drafts" in spec:
            for d in draft_orders:
                ref = _delete_ref(d)
                if ref in deleted or not _matches(d, spec["delete_drafts"]):
                    continue
                deleted.add(ref)
                actions.append({"type": "delete",
                                "description": spec.get("description") or f"Remove the draft order: {_draft_label(d)}",
                                "resourceId": ref})
        elif "create_medication" in spec:
            med = rulebook.medications[spec["create_medication"]]
            if med["ingredient"] in taken:
                dropped = True
                continue
            dosage = spec.get("dosage")
            desc = spec.get("description") or (
                f"Create a draft order for {med['text']}" + (f": {dosage}" if dosage else ""))
            actions.append({"type": "create", "description": desc,
                            "resource": _medication_request(med, patient_id, dosage, spec.get("intent", "proposal"))})
        elif "stop_active" in spec:
            wanted = set(spec["stop_active"]["ingredients_any"])
            for episode, resource in active:
                ref = f"{resource['resourceType']}/{resource['id']}"
                if ref in deleted or not set(episode.ingredients) & wanted:
                    continue
                deleted.add(ref)
                actions.append(_stop_action(episode, resource))
        elif "create_service_request" in spec:
            sr = rulebook.service_requests[spec["create_service_request"]]
            actions.append({"type": "create", "description": spec.get("description") or f"Order: {sr['text']}",
                            "resource": _service_request(sr, patient_id)})
    return actions, dropped


@dataclass(frozen=True)
class CardInputs:
    """What every card of one call is rendered with, derived once from the profile and the rule facts.

    ``index`` is ``profile.records`` (the results "Why this card" names, the whole
    resources a ``stop_active`` update sends back); ``active`` the records an update
    may stop; ``taken`` the ingredients active or already drafted (never suggested
    again); ``findings`` what a ``show_findings`` card lists.
    """

    patient_id: str
    draft_orders: tuple[Any, ...]
    drafts: Mapping[str, Any]  # delete reference (MedicationRequest/<id>) → draft order
    taken: frozenset[str]
    findings: tuple[Any, ...]
    index: Mapping[str, dict]
    active: tuple[tuple[Any, dict], ...]
    base_url: str | None = None
    fhir_server: str | None = None
    # the references' descriptions for "Why this card" (``Descriptions``): the records' from the profile's cache
    describe: Descriptions | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, profile: Any, basis: RuleFacts, base_url: str | None = None,
           fhir_server: str | None = None) -> "CardInputs":
        index = profile.records
        drafts = tuple(profile.draft_orders)
        taken = frozenset(fact_value(basis.facts, "meds.active.ingredients") or ()) | frozenset(
            fact_value(basis.facts, "draft.all.ingredients") or ())
        by_ref = {_delete_ref(d): d for d in drafts}
        return cls(profile.patient_id or "unknown", drafts, by_ref, taken,
                   tuple(basis.findings), index, tuple(active_medications(profile.medications, index=index)),
                   base_url, fhir_server, Descriptions(index, by_ref, _shared_descriptions(profile)))


def _shared_descriptions(profile: Any) -> dict | None:
    """The profile's cache of its records' descriptions (``PatientProfile.history_cache``), if it has one."""
    cache = getattr(profile, "history_cache", None)
    return None if cache is None else cache.setdefault("record descriptions", {})


def render_card(rec: Recommendation, rulebook: Rulebook, inputs: CardInputs) -> dict:
    """One recommendation as a CDS Hooks card, rendered with what every card of the call shares."""
    rule = rec.rule
    patient_id, draft_orders = inputs.patient_id, inputs.draft_orders
    _lines, labels, first_url = _evidence_block(rulebook, rule.evidence)
    card: dict[str, Any] = {
        "uuid": _new_uuid(),
        "summary": (rec.summary or rule.card["summary"])[:SUMMARY_LIMIT],
        "indicator": rule.card["indicator"],
        "detail": render_detail(rec, rulebook, inputs.findings, inputs.describe),
        "source": {
            "label": f"HER2 MBC rulebook {rule.id}: {labels}"[:200],
            "topic": {"system": rulebook.topic_system, "code": rule.id, "display": rule.title},
        },
    }
    if first_url:
        card["source"]["url"] = first_url
    suggestions = []
    for s in rec.suggestions:
        actions, _dropped = build_actions(s, rulebook, patient_id, draft_orders, inputs.taken, inputs.active)
        if not actions:
            continue
        item = {"label": s.label, "uuid": _new_uuid(), "actions": actions}
        if s.recommended:
            item["isRecommended"] = True
        suggestions.append(item)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = rule.selection_behavior
    if rule.override_reasons:
        card["overrideReasons"] = [
            {"system": rulebook.override_reason_system, "code": code,
             "display": rulebook.override_reasons[code]["display"]}
            for code in rule.override_reasons
        ]
    if inputs.base_url:
        card["links"] = app_links(inputs.base_url, inputs.fhir_server, patient_id, rule.id)
    card["extension"] = {rulebook.extension_key: {
        "id": rule.id, "version": rule.version,
        "rulebookId": rulebook.id, "rulebookVersion": rulebook.version,
    }}
    return card


def app_links(base_url: str, fhir_server: str | None, patient_id: str, rule_id: str | None = None) -> list[dict]:
    """The SMART app link, plus a plain link for clients that cannot launch SMART apps.

    The SMART link's ``appContext`` (JSON, passed back by the EHR with the
    access token) names the patient and the card's rule: the app checks the
    patient against the one the token grants and shows that card first.
    ``fhir_server`` is given only when a standalone launch against it can work
    (an allowed SMART issuer, see ``smart.oauth.IssuerPolicy.allows``); only
    then is the ``absolute`` link to ``/smart/open`` offered, which still goes
    through the server's own authorization.
    """
    base = base_url.rstrip("/")
    context = {k: v for k, v in (("patient", patient_id if patient_id != "unknown" else None),
                                 ("rule", rule_id)) if v}
    smart = {"label": "Open HER2 MBC overview", "url": f"{base}/smart/launch", "type": "smart"}
    if context:
        smart["appContext"] = json.dumps(context, separators=(",", ":"))
    links = [smart]
    if fhir_server and patient_id and patient_id != "unknown":
        query = urlencode({"iss": fhir_server, "patient": patient_id})
        links.append({"label": "Open HER2 MBC overview (without SMART launch)",
                      "url": f"{base}/smart/open?{query}", "type": "absolute"})
    return links


_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class IssuedCard:
    """A rendered card and what issued it, so nothing downstream reads the rule back out of the JSON.

    The hooks record (``row``), de-duplicate at order-sign (``rule_id``) and
    count it; the SMART page shows it with its rule.  ``card`` is the CDS Hooks
    JSON as sent; it also carries the rule in its ``extension`` for the EHR.
    """

    card: dict
    rule_id: str
    rulebook_version: str

    @property
    def uuid(self) -> str:
        return self.card["uuid"]

    @property
    def indicator(self) -> str:
        return self.card["indicator"]

    def row(self) -> tuple[str, str, str]:
        """(card uuid, rule id, rulebook version): an issued-cards row of the store."""
        return self.uuid, self.rule_id, self.rulebook_version


def render(recommendations: Iterable[Recommendation], rulebook: Rulebook, profile: Any,
           basis: RuleFacts | None = None, *, base_url: str | None = None,
           fhir_server: str | None = None) -> list[IssuedCard]:
    """All cards of one hook call, most severe first (stable within a severity).

    ``profile`` is the patient profile of this call: its ``records`` (what the
    intake accepted, flattened and de-duplicated once) name the results in
    "Why this card" and are the whole resources a ``stop_active`` update sends
    back; its ``medications`` say which records are active and their
    ingredients, its ``draft_orders`` what may be removed.  ``basis`` is what
    the rules read (``advice`` passes the profile's facts and findings with the
    call's additions: what prefetch could not read); by default the profile's own.
    """
    inputs = CardInputs.of(profile, basis if basis is not None else RuleFacts.of(profile), base_url, fhir_server)
    out = []
    for r in recommendations:
        out.append(IssuedCard(render_card(r, rulebook, inputs), r.rule.id, str(rulebook.version)))
    return sorted(out, key=lambda c: _ORDER[c.indicator])
