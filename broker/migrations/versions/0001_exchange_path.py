"""exchange path: clients, keys, submissions, records, deliveries

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 03:37:55.563535
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assertion_jtis',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'jti', name=op.f('pk_assertion_jtis'))
    )
    with op.batch_alter_table('assertion_jtis', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assertion_jtis_expires_at'), ['expires_at'], unique=False)

    op.create_table('clients',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('public_jwk', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_clients'))
    )
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clients_party_id'), ['party_id'], unique=False)

    op.create_table('key_material',
    sa.Column('kid', sa.String(length=100), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('algorithm', sa.String(length=20), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(), nullable=True),
    sa.Column('public_jwk', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_key_material')),
    sa.UniqueConstraint('scope', 'purpose', 'version', name=op.f('uq_key_material_scope'))
    )
    op.create_table('data_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kek_kid', sa.String(length=100), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('destroyed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['kek_kid'], ['key_material.kid'], name=op.f('fk_data_keys_kek_kid_key_material')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_keys'))
    )
    with op.batch_alter_table('data_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_keys_kek_kid'), ['kek_kid'], unique=False)

    op.create_table('submissions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=False),
    sa.Column('party_id', sa.String(length=100), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('quarter', sa.String(length=7), nullable=True),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('data_key_id', sa.String(length=36), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_submissions_client_id_clients')),
    sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'], name=op.f('fk_submissions_data_key_id_data_keys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_submissions'))
    )
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submissions_convenant_id'), ['convenant_id'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=True),
    sa.Column('sender_party_id', sa.String(length=100), nullable=False),
    sa.Column('recipient_party_id', sa.String(length=100), nullable=False),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], name=op.f('fk_deliveries_submission_id_submissions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_recipient', ['recipient_party_id', 'created_at'], unique=False)

    op.create_table('records',
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('category', sa.String(length=50), nullable=False),
    sa.Column('gemeente', sa.String(length=100), nullable=False),
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('pseudonym_kid', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], name=op.f('fk_records_submission_id_submissions')),
    sa.PrimaryKeyConstraint('submission_id', 'seq', name=op.f('pk_records'))
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index('ix_records_pseudonym', ['pseudonym'], unique=False)

    op.create_table('delivery_records',
    sa.Column('delivery_id', sa.String(length=36), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_delivery_records_delivery_id_deliveries')),
    sa.ForeignKeyConstraint(['submission_id', 'seq'], ['records.submission_id', 'records.seq'], name='fk_delivery_records_record'),
    sa.PrimaryKeyConstraint('delivery_id', 'submission_id', 'seq', name=op.f('pk_delivery_records'))
    )


def downgrade() -> None:
    op.drop_table('delivery_records')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index('ix_records_pseudonym')

    op.drop_table('records')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_recipient')

    op.drop_table('deliveries')
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submissions_convenant_id'))

    op.drop_table('submissions')
    with op.batch_alter_table('data_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_keys_kek_kid'))

    op.drop_table('data_keys')
    op.drop_table('key_material')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clients_party_id'))

    op.drop_table('clients')
    with op.batch_alter_table('assertion_jtis', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assertion_jtis_expires_at'))

    op.drop_table('assertion_jtis')
