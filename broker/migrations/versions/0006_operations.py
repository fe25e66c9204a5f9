"""operations: the scheduler's lease (one runner across workers and instances), sign-in lockouts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('leases',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('holder', sa.String(length=100), nullable=False),
    sa.Column('expires_at', TZ, nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    op.create_table('sign_in_failures',
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started', TZ, nullable=False),
    sa.Column('locked_until', TZ, nullable=True),
    sa.PrimaryKeyConstraint('kind', 'subject', name=op.f('pk_sign_in_failures'))
    )


def downgrade() -> None:
    op.drop_table('sign_in_failures')
    op.drop_table('leases')
