#!/usr/bin/env python3
"""Purge benchmark: crypto-shredding one pupil out of a large list, and a whole list.

A quarterly list of N records goes in through the HTTP API. Then:
1. one pupil is purged: the other N-1 records are re-sealed under a new data key, the old key's
   vault share is deleted (what an ending or an erasure costs on a large list);
2. the rest of the list is purged: rows deleted, key destroyed (what retention does).
The floor, measured in the same run, is opening and re-sealing the same N-1 payloads with
AES-GCM in memory: the work no re-keying implementation can skip.

    .venv/bin/python bench/purge.py [--records 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import build_records, fresh_database, measure_api  # noqa: E402
from sqlalchemy import select  # noqa: E402

from audit.entry import Actor  # noqa: E402
from broker import create_app  # noqa: E402
from broker.app import runtime  # noqa: E402
from broker.app.extensions import db  # noqa: E402
from broker.auditing.step import audited_step  # noqa: E402
from broker.models import Record, Submission  # noqa: E402
from broker.rights.purge import purge_records  # noqa: E402
from keys.envelope import Sealer, generate_key  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("BROKER_DATABASE_URL"))
    args = parser.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url = fresh_database(args.database_url, tmp)
        master = base64.b64encode(os.urandom(32)).decode()
        config = {"MASTER_KEY": master, "KEY_VAULT_DIR": str(tmp / "vault")}
        ingest = measure_api(build_records(n), url, tmp, config=config)
        app = create_app(
            {"TESTING": True, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "PUBLIC_URL": "http://localhost", **config}
        )
        with app.app_context():
            session = db.session
            submission_id = session.scalars(select(Submission.id)).one()
            keys = [(submission_id, seq) for seq in session.scalars(select(Record.seq).order_by(Record.seq))]
            payloads = [p for p in session.scalars(select(Record.payload).order_by(Record.seq))][1:]
            session.rollback()

            def purge(chosen: list[tuple[str, int]]) -> float:
                keyring = runtime.keyring()
                started = time.perf_counter()
                with audited_step(session, Actor(type="system", id="bench")) as step:
                    purge_records(session, keyring, chosen, step.recorder, step.now, reason="bench")
                keyring.sweep_vault()
                return time.perf_counter() - started

            one = purge(keys[:1])
            rest = purge(keys[1:])
            db.engine.dispose()
    old, new = Sealer(generate_key()), Sealer(generate_key())
    sealed = [(old.seal(b"x" * (len(p) - 28), str(i).encode()), str(i).encode()) for i, p in enumerate(payloads)]
    started = time.perf_counter()
    for payload, aad in sealed:
        new.seal(old.open(payload, aad), aad)
    floor = time.perf_counter() - started
    print(f"setup: {n:,}-record list submitted in {ingest:.1f} s")
    print(f"purge 1 pupil, re-seal {n - 1:,} records : {one:6.2f} s")
    print(f"floor (AES-GCM open + seal in memory)  : {floor:6.2f} s")
    print(f"ratio purge/floor                      : {one / floor:5.2f}x")
    print(f"purge the other {n - 1:,} records (key destroyed): {rest:6.2f} s = {(n - 1) / rest:,.0f} records/s")


if __name__ == "__main__":
    main()
