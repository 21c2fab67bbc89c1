"""holds: time not counted on a project's or a matter's clocks, as rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 20:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'holds',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('matter_code', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.String(length=80), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_holds_open', 'holds', ['ended_at', 'project_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_holds_open', table_name='holds')
    op.drop_table('holds')
