"""each account keeps the version of its tokens: disabling it or resetting its password
ends every token issued before, also after the account is enabled again

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('token_version', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    op.drop_column('users', 'token_version')  # in place (SQLite 3.35+), as 0006's
