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
* a ``delete`` only ever targets a draft order of this hook's context.
"""

from __future__ import annotations

import uuid as uuid_mod
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

from .rules.rulebook import Recommendation, Rulebook, Suggestion, fact_value

SUMMARY_LIMIT = 139


def _new_uuid() -> str:
    return str(uuid_mod.uuid4())


def format_value(value: Any, missing: str = "not recorded") -> str:
    """A fact value as a clinician reads it (cards' "Why this card" and the SMART page)."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _evidence_lines(rulebook: Rulebook, ids: Iterable[str]) -> list[str]:
    lines = []
    for eid in ids:
        ev = rulebook.evidence[eid]
        parts = [p for p in (ev.get("design"), f"N={ev['n']}" if ev.get("n") else None,
                             ev.get("pfs"), ev.get("os"), ev.get("hazard_ratio")) if p]
        cite = f"[{ev['citation']}]({ev['url']})" if ev.get("url") else ev["citation"]
        body = "; ".join(parts)
        lines.append(f"- **{ev['label']}** — {body + '. ' if body else ''}{ev['summary']} {cite}")
    return lines


def _why_lines(rec: Recommendation) -> list[str]:
    lines = []
    for name, value, refs in rec.facts:
        where = f" — {', '.join(refs)}" if refs else ""
        lines.append(f"- `{name}` = {format_value(value)}{where}")
    return lines


def _finding_lines(findings: Iterable[Any]) -> list[str]:
    lines = []
    for f in findings:
        message = getattr(f, "message", None) or str(f)
        refs = tuple(getattr(f, "refs", ()) or ())
        where = f" ({', '.join(refs)})" if refs else ""
        lines.append(f"- {message}{where}")
    return lines


def render_detail(rec: Recommendation, rulebook: Rulebook, findings: Iterable[Any] = ()) -> str:
    rule = rec.rule
    out = [rule.card["detail"].strip()]
    if rec.notes:
        out.append("\n".join(f"- {n}" for n in rec.notes))
    if rule.show_findings:
        lines = _finding_lines(findings)
        if lines:
            out.append("**Results and findings involved**\n" + "\n".join(lines))
    out.append("**Evidence**\n" + "\n".join(_evidence_lines(rulebook, rule.evidence)))
    why = _why_lines(rec)
    why.append(f"- Rule {rule.id} v{rule.version} ({rule.title}), rulebook {rulebook.id} {rulebook.version}")
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
    if ref.startswith("context.draftOrders/"):
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


def build_actions(suggestion: Suggestion, rulebook: Rulebook, patient_id: str, draft_orders: Iterable[Any],
                  taken: set[str]) -> tuple[list[dict], bool]:
    """Concrete actions of one suggestion, and whether anything was dropped as a duplicate.

    ``taken`` = ingredients active or already in draftOrders: never suggested again.
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
        elif "create_service_request" in spec:
            sr = rulebook.service_requests[spec["create_service_request"]]
            actions.append({"type": "create", "description": spec.get("description") or f"Order: {sr['text']}",
                            "resource": _service_request(sr, patient_id)})
    return actions, dropped


def render_card(rec: Recommendation, rulebook: Rulebook, *, patient_id: str, draft_orders: Iterable[Any],
                taken: set[str], findings: Iterable[Any] = (), base_url: str | None = None,
                fhir_server: str | None = None) -> dict:
    rule = rec.rule
    draft_orders = list(draft_orders)
    first_ev = rulebook.evidence[rule.evidence[0]]
    labels = ", ".join(rulebook.evidence[e]["label"] for e in rule.evidence)
    card: dict[str, Any] = {
        "uuid": _new_uuid(),
        "summary": rule.card["summary"][:SUMMARY_LIMIT],
        "indicator": rule.card["indicator"],
        "detail": render_detail(rec, rulebook, findings),
        "source": {
            "label": f"HER2 MBC rulebook {rule.id}: {labels}"[:200],
            "topic": {"system": rulebook.topic_system, "code": rule.id, "display": rule.title},
        },
    }
    if first_ev.get("url"):
        card["source"]["url"] = first_ev["url"]
    suggestions = []
    for s in rec.suggestions:
        actions, _dropped = build_actions(s, rulebook, patient_id, draft_orders, taken)
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
    if base_url:
        card["links"] = app_links(base_url, fhir_server, patient_id)
    card["extension"] = {rulebook.extension_key: {
        "id": rule.id, "version": rule.version,
        "rulebookId": rulebook.id, "rulebookVersion": rulebook.version,
    }}
    return card


def app_links(base_url: str, fhir_server: str | None, patient_id: str) -> list[dict]:
    """The SMART app link, plus a plain link for clients that cannot launch SMART apps.

    The ``absolute`` link starts a standalone launch against the same FHIR server
    (``/smart/open``), so it still goes through the server's own authorization.
    """
    base = base_url.rstrip("/")
    links = [{"label": "Open HER2 MBC overview", "url": f"{base}/smart/launch", "type": "smart"}]
    if fhir_server and patient_id and patient_id != "unknown":
        query = urlencode({"iss": fhir_server, "patient": patient_id})
        links.append({"label": "Open HER2 MBC overview (without SMART launch)",
                      "url": f"{base}/smart/open?{query}", "type": "absolute"})
    return links


_ORDER = {"critical": 0, "warning": 1, "info": 2}


def render(recommendations: Iterable[Recommendation], rulebook: Rulebook, *, facts: Mapping[str, Any],
           patient_id: str, draft_orders: Iterable[Any] = (), findings: Iterable[Any] = (),
           base_url: str | None = None, fhir_server: str | None = None) -> list[dict]:
    """All cards of one hook call, most severe first (stable within a severity)."""
    taken = set(fact_value(facts, "meds.active.ingredients") or ()) | set(
        fact_value(facts, "draft.all.ingredients") or ())
    draft_orders = list(draft_orders)
    findings = list(findings)
    cards = [render_card(r, rulebook, patient_id=patient_id, draft_orders=draft_orders, taken=taken,
                         findings=findings, base_url=base_url, fhir_server=fhir_server) for r in recommendations]
    return sorted(cards, key=lambda c: _ORDER[c["indicator"]])


def issued(cards: Iterable[dict], extension_key: str) -> list[tuple[str, str, str]]:
    """(card uuid, rule id, rulebook version) of each card, for ``Store.record_issued_cards``."""
    out = []
    for c in cards:
        ext = (c.get("extension") or {}).get(extension_key) or {}
        if c.get("uuid") and ext.get("id"):
            out.append((c["uuid"], ext["id"], str(ext.get("rulebookVersion", ""))))
    return out
