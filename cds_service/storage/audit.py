"""The audit trail: one row per hook invocation, ids only."""

from __future__ import annotations

import json

from sqlalchemy import insert

from .tables import audit, issued_cards, _utcnow
from .engine import _fit, _storable


# The two inserts of every hook call, built once: a statement object made per call pays its
# construction and its cache key each time (about a third of SQLAlchemy's share of the write).
_INSERT_ISSUED = insert(issued_cards)
_INSERT_AUDIT = insert(audit)


class AuditTrail:
    """The audit trail: one row per hook invocation, ids only, over ``StoreEngine``'s engine."""

    def record_invocation(self, audit_row: dict, service_id: str, hook: str,
                          cards: list[tuple[str, str, str]], repeat_keys: dict[str, str] | None = None,
                          suggestions: dict[str, list[str]] | None = None, client_tenant: str | None = None) -> None:
        """The audit row and the issued cards of one hook call, in one transaction.

        The audit row describes the request as sent, rejected ones included, so
        its text is made storable first (``_fit``): a NUL in ``hookInstance``
        must not drop the row (and with it the call's trace) on PostgreSQL.
        """
        now = _utcnow()
        audit_row = _fit(audit, audit_row)
        audit_row.setdefault("at", now)
        with self.write() as conn:
            if cards:
                conn.execute(_INSERT_ISSUED, [
                    {"card_uuid": u, "service_id": service_id, "hook": hook, "rule_id": r,
                     "rulebook_version": v, "issued_at": now, "repeat_key": (repeat_keys or {}).get(u),
                     "hook_instance": _storable(audit_row.get("hook_instance"), 100),
                     "client_iss": audit_row.get("client_iss"), "client_tenant": _storable(client_tenant, 256),
                     "suggestion_ids": json.dumps((suggestions or {}).get(u, []))}
                    for u, r, v in cards])
            conn.execute(_INSERT_AUDIT, audit_row)
