#!/usr/bin/env python3
"""Ingest benchmark: a 100,000-record quarterly list through the HTTP API.

Prints records/s and the ratio to a floor measured in the same run on the same rows: raw
HMAC-SHA256 pseudonyms plus AES-GCM sealing plus one batched insert into the same table.

    .venv/bin/python bench/ingest.py [--records 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.records import GEMEENTE_POSTCODE, make_bsn, make_record  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import ECKey  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from broker import create_app  # noqa: E402
from broker.app.db import make_engine  # noqa: E402
from broker.app.migrate import upgrade  # noqa: E402
from broker.models import Record  # noqa: E402
from keys.envelope import Sealer, generate_key  # noqa: E402
from keys.pseudonym import Pseudonymiser  # noqa: E402

CONVENANT = "thuiszitters-midden-gelre"


def build_records(n: int) -> list[dict]:
    gemeenten = list(GEMEENTE_POSTCODE)
    categories = ["langdurig_verzuim", "absoluut_verzuim", "vrijstelling_5a"]
    return [make_record(i, categories[i % 3], gemeenten[i % len(gemeenten)]) for i in range(n)]


def fresh_database(url: str | None, tmp: Path) -> str:
    if url:
        return url
    return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"


def measure_api(
    records: list[dict], url: str, tmp: Path, kind: str = "quarterly_list", config: dict | None = None
) -> float:
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": url,
        "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "KEY_VAULT_DIR": str(tmp / "vault"),
        "LOG_LEVEL": "WARNING", "PUBLIC_URL": "http://localhost",
        **(config or {}),
    })
    upgrade(url)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["init"]).exit_code == 0
    key = ECKey.generate_key("P-256")
    jwk_file = tmp / "rbl.jwk"
    jwk_file.write_text(json.dumps(key.as_dict(private=False)))
    result = runner.invoke(args=["clients", "add", "--party", "rbl-midden-gelre", "--public-key", str(jwk_file)])
    client_id = result.output.strip()
    http = app.test_client()
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256"},
        {"iss": client_id, "sub": client_id, "aud": "http://localhost/oauth/token",
         "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex},
        key,
    )
    token = http.post("/oauth/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }).json["access_token"]
    quarter = {"quarter": "2026-Q4"} if kind == "quarterly_list" else {}
    body = json.dumps({"kind": kind, "records": records, **quarter})
    started = time.perf_counter()
    response = http.post(
        f"/api/v1/convenants/{CONVENANT}/submissions",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.json
    assert response.json["accepted"] == len(records)
    return elapsed


def measure_floor(records: list[dict], url: str) -> float:
    """HMAC + AES-GCM + one batched insert of the same rows: the work no broker can skip."""
    upgrade(url)
    engine = make_engine(url)
    pseudonymiser = Pseudonymiser(generate_key(), CONVENANT, "bench")
    sealer = Sealer(generate_key())
    submission_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF") if engine.dialect.name == "sqlite" else None
        started = time.perf_counter()
        rows = [
            {
                "submission_id": submission_id,
                "seq": i,
                "category": r["category"],
                "gemeente": r["adres"]["gemeente"],
                "pseudonym": pseudonymiser.pseudonymise_bsn(r["bsn"]),
                "pseudonym_kid": "bench",
                "payload": sealer.seal(json.dumps(r).encode(), f"{submission_id}/{i}".encode()),
            }
            for i, r in enumerate(records)
        ]
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET session_replication_role = replica")  # skip FK checks like SQLite
        conn.execute(insert(Record), rows)
        elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("BROKER_DATABASE_URL"))
    args = parser.parse_args()
    records = build_records(args.records)
    assert len({make_bsn(i) for i in range(args.records)}) == args.records
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.database_url:
            print("note: using BROKER_DATABASE_URL; point it at an empty database")
        api = measure_api(records, fresh_database(args.database_url, tmp), tmp)
        floor = measure_floor(records, fresh_database(None, tmp) if not args.database_url else args.database_url)
    n = args.records
    print(f"ingest via HTTP API : {n:>7} records in {api:6.2f} s = {n / api:>9,.0f} records/s")
    print(f"floor (HMAC+AES-GCM+batched insert): {floor:6.2f} s = {n / floor:>9,.0f} records/s")
    print(f"ratio API/floor     : {api / floor:5.2f}x   (aim: 100k records in <= 5 s)")


if __name__ == "__main__":
    main()
