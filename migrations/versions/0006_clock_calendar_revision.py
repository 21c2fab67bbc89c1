"""each clock keeps the calendar revision its instants were computed on, so that a
clock a step computed while a year was being loaded is found and computed again

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 03:30:00
"""
import uuid

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_OPEN = sa.text("state <> 'stopped'")


def upgrade() -> None:
    op.add_column('clocks', sa.Column('calendar_revision', sa.String(length=32), nullable=True))
    op.create_index('ix_clocks_open_revision', 'clocks', ['calendar_revision'], unique=False,
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
    # Open clocks were computed on the calendar stored now (a load recomputes them all):
    # they get a revision of the new, shorter form, which the calendar takes too.
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM platform_state WHERE key = 'calendar_revision'")).first() is not None:
        new = f"0006#{uuid.uuid4().hex[:12]}"
        bind.execute(sa.text("UPDATE platform_state SET value = :v WHERE key = 'calendar_revision'"), {"v": new})
        bind.execute(sa.text("UPDATE clocks SET calendar_revision = :v WHERE state <> 'stopped'"), {"v": new})


def downgrade() -> None:
    op.drop_index('ix_clocks_open_revision', table_name='clocks')
    # In place (SQLite 3.35+ drops a column): a batch copy of the table would drop the old
    # one, which the alerts and supervision records refer to.
    op.drop_column('clocks', 'calendar_revision')
