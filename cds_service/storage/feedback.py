"""Feedback on issued cards: recorded once per card and outcome, and the report over it."""

from __future__ import annotations

import json

from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from .tables import feedback, issued_cards, _utcnow


class FeedbackRecords:
    """Feedback on issued cards: recorded once per card and outcome, and the report over it, over ``StoreEngine``'s engine."""

    def record_feedback(self, service_id: str, item: dict, client_iss: str | None = None) -> bool:
        """Store one feedback entry; False when the same entry was already stored."""
        reason = (item.get("overrideReason") or {}).get("reason") or {}
        row = {
            "service_id": service_id,
            "card_uuid": item["card"],
            "outcome": item["outcome"],
            "outcome_timestamp": item["outcomeTimestamp"],
            "accepted_suggestions": json.dumps(
                [s.get("id") for s in item.get("acceptedSuggestions") or []]
            ),
            "override_system": reason.get("system"),
            "override_code": reason.get("code"),
            "override_display": reason.get("display"),
            "user_comment": (item.get("overrideReason") or {}).get("userComment"),
            "received_at": _utcnow(),
            "client_iss": client_iss,
        }
        try:
            with self.write() as conn:
                conn.execute(insert(feedback).values(**row))
            return True
        except IntegrityError:
            return False

    def feedback_report(self) -> list[dict]:
        """Per rule: cards issued, accepted, overridden, and override reasons with counts."""
        with self.engine.connect() as conn:
            issued = {
                (r.rule_id, r.rulebook_version): r.n
                for r in conn.execute(
                    select(issued_cards.c.rule_id, issued_cards.c.rulebook_version,
                           func.count().label("n")).group_by(
                        issued_cards.c.rule_id, issued_cards.c.rulebook_version)
                )
            }
            joined = conn.execute(
                select(
                    issued_cards.c.rule_id,
                    issued_cards.c.rulebook_version,
                    feedback.c.outcome,
                    feedback.c.override_display,
                    feedback.c.override_code,
                    func.count(func.distinct(feedback.c.card_uuid)).label("n"),
                )
                .select_from(feedback.join(issued_cards, and_(
                    feedback.c.card_uuid == issued_cards.c.card_uuid,
                    # only the client the card was issued to speaks for it (rows of either side without an
                    # issuer predate issue 21, or come from an instance with authentication disabled)
                    or_(feedback.c.client_iss == issued_cards.c.client_iss,
                        and_(feedback.c.client_iss.is_(None), issued_cards.c.client_iss.is_(None))))))
                .group_by(issued_cards.c.rule_id, issued_cards.c.rulebook_version, feedback.c.outcome,
                          feedback.c.override_display, feedback.c.override_code)
            ).all()
            unlinked = conn.execute(
                select(func.count()).select_from(feedback).where(
                    ~feedback.c.card_uuid.in_(select(issued_cards.c.card_uuid)))
            ).scalar_one()
        report: dict[tuple, dict] = {}
        for key, n in issued.items():
            report[key] = {"rule_id": key[0], "rulebook_version": key[1], "issued": n,
                           "accepted": 0, "overridden": 0, "override_reasons": {}}
        for r in joined:
            entry = report.setdefault((r.rule_id, r.rulebook_version), {
                "rule_id": r.rule_id, "rulebook_version": r.rulebook_version, "issued": 0,
                "accepted": 0, "overridden": 0, "override_reasons": {}})
            entry[r.outcome] = entry.get(r.outcome, 0) + r.n
            if r.outcome == "overridden":
                label = r.override_display or r.override_code or "(no reason given)"
                entry["override_reasons"][label] = entry["override_reasons"].get(label, 0) + r.n
        rows = sorted(report.values(), key=lambda e: (e["rule_id"], e["rulebook_version"]))
        if unlinked:
            rows.append({"rule_id": "(unknown card)", "rulebook_version": "", "issued": 0,
                         "accepted": None, "overridden": None, "override_reasons": {},
                         "unlinked_feedback": unlinked})
        return rows
