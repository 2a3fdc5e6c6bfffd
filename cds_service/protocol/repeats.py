"""order-sign after order-select: which cards the clinician has already seen.

Why: every warning or critical rule about the draft orders fires at
order-select *and* order-sign (many EHRs integrate only order-sign), so an
EHR that calls both would show the same alert twice within minutes.  A card
already returned at order-select for the same patient, rule and draft orders
within ``order_sign_repeat_window_hours`` (default 12 h) is therefore not
repeated at order-sign.  The memory is the issued-cards table (``repeat_key``),
so it holds across gunicorn workers and across instances sharing a database.

``repeat_key`` is a SHA-256 digest: the table never holds the patient id in
clear (nor the drug codes).  The draft orders are identified by what they
order (each draft's medication codings or text), not by their ids, which some
EHRs renumber between the two hooks; an order for something else gives
another key, and the card is shown again.

``ORDER_SIGN_MODES``: ``order-warnings`` (default) shows the order warnings at
order-sign as described; ``critical-only`` restores the old order-sign for
sites that integrate both hooks and want only hard stops when signing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Iterable

from ..criteria.intake import draft_entries

ORDER_SIGN_MODES = ("order-warnings", "critical-only")


def draft_identity(context: dict) -> list[str]:
    """What the draft orders order, as sorted text: each draft's codings (system|code), else its text."""
    out = []
    for r in draft_entries(context):
        cc = r.get("medicationCodeableConcept") if isinstance(r.get("medicationCodeableConcept"), dict) else {}
        ref = r.get("medicationReference") if isinstance(r.get("medicationReference"), dict) else {}
        codings = sorted(f"{c.get('system')}|{c.get('code')}" for c in cc.get("coding") or ()
                         if isinstance(c, dict) and isinstance(c.get("code"), str))
        text = cc.get("text") or ref.get("reference") or ref.get("display") or ""
        out.append(";".join(codings) or (text if isinstance(text, str) else ""))
    return sorted(out)


def repeat_key(patient_id: str, rule_id: str, context: dict) -> str:
    """The digest that says "this rule, for this patient, about these orders"."""
    payload = json.dumps(["her2-cds/repeat/v1", patient_id, rule_id, draft_identity(context)],
                         separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def card_rule(card: dict, extension_key: str) -> str | None:
    return ((card.get("extension") or {}).get(extension_key) or {}).get("id")


def keys_of(cards: Iterable[dict], patient_id: str | None, context: dict, extension_key: str) -> dict[str, str]:
    """card uuid → repeat key, for the cards that name a rule (and a patient)."""
    if not patient_id:
        return {}
    out = {}
    for c in cards:
        rule = card_rule(c, extension_key)
        if rule and c.get("uuid"):
            out[c["uuid"]] = repeat_key(patient_id, rule, context)
    return out


def for_order_sign(cards: list[dict], keys: dict[str, str], shown: set[str], mode: str) -> list[dict]:
    """The order-sign answer: critical-only when so configured; otherwise without repeats of order-select."""
    if mode == "critical-only":
        return [c for c in cards if c.get("indicator") == "critical"]
    return [c for c in cards if keys.get(c.get("uuid")) not in shown]


def window_start(now: dt.datetime, hours: float) -> dt.datetime:
    return now - dt.timedelta(hours=hours)
