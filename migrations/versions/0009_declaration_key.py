"""a declaration may carry the project unit's Idempotency-Key: a retry after a lost answer
finds the project it declared instead of declaring a second one with a new code

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 15:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('projects', sa.Column('declaration_key', sa.String(length=64), nullable=True))
    op.add_column('projects', sa.Column('declaration_sha256', sa.String(length=64), nullable=True))
    op.create_index('uq_projects_declaration_key', 'projects', ['project_unit_id', 'declaration_key'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_projects_declaration_key', table_name='projects')
    op.drop_column('projects', 'declaration_sha256')  # in place (SQLite 3.35+), as 0006's
    op.drop_column('projects', 'declaration_key')
