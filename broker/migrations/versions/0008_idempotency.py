"""idempotent submissions: Idempotency-Key answers kept per party, and record fingerprints

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.Column('created_at', TZ, nullable=False),
    sa.Column('expires_at', TZ, nullable=False),
    sa.PrimaryKeyConstraint('party_id', 'key_hash', name=op.f('pk_idempotency_keys'))
    )
    op.create_index('ix_idempotency_keys_expires_at', 'idempotency_keys', ['expires_at'], unique=False)
    # A keyed fingerprint of a routed record, so an unchanged record is not delivered twice.
    op.add_column('records', sa.Column('fingerprint', sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            DO $$ BEGIN
              IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'broker_app') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO broker_app;
              END IF;
            END $$
            """
        )


def downgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('fingerprint')
    op.drop_index('ix_idempotency_keys_expires_at', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
