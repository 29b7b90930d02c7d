"""generation status 'interrupted'

A streamed generation that ends early (client gone, engine failure) after some watermarked audio
has left is recorded as ``interrupted``, with the payload and the hash of what was sent, so that a
found piece of it still traces back to its request.

Revision ID: 5f1c2a7e9b31
Revises: cb39450ed615
Create Date: 2026-11-24 06:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "5f1c2a7e9b31"
down_revision: str | None = "cb39450ed615"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('delivered','refused','failed','violation')"
_NEW = "status IN ('delivered','interrupted','refused','failed','violation')"


def _replace(condition: str) -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_generations_status"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_generations_status"), condition)


def upgrade() -> None:
    _replace(_NEW)


def downgrade() -> None:
    # Rows recorded as interrupted keep their trace as failed ones on an older schema.
    op.execute("UPDATE generations SET status = 'failed' WHERE status = 'interrupted'")
    _replace(_OLD)
