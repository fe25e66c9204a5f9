"""review sessions kept server-side: logout, a password change and `users disable` end them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('review_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('address', sa.String(length=100), nullable=False),
    sa.Column('created_at', TZ, nullable=False),
    sa.Column('last_seen_at', TZ, nullable=False),
    sa.Column('ended_at', TZ, nullable=True),
    sa.ForeignKeyConstraint(['username'], ['users.username'], name=op.f('fk_review_sessions_username_users')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_review_sessions'))
    )
    op.create_index('ix_review_sessions_username', 'review_sessions', ['username'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            DO $$ BEGIN
              IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'broker_app') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON review_sessions TO broker_app;
              END IF;
            END $$
            """
        )


def downgrade() -> None:
    op.drop_index('ix_review_sessions_username', table_name='review_sessions')
    op.drop_table('review_sessions')
