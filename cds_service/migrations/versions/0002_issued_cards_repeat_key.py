"""issued_cards.repeat_key: order-sign does not repeat a card order-select showed (issue 12).

A SHA-256 of (patient id, rule id, what the draft orders order), never the
patient id in clear; indexed with the hook and issue time for the look-up
"shown at order-select within the window" (cds_service/protocol/repeats.py).
Existing rows keep NULL: they were issued before the key existed and are
simply not matched.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issued_cards") as batch:
        batch.add_column(sa.Column("repeat_key", sa.String(64)))
    op.create_index("ix_issued_cards_repeat", "issued_cards", ["repeat_key", "hook", "issued_at"])


def downgrade() -> None:
    op.drop_index("ix_issued_cards_repeat", table_name="issued_cards")
    with op.batch_alter_table("issued_cards") as batch:
        batch.drop_column("repeat_key")
