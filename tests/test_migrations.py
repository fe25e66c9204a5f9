"""Migrations upgrade a database that holds data, not only an empty one."""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from fixtures.database import TEST_DATABASE_URL
from fixtures.records import make_record
from sqlalchemy import text

from broker import create_app
from broker.app.db import make_engine
from broker.app.migrate import alembic_config, upgrade


@pytest.mark.skipif(TEST_DATABASE_URL.startswith("postgresql"), reason="a file database made here; SQLite's batch mode")
def test_an_exchange_from_before_the_breach_and_lifecycle_migrations_survives_them(tmp_path: Path) -> None:
    """A database with a stored, routed submission at revision 0003 upgrades to head with every row
    kept and still readable: batch mode copies tables that other rows point at."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": url,
        "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "KEY_VAULT_DIR": str(tmp_path / "vault"),
        "LOG_FILE": str(tmp_path / "broker.log"),
    }
    upgrade(url, "0003")
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO key_material (kid, scope, purpose, version, algorithm, wrapped, created_at) "
                "VALUES ('k', 'c', 'kek', 1, 'AES-256', x'00', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text("INSERT INTO data_keys (id, kek_kid, wrapped, created_at) VALUES ('d', 'k', x'00', :now)"),
            {"now": now},
        )
        conn.execute(
            text("INSERT INTO clients (client_id, party_id, public_jwk, created_at) VALUES ('c1', 'p', '{}', :now)"),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO submissions (id, convenant_id, party_id, client_id, kind, record_count, data_key_id, "
                "received_at) VALUES ('s', 'c', 'p', 'c1', 'case', 1, 'd', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO records (submission_id, seq, category, gemeente, pseudonym, pseudonym_kid, payload) "
                "VALUES ('s', 0, :category, 'Duiven', 'ps', 'pk', x'00')"
            ),
            {"category": make_record(1)["category"]},
        )
        conn.execute(
            text(
                "INSERT INTO deliveries (id, convenant_id, kind, submission_id, sender_party_id, recipient_party_id, "
                "record_count, created_at) VALUES ('v', 'c', 'case', 's', 'p', 'q', 1, :now)"
            ),
            {"now": now},
        )
        conn.execute(text("INSERT INTO delivery_records (delivery_id, submission_id, seq) VALUES ('v', 's', 0)"))
    engine.dispose()

    upgrade(url)

    engine = make_engine(url)
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        assert conn.execute(text("SELECT vaulted, wrapped FROM data_keys")).one() == (0, b"\x00")
        assert conn.execute(text("SELECT purged_at FROM submissions WHERE id = 's'")).scalar() is None
        assert conn.execute(text("SELECT count(*) FROM delivery_records")).scalar() == 1
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1  # on again for the app
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    engine.dispose()
    app = create_app(config)
    assert app.test_cli_runner().invoke(args=["init"]).exit_code == 0
    with app.app_context():
        from broker.app.extensions import db

        db.engine.dispose()


@pytest.mark.skipif(not TEST_DATABASE_URL.startswith("postgresql"), reason="a PL/pgSQL trigger's plan")
def test_the_chain_trigger_reads_the_newest_entry_by_index_whatever_the_statistics(app: Any) -> None:
    """Planned against statistics of a nearly empty table, the trigger's lookup of the newest
    entry would be a sequential scan kept for the connection's life: every append would re-read
    the whole log. Migration 0007 turns sequential scans off inside the trigger function."""
    from broker.app.extensions import db

    with app.app_context():
        session = db.session
        settings = session.execute(
            text("SELECT proconfig FROM pg_proc WHERE proname = 'broker_audit_extend_chain'")
        ).scalar_one()
        assert settings == ["enable_seqscan=off"]
        session.execute(text("ANALYZE audit_entries"))  # the log is nearly empty here
        session.execute(text("SET LOCAL enable_seqscan = off"))  # what the function runs with
        plan = session.execute(
            text("EXPLAIN SELECT idx, chain_hash FROM audit_entries ORDER BY idx DESC LIMIT 1")
        ).scalars().all()
        session.rollback()
    assert "Index Scan Backward" in "\n".join(plan)
