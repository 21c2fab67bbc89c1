"""indexes for lookups every light and every project view make: a matter by its
instance, a project's holds

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 21:20:00
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_project_matters_instance_id', 'project_matters', ['instance_id'], unique=False)
    op.create_index('ix_holds_project_id', 'holds', ['project_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_holds_project_id', table_name='holds')
    op.drop_index('ix_project_matters_instance_id', table_name='project_matters')
