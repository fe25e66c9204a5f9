"""the audit chain trigger always finds the newest entry by index (PostgreSQL)

PL/pgSQL plans the trigger's `ORDER BY idx DESC LIMIT 1` once per connection and keeps the plan.
Planned while audit_entries was (or was analysed as) nearly empty, that plan is a sequential
scan, and every appended entry then re-reads the whole growing table: appending 20,000 entries in
one transaction took 78 s instead of 2. With sequential scans off inside the function, the plan
is the primary key's backward index scan, whatever the statistics said.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00
"""

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER FUNCTION broker_audit_extend_chain() SET enable_seqscan = off")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER FUNCTION broker_audit_extend_chain() RESET enable_seqscan")
