"""Reading the service's tables back, for tests only (the service itself never lists them)."""

from __future__ import annotations

from sqlalchemy import select

from cds_service.storage import audit, feedback


def feedback_rows(store, service_id: str | None = None) -> list[dict]:
    q = select(feedback).order_by(feedback.c.id)
    if service_id:
        q = q.where(feedback.c.service_id == service_id)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def audit_rows(store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit).order_by(audit.c.id))]
