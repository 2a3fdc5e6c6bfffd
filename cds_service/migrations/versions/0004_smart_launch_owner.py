"""smart_session.owner: pending SMART launches are bounded per client address (issue 21).

10,500 anonymous ``GET /smart/launch`` from one address once pushed a real
user's pending launch out of the table ("Launch expired" at the callback).
Each pending launch now records a keyed hash of the address that started it;
one address meets its own bound, and a full table refuses new launches instead
of evicting those in progress.  Existing rows have no owner (they expire
within minutes).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("smart_session") as batch:
        batch.add_column(sa.Column("owner", sa.String(64)))
        batch.create_index("ix_smart_session_owner", ["kind", "owner"])


def downgrade() -> None:
    with op.batch_alter_table("smart_session") as batch:
        batch.drop_index("ix_smart_session_owner")
        batch.drop_column("owner")
