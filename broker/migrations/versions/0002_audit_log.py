"""audit log, register, users

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 03:58:03.329836
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tree_size', name=op.f('pk_audit_checkpoints'))
    )
    op.create_table('audit_entries',
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('trace_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('processing_activity_id', sa.String(length=300), nullable=False),
    sa.Column('data_subject_id', sa.String(length=64), nullable=True),
    sa.Column('actor_type', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.String(length=100), nullable=False),
    sa.Column('actor_party', sa.String(length=100), nullable=True),
    sa.Column('parties', sa.String(length=500), nullable=False),
    sa.Column('convenant_id', sa.String(length=100), nullable=True),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('canonical', sa.LargeBinary(), nullable=False),
    sa.Column('prev_hash', sa.LargeBinary(), nullable=False),
    sa.Column('leaf_hash', sa.LargeBinary(), nullable=False),
    sa.Column('chain_hash', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('idx', name=op.f('pk_audit_entries'))
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entries_data_subject_id'), ['data_subject_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_processing_activity_id'), ['processing_activity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_start_time'), ['start_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_trace_id'), ['trace_id'], unique=False)

    op.create_table('audit_nodes',
    sa.Column('level', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_audit_nodes'))
    )
    op.create_table('register_activities',
    sa.Column('uri', sa.String(length=300), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('activity', sa.String(length=100), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('digest', sa.String(length=80), nullable=False),
    sa.Column('text', sa.JSON(), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('uri', name=op.f('pk_register_activities'))
    )
    op.create_table('users',
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=300), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.Column('party_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_users'))
    )


    # Append-only in the database itself, so that not even someone with write access to the
    # database edits history unnoticed by the database; `broker audit verify` catches the rest.
    if op.get_bind().dialect.name == "postgresql":
        _postgres_guards()
    else:
        _sqlite_guards()


APPEND_ONLY = ("audit_entries", "audit_nodes", "audit_checkpoints", "register_activities")
GENESIS = "00" * 32


def _sqlite_guards() -> None:
    for table in APPEND_ONLY:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {event} refused'); END"
            )
    # Every other append-only table refuses an INSERT over an existing key, so REPLACE cannot
    # overwrite a node, checkpoint or register text even on a connection without
    # recursive_triggers (the sqlite3 shell, say).
    for table, key in (
        ("audit_nodes", "level = NEW.level AND idx = NEW.idx"),
        ("audit_checkpoints", "tree_size = NEW.tree_size"),
        ("register_activities", "uri = NEW.uri"),
    ):
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key}) "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: REPLACE refused'); END"
        )
    # An INSERT must extend the chain: the next index, linked to the last chain hash. REPLACE
    # cannot slip past this either (it would reuse an index), and with recursive_triggers on
    # (broker/app/db.py sets it) its implicit DELETE fires the trigger above.
    op.execute(
        f"""
        CREATE TRIGGER audit_entries_extend_chain BEFORE INSERT ON audit_entries
        WHEN NEW.idx IS NOT (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries)
          OR (NEW.idx = 0 AND NEW.prev_hash IS NOT X'{GENESIS}')
          OR (NEW.idx > 0 AND NEW.prev_hash IS NOT
              (SELECT chain_hash FROM audit_entries WHERE idx = NEW.idx - 1))
        BEGIN SELECT RAISE(ABORT, 'audit entry does not extend the chain'); END
        """
    )


def _postgres_guards() -> None:
    op.execute(
        """
        CREATE FUNCTION broker_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION broker_audit_extend_chain() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE last_idx bigint; last_hash bytea;
        BEGIN
          SELECT idx, chain_hash INTO last_idx, last_hash
            FROM audit_entries ORDER BY idx DESC LIMIT 1;
          IF last_idx IS NULL THEN
            IF NEW.idx <> 0 OR NEW.prev_hash <> '\\x{GENESIS}'::bytea THEN
              RAISE EXCEPTION 'audit entry does not extend the chain';
            END IF;
          ELSIF NEW.idx <> last_idx + 1 OR NEW.prev_hash <> last_hash THEN
            RAISE EXCEPTION 'audit entry does not extend the chain';
          END IF;
          RETURN NEW;
        END $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION broker_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION broker_refuse_change()"
        )
    op.execute(
        "CREATE TRIGGER audit_entries_extend_chain BEFORE INSERT ON audit_entries "
        "FOR EACH ROW EXECUTE FUNCTION broker_audit_extend_chain()"
    )
    # The role the app runs as (a login role that is a member of broker_app) may read and add
    # to the audit tables, and nothing else: it owns no table, so it cannot drop a trigger or
    # alter a table either. Creating the role needs CREATEROLE; without it, deployments create it.
    op.execute(
        """
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'broker_app') THEN
            CREATE ROLE broker_app NOLOGIN;
          END IF;
        EXCEPTION WHEN insufficient_privilege THEN
          RAISE NOTICE 'no CREATEROLE: create role broker_app yourself';
        END $$
        """
    )
    op.execute(
        """
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'broker_app') THEN
            GRANT USAGE ON SCHEMA public TO broker_app;
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO broker_app;
            REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries, audit_nodes, audit_checkpoints,
              register_activities FROM broker_app;
          END IF;
        END $$
        """
    )


def downgrade() -> None:
    op.drop_table('users')
    op.drop_table('register_activities')
    op.drop_table('audit_nodes')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entries_trace_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_start_time'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_processing_activity_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_name'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_data_subject_id'))

    op.drop_table('audit_entries')
    op.drop_table('audit_checkpoints')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS broker_audit_extend_chain()")
        op.execute("DROP FUNCTION IF EXISTS broker_refuse_change()")
