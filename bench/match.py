#!/usr/bin/env python3
"""Match benchmark: two stored quarterly lists of N pseudonyms each (50% overlap), matched from the database.

Fills the records table directly (executemany, no HTTP), then times what a run does to find the
four groups of one pair: read both lists' pseudonyms and categories from the database and compare
them. The floor, measured in the same run on the same digests already in memory: building two
Python sets and intersecting them. Deliveries and per-pupil audit entries are not part of it.

    .venv/bin/python bench/match.py [--sizes 1000000 2000000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker import create_app  # noqa: E402
from broker.app import runtime  # noqa: E402
from broker.app.extensions import db  # noqa: E402
from broker.app.migrate import upgrade  # noqa: E402
from broker.matching.match import compare, load_side, pairs  # noqa: E402
from broker.models import Client, Submission  # noqa: E402

CONVENANT = "thuiszitters-midden-gelre"
BATCH = 50_000


def digests(n: int, overlap: float = 0.5) -> tuple[list[str], list[str]]:
    shared = int(n * overlap)
    common = [os.urandom(32).hex() for _ in range(shared)]
    a = common + [os.urandom(32).hex() for _ in range(n - shared)]
    b = common + [os.urandom(32).hex() for _ in range(n - shared)]
    return a, b


def store_list(party: str, pseudonyms: list[str], gemeenten: tuple[str, ...], client_id: str) -> str:
    """Store one list's records (empty payloads: matching never opens them)."""
    session = db.session
    data_key, _ = runtime.keyring().new_data_key(CONVENANT)
    submission = Submission(
        id=str(uuid.uuid4()), convenant_id=CONVENANT, party_id=party, client_id=client_id, kind="quarterly_list",
        quarter="2026-Q4", record_count=len(pseudonyms), data_key_id=data_key.id, received_at=runtime.now(),
    )
    session.add(submission)
    session.commit()
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        mark = "?" if db.engine.dialect.paramstyle == "qmark" else "%s"
        sql = (
            "INSERT INTO records (submission_id, seq, category, gemeente, pseudonym, pseudonym_kid, payload) "
            f"VALUES ({', '.join([mark] * 7)})"
        )
        for start in range(0, len(pseudonyms), BATCH):
            cursor.executemany(sql, [
                (submission.id, seq, "langdurig_verzuim", gemeenten[seq % len(gemeenten)], p, "bench", b"-")
                for seq, p in enumerate(pseudonyms[start:start + BATCH], start)
            ])
        raw.commit()
    finally:
        raw.close()
    return submission.id


def run(n: int, url: str) -> None:
    app = create_app({
        "TESTING": True, "DATABASE_URL": url, "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "LOG_LEVEL": "WARNING", "PUBLIC_URL": "http://localhost",
        "KEY_VAULT_DIR": tempfile.mkdtemp(prefix="bench-vault-"),
    })
    upgrade(url)
    with app.app_context():
        convenant = runtime.get_convenant(CONVENANT)
        runtime.keyring().ensure_convenant_keys(CONVENANT)
        client = Client(client_id=str(uuid.uuid4()), party_id="bench", public_jwk={}, created_at=runtime.now(),
                        revoked_at=None)
        db.session.add(client)
        db.session.commit()
        a_party, b_party, gemeenten = pairs(convenant, convenant.parties)[0]
        a_list, b_list = digests(n)
        started = time.perf_counter()
        a_sub = store_list(a_party.id, a_list, gemeenten, client.client_id)
        b_sub = store_list(b_party.id, b_list, gemeenten, client.client_id)
        fill = time.perf_counter() - started
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as conn:  # as after any quiet moment: the WAL folded into the file
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE records")
                conn.commit()

        started = time.perf_counter()
        floor_common = set(a_list) & set(b_list)
        floor = time.perf_counter() - started
        started = time.perf_counter()
        set_a, set_b = set(a_list), set(b_list)
        built = time.perf_counter()
        _ = set_a & set_b
        intersect = time.perf_counter() - built

        session = db.session
        started = time.perf_counter()
        a_side = load_side(session, a_party, a_sub, gemeenten)
        b_side = load_side(session, b_party, b_sub, gemeenten)
        loaded = time.perf_counter()
        result = compare(a_side, b_side)
        elapsed = time.perf_counter() - started
        same = sum(len(g) for g in result.same.values())
        assert same == len(floor_common) == n // 2, (same, len(floor_common))
        assert sum(len(g) for g in result.only_a.values()) == n - n // 2
        session.rollback()
    print(
        f"{n:>9,} x {n:,} ({url.split(':')[0]}): fill {fill:5.1f}s | match {elapsed:6.3f}s "
        f"(read {loaded - started:.3f}s + compare {elapsed - (loaded - started):.3f}s) | "
        f"floor (build two sets + intersect) {floor:.3f}s -> ratio {elapsed / floor:.2f}x | "
        f"intersect alone {intersect:.3f}s -> {elapsed / intersect:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 2_000_000])
    parser.add_argument("--database-url", help="an empty database (default: a fresh SQLite file per size)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            url = args.database_url or f"sqlite:///{Path(tmp) / f'match-{n}.db'}"
            run(n, url)


if __name__ == "__main__":
    main()
