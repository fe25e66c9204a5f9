"""quarterly matching: list versions, match runs, webhooks and the outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 04:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('summary', sa.JSON(), nullable=True))

    op.create_table('quarter_lists',
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=False),
    sa.Column('quarter', sa.String(length=7), nullable=False),
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('received_at', TZ, nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'],
                            name=op.f('fk_quarter_lists_submission_id_submissions')),
    sa.PrimaryKeyConstraint('submission_id', name=op.f('pk_quarter_lists')),
    sa.UniqueConstraint('convenant_id', 'quarter', 'party_id', 'version', name=op.f('uq_quarter_lists_convenant_id'))
    )
    op.create_table('match_runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=False),
    sa.Column('quarter', sa.String(length=7), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('supersedes', sa.String(length=36), nullable=True),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('missing', sa.JSON(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.Column('ran_at', TZ, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_runs')),
    sa.UniqueConstraint('convenant_id', 'quarter', 'version', name=op.f('uq_match_runs_convenant_id'))
    )
    op.create_table('webhooks',
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('wrapped_secret', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', TZ, nullable=False),
    sa.PrimaryKeyConstraint('party_id', name=op.f('pk_webhooks'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('topic', sa.String(length=60), nullable=False),
    sa.Column('dedupe_key', sa.String(length=300), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', TZ, nullable=False),
    sa.Column('next_attempt_at', TZ, nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('delivered_at', TZ, nullable=True),
    sa.Column('abandoned_at', TZ, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_outbox_dedupe_key'))
    )
    op.create_index('ix_outbox_due', 'outbox', ['delivered_at', 'next_attempt_at'], unique=False)
    op.create_table('outbox_attempts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('entry_id', sa.String(length=36), nullable=False),
    sa.Column('attempted_at', TZ, nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['outbox.id'], name=op.f('fk_outbox_attempts_entry_id_outbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_attempts'))
    )
    op.create_index(op.f('ix_outbox_attempts_entry_id'), 'outbox_attempts', ['entry_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            DO $$ BEGIN
              IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'broker_app') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON quarter_lists, match_runs, webhooks, outbox,
                  outbox_attempts TO broker_app;
              END IF;
            END $$
            """
        )


def downgrade() -> None:
    op.drop_index(op.f('ix_outbox_attempts_entry_id'), table_name='outbox_attempts')
    op.drop_table('outbox_attempts')
    op.drop_index('ix_outbox_due', table_name='outbox')
    op.drop_table('outbox')
    op.drop_table('webhooks')
    op.drop_table('match_runs')
    op.drop_table('quarter_lists')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('summary')
