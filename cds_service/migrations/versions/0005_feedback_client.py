"""issued_cards.client_iss/client_tenant/suggestion_ids and feedback.client_iss (issue 21).

Feedback is accepted only from the client a card was issued to (its token's
issuer and tenant), and an "accepted" only for suggestions that card had, so
the issued-card row records both; the feedback row records who sent it, and
``her2-cds feedback report`` counts feedback only where the two match.
Cards issued before this revision have no recorded client: feedback for them
is refused (a card is answered within minutes of being shown).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issued_cards") as batch:
        batch.add_column(sa.Column("client_iss", sa.String(300)))
        batch.add_column(sa.Column("client_tenant", sa.String(256)))
        batch.add_column(sa.Column("suggestion_ids", sa.Text()))
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("client_iss", sa.String(300)))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("client_iss")
    with op.batch_alter_table("issued_cards") as batch:
        batch.drop_column("suggestion_ids")
        batch.drop_column("client_tenant")
        batch.drop_column("client_iss")
