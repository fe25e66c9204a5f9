"""lifecycle of a case: vault-wrapped data keys, purge tombstones, corrections, endings, subject rights

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 06:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('data_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vaulted', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purged_at', TZ, nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purged_at', TZ, nullable=True))
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('corrects', sa.String(length=50), nullable=True))

    op.create_table('case_endings',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=False),
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.String(length=60), nullable=False),
    sa.Column('ended_at', TZ, nullable=False),
    sa.Column('notified', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_endings'))
    )
    op.create_index('ix_case_endings_subject', 'case_endings', ['convenant_id', 'pseudonym'], unique=False)
    op.create_table('subject_restrictions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=False),
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('started_at', TZ, nullable=False),
    sa.Column('lifted_at', TZ, nullable=True),
    sa.Column('lifted_by', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subject_restrictions'))
    )
    op.create_index(
        'ix_subject_restrictions_subject', 'subject_restrictions', ['convenant_id', 'pseudonym'], unique=False
    )
    op.create_table('subject_requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=False),
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('received_by', sa.String(length=100), nullable=False),
    sa.Column('received_at', TZ, nullable=False),
    sa.Column('registered_at', TZ, nullable=False),
    sa.Column('forwarded_to', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subject_requests'))
    )
    op.create_index('ix_subject_requests_subject', 'subject_requests', ['convenant_id', 'pseudonym'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            DO $$ BEGIN
              IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'broker_app') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON case_endings, subject_restrictions,
                  subject_requests TO broker_app;
              END IF;
            END $$
            """
        )


def downgrade() -> None:
    op.drop_index('ix_subject_requests_subject', table_name='subject_requests')
    op.drop_table('subject_requests')
    op.drop_index('ix_subject_restrictions_subject', table_name='subject_restrictions')
    op.drop_table('subject_restrictions')
    op.drop_index('ix_case_endings_subject', table_name='case_endings')
    op.drop_table('case_endings')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('corrects')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('purged_at')
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_column('purged_at')
    with op.batch_alter_table('data_keys', schema=None) as batch_op:
        batch_op.drop_column('vaulted')
