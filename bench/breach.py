#!/usr/bin/env python3
"""Breach impact benchmark: how fast the broker reads a breach's impact out of the audit log.

The RBL sends N case records (routed to the three SWVs by gemeente) through the HTTP API; then a
breach scoped by a time window covering all of them has its impact computed from the audit log.
The floor, measured in the same run, is reading the same audit rows and parsing their JSON: the
work no implementation that reads the audit can skip.

    .venv/bin/python bench/breach.py [--records 50000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.records import GEMEENTE_POSTCODE, make_record  # noqa: E402
from ingest import fresh_database, measure_api  # noqa: E402
from sqlalchemy import select  # noqa: E402

from broker import create_app  # noqa: E402
from broker.app import runtime  # noqa: E402
from broker.app.extensions import db  # noqa: E402
from broker.breaches.impact import IMPACT_ENTRIES, Scope, compute_impact  # noqa: E402
from broker.models import AuditEntryRow  # noqa: E402

CONVENANT = "thuiszitters-midden-gelre"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--database-url", default=os.environ.get("BROKER_DATABASE_URL"))
    args = parser.parse_args()
    gemeenten = list(GEMEENTE_POSTCODE)
    categories = ("langdurig_verzuim", "absoluut_verzuim")
    records = [make_record(i, categories[i % 2], gemeenten[i % len(gemeenten)]) for i in range(args.records)]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url = fresh_database(args.database_url, tmp)
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        ingest = measure_api(records, url, tmp, kind="case")
        after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        app = create_app({
            "TESTING": True, "DATABASE_URL": url, "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "KEY_VAULT_DIR": str(tmp / "vault"), "LOG_LEVEL": "WARNING", "PUBLIC_URL": "http://localhost",
        })
        with app.app_context():
            convenant = runtime.get_convenant(CONVENANT)
            started = time.perf_counter()
            impact, subjects = compute_impact(db.session, convenant, Scope(window=(before, after)), after)
            elapsed = time.perf_counter() - started
            db.session.rollback()

            started = time.perf_counter()
            rows = db.session.execute(
                select(AuditEntryRow.canonical).where(
                    AuditEntryRow.convenant_id == convenant.id,
                    AuditEntryRow.name.in_(IMPACT_ENTRIES),
                    AuditEntryRow.start_time >= before,
                    AuditEntryRow.start_time <= after,
                )
            ).scalars()
            parsed = sum(1 for canonical in rows if json.loads(canonical))
            floor = time.perf_counter() - started
            db.engine.dispose()
    n = args.records
    print(f"setup: {n:,} case records submitted and routed in {ingest:.1f} s")
    print(f"impact from the audit log : {parsed:>8,} entries, {len(subjects):,} pupils in {elapsed:6.2f} s")
    print(f"floor (read + parse JSON) : {parsed:>8,} entries in {floor:6.2f} s")
    print(f"ratio impact/floor        : {elapsed / floor:5.2f}x   (aim: within seconds)")
    parties = {p["party_id"]: p["received"] for p in impact["parties"]}
    print(f"impact: {impact['data_subjects']:,} pupils; received per party: {json.dumps(parties)}")


if __name__ == "__main__":
    main()
