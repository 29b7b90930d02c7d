"""idempotency records keep response headers

The speech route answers with its audio and the headers that name the generation
(``X-Generation-Id``, ``X-Watermark-Payload``); a replayed request must get those too.

Revision ID: 8d3e6b0c4a17
Revises: 5f1c2a7e9b31
Create Date: 2026-11-24 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8d3e6b0c4a17"
down_revision: str | None = "5f1c2a7e9b31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_column("headers")
