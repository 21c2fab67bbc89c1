"""reads that stay fast at a province's volume: a concluded matter's handling time stored
with the calendar revision it was computed on, and indexes for e-supervision, the risk
warnings, the alerts list and the public approvals list

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

CONCLUDED = "status = 'concluded'"
PENDING = "handling_days IS NULL AND accepted_at IS NOT NULL AND concluded_at IS NOT NULL"
CONCLUSION = "kind = 'conclusion'"


def upgrade() -> None:
    op.add_column('project_matters', sa.Column('handling_days', sa.Float(), nullable=True))
    op.add_column('project_matters', sa.Column('handling_revision', sa.String(length=32), nullable=True))
    op.create_index('ix_project_matters_received_at', 'project_matters', ['received_at'])
    op.create_index('ix_project_matters_accepted_at', 'project_matters', ['accepted_at'])
    op.create_index('ix_project_matters_concluded_at', 'project_matters', ['concluded_at'])
    op.create_index('ix_project_matters_department_concluded', 'project_matters', ['department_code', 'concluded_at'])
    op.create_index('ix_project_matters_disclosed', 'project_matters', [sa.text('coalesce(concluded_at, updated_at)'), 'id'],
                    postgresql_where=sa.text(CONCLUDED), sqlite_where=sa.text(CONCLUDED))
    op.create_index('ix_project_matters_handling_pending', 'project_matters', ['id'],
                    postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
    op.create_index('ix_clocks_project_matter_kind', 'clocks', ['project_id', 'matter_code', 'kind', 'id'])
    op.create_index('ix_clocks_department_due', 'clocks', ['department_code', 'due_at'])
    op.create_index('ix_alerts_at', 'alerts', ['at', 'id'])
    op.create_index('ix_notices_conclusion', 'notices', ['project_id'],
                    postgresql_where=sa.text(CONCLUSION), sqlite_where=sa.text(CONCLUSION))
    op.create_index('ix_implementation_reports_project_kind', 'implementation_reports', ['project_id', 'kind', 'reported_at'])


def downgrade() -> None:
    op.drop_index('ix_implementation_reports_project_kind', table_name='implementation_reports')
    op.drop_index('ix_notices_conclusion', table_name='notices')
    op.drop_index('ix_alerts_at', table_name='alerts')
    op.drop_index('ix_clocks_department_due', table_name='clocks')
    op.drop_index('ix_clocks_project_matter_kind', table_name='clocks')
    op.drop_index('ix_project_matters_handling_pending', table_name='project_matters')
    op.drop_index('ix_project_matters_disclosed', table_name='project_matters')
    op.drop_index('ix_project_matters_department_concluded', table_name='project_matters')
    op.drop_index('ix_project_matters_concluded_at', table_name='project_matters')
    op.drop_index('ix_project_matters_accepted_at', table_name='project_matters')
    op.drop_index('ix_project_matters_received_at', table_name='project_matters')
    op.drop_column('project_matters', 'handling_revision')  # in place (SQLite 3.35+), as 0006's
    op.drop_column('project_matters', 'handling_days')
