"""The service's tables (SQLAlchemy Core): one ``metadata`` that the migrations and ``create_schema`` share."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(100), nullable=False),
    Column("card_uuid", String(100), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("outcome_timestamp", String(40), nullable=False),
    Column("accepted_suggestions", Text, nullable=False, default="[]"),
    Column("override_system", String(300)),
    Column("override_code", String(100)),
    Column("override_display", String(300)),
    Column("user_comment", Text),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # The JWT issuer of the client that sent it (None with authentication disabled): it must be the
    # client the card was issued to (protocol/feedback.py), and the report joins on it.
    Column("client_iss", String(300)),
    UniqueConstraint("service_id", "card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
)

issued_cards = Table(
    "issued_cards",
    metadata,
    Column("card_uuid", String(100), primary_key=True),
    Column("service_id", String(100), nullable=False),
    Column("hook", String(50), nullable=False),
    Column("rule_id", String(50), nullable=False),
    Column("rulebook_version", String(50), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    # SHA-256 of (who saw it, patient, rule, what the draft orders order): lets order-sign skip a card the
    # clinician saw at order-select (protocol/repeats.py); never the patient id in clear.
    Column("repeat_key", String(64)),
    # The hookInstance of the call that issued the card: a suppression at order-sign names the
    # order-select call that showed the card (log and audit trail, issue 21).
    Column("hook_instance", String(100)),
    # Who received the card (the token's iss and tenant; None with authentication disabled) and the
    # uuids of its suggestions: feedback is accepted only from that client, naming those suggestions.
    Column("client_iss", String(300)),
    Column("client_tenant", String(256)),
    Column("suggestion_ids", Text),
    Index("ix_issued_cards_repeat", "repeat_key", "hook", "issued_at"),
)

jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("issuer", String(300), primary_key=True),
    Column("jti", String(300), primary_key=True),
    Column("expires_at", Integer, nullable=False, index=True),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("service_id", String(100)),
    Column("hook", String(50)),
    Column("hook_instance", String(100)),
    Column("patient_id", String(200)),
    Column("client_iss", String(300)),
    Column("status", Integer, nullable=False),
    Column("outcome", String(100), nullable=False),
    Column("card_count", Integer, nullable=False, default=0),
    Column("rule_ids", Text, nullable=False, default=""),
    Column("duration_ms", Integer, nullable=False, default=0),
    # Cards computed but not repeated at order-sign: "rule@earlier-hookInstance" entries, comma-separated.
    Column("suppressed", Text, nullable=False, default=""),
)


# The SMART app's server-side state (PKCE launches, app sessions) so that /smart/launch,
# /smart/callback and /smart/app may reach any worker or instance sharing this database.
# ``key`` is chosen by the caller (smart/sessions.py stores a hash of the random id, never the id);
# ``payload`` is opaque ciphertext (ASCII, a Fernet token); ``expires_at`` is epoch seconds.
smart_session = Table(
    "smart_session",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("expires_at", Integer, nullable=False, index=True),
    Column("payload", Text, nullable=False),
    # Who started a pending launch: a keyed hash of the client address (never the address), so a
    # flood from one address meets its own bound and cannot push out other browsers' launches.
    Column("owner", String(64)),
    Index("ix_smart_session_kind_expires", "kind", "expires_at"),
    Index("ix_smart_session_owner", "kind", "owner"),
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
