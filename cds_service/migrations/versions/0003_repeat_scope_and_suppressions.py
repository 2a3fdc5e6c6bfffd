"""issued_cards.hook_instance and audit.suppressed: order-sign says what it did not repeat (issue 21).

A card left out at order-sign because order-select showed it is logged and
kept in the audit trail, naming the order-select call (its hookInstance).
Repeat keys are now version 2 (scoped to issuer, tenant, user, encounter and
FHIR server); version-1 keys of existing rows simply never match again, so
the first order-sign after the upgrade repeats rather than suppresses.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issued_cards") as batch:
        batch.add_column(sa.Column("hook_instance", sa.String(100)))
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("suppressed", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("suppressed")
    with op.batch_alter_table("issued_cards") as batch:
        batch.drop_column("hook_instance")
