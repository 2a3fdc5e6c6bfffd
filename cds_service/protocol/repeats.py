"""order-sign after order-select: which cards the clinician has already seen.

Why: every warning or critical rule about the draft orders fires at
order-select *and* order-sign (many EHRs integrate only order-sign), so an
EHR that calls both would show the same alert twice within minutes.  A
*warning* already returned at order-select for the same client, patient, rule
and draft orders within ``order_sign_repeat_window_hours`` (default 12 h) is
therefore not repeated at order-sign.

A *critical* card is the last safety net and is shown again at order-sign
unless the clinician answered it: feedback for the order-select card that is
``accepted``, or ``overridden`` with a reason.  An unanswered hard stop never
disappears at signing, and a response the EHR never received (the client gave
up waiting) cannot silence one either, because nobody could answer it.

Scope (issue 21): patient ids are local to an EHR or tenant, so the key holds
everything that says *who* saw the card: the token's issuer, tenant and
subject, the context's ``userId`` and ``encounterId``, and the ``fhirServer``.
Another client, another tenant, another user or another encounter never
suppresses a card.

``repeat_key`` is a SHA-256 digest: the table never holds the patient id in
clear (nor the drug codes).  The draft orders are identified by what they
order (each draft's medication codings or text, a contained Medication's
included), not by their ids, which some EHRs renumber between the two hooks
and which are ``#m1`` for every contained Medication; an order for something
else gives another key, and the card is shown again.  Odd input (a coding
that is a number, a code that is a list) yields a key, never an exception: a
repeat look-up must not cost the cards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..core.criteria.intake import draft_entries
from ..core import parse as fp

KEY_VERSION = "her2-cds/repeat/v2"
# Event cards (once_per) are remembered for as long as the issued-card rows are kept.
EVENT_MEMORY_START = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _concept_identity(concept: dict) -> str:
    """A CodeableConcept as sorted ``system|code`` pairs (``core.parse.codings``: well-formed ones only), else its text."""
    pairs = sorted(f"{c.get('system', '')}|{c['code']}" for c in fp.codings(concept) if c.get("code"))
    return ";".join(pairs) or _text(concept.get("text"))


def _contained_medication(resource: dict, reference: str) -> dict:
    """The contained Medication a ``#id`` reference points to, or {}."""
    if not reference.startswith("#"):
        return {}
    for c in _list(resource.get("contained")):
        if isinstance(c, dict) and c.get("resourceType") == "Medication" and c.get("id") == reference[1:]:
            return c
    return {}


def order_identity(resource: dict) -> str:
    """What one draft orders: its medication's codings, else its text, else the reference's target."""
    concept = _dict(resource.get("medicationCodeableConcept"))
    if concept:
        return _concept_identity(concept)
    ref = _dict(resource.get("medicationReference"))
    reference = _text(ref.get("reference"))
    contained = _contained_medication(resource, reference)
    if contained:
        return _concept_identity(_dict(contained.get("code"))) or _text(ref.get("display"))
    return reference or _text(ref.get("display"))


def draft_identity(context: dict) -> list[str]:
    """What the draft orders order, as sorted text (one entry per draft)."""
    return sorted(order_identity(r) for r in draft_entries(context))


def audience(client: Mapping | None, context: dict, fhir_server) -> list[str]:
    """Who saw the cards: issuer, tenant, subject, user, encounter, FHIR server (empty text when absent)."""
    client = client or {}
    return [_text(client.get("iss")), _text(client.get("tenant")), _text(client.get("sub")),
            _text(context.get("userId")), _text(context.get("encounterId")), _text(fhir_server)]


def repeat_key(scope: list[str], patient_id: str, rule_id: str, context: dict,
               drafts: list[str] | None = None) -> str:
    """The digest that says "this rule, for this patient, about these orders, seen by this audience".

    ``drafts``: ``draft_identity(context)`` when the caller has it already (one per call, not per card).
    """
    drafts = draft_identity(context) if drafts is None else drafts
    payload = json.dumps([KEY_VERSION, scope, patient_id, rule_id, drafts],
                         separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def event_key(scope: list[str], patient_id: str, rule_id: str, event) -> str:
    """The digest that says "this rule, for this patient, about this event (a progression), seen by this clinician".

    ``scope`` is the audience without encounter and FHIR server: a progression
    card is shown to each clinician once per event, whichever visit they open.
    """
    payload = json.dumps([KEY_VERSION, "event", scope[:4], patient_id, rule_id, str(event)],
                         separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def once_per_event(issued: Iterable, rule_of_id, facts: Mapping, patient_id, scope: list[str]) -> dict[str, str]:
    """card uuid → event key, for the cards whose rule says ``once_per`` (patient-view)."""
    if not isinstance(patient_id, str) or not patient_id:
        return {}
    out = {}
    for i in issued:
        fact = getattr(rule_of_id(i.rule_id), "once_per", None)
        value = getattr(facts.get(fact), "value", None) if fact else None
        if value is not None:
            out[i.uuid] = event_key(scope, patient_id, i.rule_id, value)
    return out


def keys_of(issued: Iterable, patient_id, context: dict, scope: list[str]) -> dict[str, str]:
    """card uuid → repeat key, for the ``IssuedCard``s of a named patient."""
    if not isinstance(patient_id, str) or not patient_id:
        return {}
    issued = list(issued)
    drafts = draft_identity(context) if issued else []
    return {i.uuid: repeat_key(scope, patient_id, i.rule_id, context, drafts) for i in issued}


@dataclass(frozen=True)
class Earlier:
    """What order-select did with a card of the same key: its hook instance, and whether it was answered."""
    hook_instance: str | None
    answered: bool


@dataclass(frozen=True)
class Suppressed:
    """A card not repeated at order-sign, and the order-select call that showed it (for log and audit)."""
    rule_id: str
    earlier_hook_instance: str | None


def for_order_sign(cards: list, keys: Mapping[str, str], earlier: Mapping[str, Earlier],
                   mode: str) -> tuple[list, list[Suppressed]]:
    """The order-sign answer and what it left out.

    ``critical-only``: only hard stops, as before.  Otherwise a warning or
    info card shown at order-select is left out; a critical card only when
    the clinician answered it there.  ``cards`` are the call's ``IssuedCard``s.
    """
    if mode == "critical-only":
        return [c for c in cards if c.indicator == "critical"], []
    kept, suppressed = [], []
    for card in cards:
        seen = earlier.get(keys.get(card.uuid)) if keys.get(card.uuid) else None
        if seen is None or (card.indicator == "critical" and not seen.answered):
            kept.append(card)
        else:
            suppressed.append(Suppressed(card.rule_id, seen.hook_instance))
    return kept, suppressed


def is_answer(outcome: str | None, override_code: str | None, user_comment: str | None) -> bool:
    """Feedback that answers a card: accepted, or overridden with a coded reason or a comment."""
    return outcome == "accepted" or (outcome == "overridden" and bool(override_code or user_comment))


def earlier(rows: Iterable[Mapping]) -> dict[str, Earlier]:
    """Repeat key → Earlier, from ``Store.earlier_cards`` rows (oldest first): the newest card names
    the hook instance; any answer to any card of the key counts."""
    out: dict[str, Earlier] = {}
    for r in rows:
        before = out.get(r["repeat_key"])
        answered = (before is not None and before.answered) or is_answer(
            r.get("outcome"), r.get("override_code"), r.get("user_comment"))
        out[r["repeat_key"]] = Earlier(r.get("hook_instance"), answered)
    return out


def window_start(now: dt.datetime, hours: float) -> dt.datetime:
    return now - dt.timedelta(hours=hours)
