"""Baseline: the five tables of the release before migrations, exactly as ``storage.py`` defined them
(that module is ``storage/tables.py`` now).

Written out (not ``metadata.create_all``) so that later changes to
``storage/tables.py`` come with their own migration instead of silently changing
what the baseline creates; tests/test_migrations.py compares the migrated
database with ``storage.metadata`` and finds no difference.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("card_uuid", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("outcome_timestamp", sa.String(40), nullable=False),
        sa.Column("accepted_suggestions", sa.Text, nullable=False),
        sa.Column("override_system", sa.String(300)),
        sa.Column("override_code", sa.String(100)),
        sa.Column("override_display", sa.String(300)),
        sa.Column("user_comment", sa.Text),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("service_id", "card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
    )
    op.create_table(
        "issued_cards",
        sa.Column("card_uuid", sa.String(100), primary_key=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("hook", sa.String(50), nullable=False),
        sa.Column("rule_id", sa.String(50), nullable=False),
        sa.Column("rulebook_version", sa.String(50), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "jwt_replay",
        sa.Column("issuer", sa.String(300), primary_key=True),
        sa.Column("jti", sa.String(300), primary_key=True),
        sa.Column("expires_at", sa.Integer, nullable=False),
    )
    op.create_index("ix_jwt_replay_expires_at", "jwt_replay", ["expires_at"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_id", sa.String(100)),
        sa.Column("hook", sa.String(50)),
        sa.Column("hook_instance", sa.String(100)),
        sa.Column("patient_id", sa.String(200)),
        sa.Column("client_iss", sa.String(300)),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(100), nullable=False),
        sa.Column("card_count", sa.Integer, nullable=False),
        sa.Column("rule_ids", sa.Text, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_table(
        "smart_session",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("expires_at", sa.Integer, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_smart_session_expires_at", "smart_session", ["expires_at"])
    op.create_index("ix_smart_session_kind_expires", "smart_session", ["kind", "expires_at"])


def downgrade() -> None:
    for table in ("smart_session", "audit", "jwt_replay", "issued_cards", "feedback"):
        op.drop_table(table)
