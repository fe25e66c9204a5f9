"""breaches: the 24-hour notification workflow, party contacts, e-mail in the outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=300), nullable=True))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=10), nullable=False, server_default='webhook'))
        batch_op.add_column(sa.Column('address', sa.String(length=300), nullable=True))

    op.create_table('party_contacts',
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=300), nullable=False),
    sa.Column('created_at', TZ, nullable=False),
    sa.PrimaryKeyConstraint('party_id', 'email', name=op.f('pk_party_contacts'))
    )
    op.create_table('breaches',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=False),
    sa.Column('reporting_party_id', sa.String(length=100), nullable=True),
    sa.Column('reported_by', sa.String(length=100), nullable=False),
    sa.Column('reported_at', TZ, nullable=False),
    sa.Column('detected_at', TZ, nullable=False),
    sa.Column('notify_deadline', TZ, nullable=False),
    sa.Column('ap_deadline', TZ, nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('suspected_cause', sa.Text(), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('impact_computed', sa.JSON(), nullable=False),
    sa.Column('impact', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('late_since', TZ, nullable=True),
    sa.Column('measures', sa.Text(), nullable=True),
    sa.Column('closed_at', TZ, nullable=True),
    sa.Column('closed_by', sa.String(length=100), nullable=True),
    sa.Column('trace_id', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_breaches')),
    sa.UniqueConstraint('number', name=op.f('uq_breaches_number'))
    )
    op.create_index(op.f('ix_breaches_convenant_id'), 'breaches', ['convenant_id'], unique=False)
    op.create_index(op.f('ix_breaches_state'), 'breaches', ['state'], unique=False)
    op.create_table('breach_parties',
    sa.Column('breach_id', sa.String(length=36), nullable=False),
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('added_at', TZ, nullable=False),
    sa.Column('notified_at', TZ, nullable=True),
    sa.Column('notified_via', sa.String(length=20), nullable=True),
    sa.Column('acknowledged_at', TZ, nullable=True),
    sa.Column('acknowledged_by', sa.String(length=100), nullable=True),
    sa.Column('ap_reported', sa.Boolean(), nullable=True),
    sa.Column('ap_reference', sa.String(length=100), nullable=True),
    sa.Column('ap_reported_at', TZ, nullable=True),
    sa.Column('ap_reasoning', sa.Text(), nullable=True),
    sa.Column('ap_decided_at', TZ, nullable=True),
    sa.Column('ap_decided_by', sa.String(length=100), nullable=True),
    sa.Column('ap_escalated_at', TZ, nullable=True),
    sa.ForeignKeyConstraint(['breach_id'], ['breaches.id'], name=op.f('fk_breach_parties_breach_id_breaches')),
    sa.PrimaryKeyConstraint('breach_id', 'party_id', name=op.f('pk_breach_parties'))
    )
    op.create_table('breach_events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('breach_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', TZ, nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['breach_id'], ['breaches.id'], name=op.f('fk_breach_events_breach_id_breaches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_breach_events'))
    )
    op.create_index(op.f('ix_breach_events_breach_id'), 'breach_events', ['breach_id'], unique=False)
    op.create_table('party_suspensions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('breach_id', sa.String(length=36), nullable=False),
    sa.Column('started_at', TZ, nullable=False),
    sa.Column('started_by', sa.String(length=100), nullable=False),
    sa.Column('lifted_at', TZ, nullable=True),
    sa.Column('lifted_by', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['breach_id'], ['breaches.id'], name=op.f('fk_party_suspensions_breach_id_breaches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_party_suspensions'))
    )
    op.create_index(op.f('ix_party_suspensions_party_id'), 'party_suspensions', ['party_id'], unique=False)
    op.create_index(op.f('ix_party_suspensions_breach_id'), 'party_suspensions', ['breach_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            DO $$ BEGIN
              IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'broker_app') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON party_contacts, breaches, breach_parties,
                  breach_events, party_suspensions TO broker_app;
              END IF;
            END $$
            """
        )


def downgrade() -> None:
    op.drop_index(op.f('ix_party_suspensions_breach_id'), table_name='party_suspensions')
    op.drop_index(op.f('ix_party_suspensions_party_id'), table_name='party_suspensions')
    op.drop_table('party_suspensions')
    op.drop_index(op.f('ix_breach_events_breach_id'), table_name='breach_events')
    op.drop_table('breach_events')
    op.drop_table('breach_parties')
    op.drop_index(op.f('ix_breaches_state'), table_name='breaches')
    op.drop_index(op.f('ix_breaches_convenant_id'), table_name='breaches')
    op.drop_table('breaches')
    op.drop_table('party_contacts')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('address')
        batch_op.drop_column('channel')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('email')
