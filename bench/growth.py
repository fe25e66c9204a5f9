#!/usr/bin/env python3
"""Growth benchmark: how ingest, the quarterly match and audit verification grow from N to 2N.

Each figure is measured at N and at 2N, each in a fresh database, with the existing benches' code:

  ingest  a quarterly list of N records through the HTTP API (bench/ingest.py measure_api);
          floor: HMAC + AES-GCM + one batched insert of the same rows (bench/ingest.py measure_floor).
  match   four quarterly lists of N records each (the RBL and the three SWVs, half of each SWV's
          pupils also on the RBL's list) stored directly (bench/match.py store_list), then
          - read + compare of one pair (load_side + compare, as bench/match.py; best of 3), and
          - the whole quarterly run (matching.run_if_due: three pairs, a delivery per party and
            pair, per-pupil audit entries, a signed checkpoint);
          floor: two Python sets of the first pair's pseudonyms and their intersection (best of 3).
  verify  a log of N per-subject audit entries (bench/audit.py fill), then `broker audit verify`
          and verify_log in memory (bench/audit.py measure_verify); floor: a raw SHA-256 chain.

Printed per figure: t(N), t(2N) and t(2N)/t(N); 2.0 is linear, more than 2 is worse than linear.
The floor's own ratio, measured in the same run, shows what linear looks like on this machine.
On a shared machine, --clock cpu times this process's CPU instead of the wall clock.

    .venv/bin/python bench/growth.py [--n 50000] [--clock wall|cpu]
                                     [--database-url postgresql+psycopg://user@host/postgres]

SQLite files in a temporary directory by default; with a PostgreSQL URL every measurement gets a
scratch database on that server (dropped afterwards).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

import bench.audit  # noqa: E402
import bench.ingest  # noqa: E402
from bench.audit import fill, measure_verify  # noqa: E402
from bench.common import backend, exit_on_sigterm, scratch_database  # noqa: E402
from bench.ingest import build_records, measure_api, measure_floor  # noqa: E402
from bench.match import store_list  # noqa: E402
from broker import create_app  # noqa: E402
from broker.app import runtime  # noqa: E402
from broker.app.extensions import db  # noqa: E402
from broker.matching.match import compare, load_side, pairs, run_if_due  # noqa: E402
from broker.matching.quarters import record_list, required_parties  # noqa: E402
from broker.models import Client, Submission  # noqa: E402

CONVENANT = "thuiszitters-midden-gelre"
QUARTER = "2026-Q4"
Times = dict[str, float]  # figure -> seconds
clock: Callable[[], float] = time.perf_counter


def use_clock(name: str) -> None:
    """Time everything, also inside the reused benches, by wall clock or by this process's CPU time.

    CPU time holds up on a machine that other work shares, but misses I/O waits and whatever the
    PostgreSQL server does: use it for the shape of the growth, the wall clock for the figures."""
    global clock
    if name == "cpu":
        clock = time.process_time
        shim = types.SimpleNamespace(time=time.time, perf_counter=time.process_time)
        bench.ingest.time = bench.audit.time = shim  # type: ignore[assignment]


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def best(fn: Callable[[], object], rounds: int = 3) -> float:
    """The fastest of `rounds` runs, in seconds (for the figures that take milliseconds)."""
    timings = []
    for _ in range(rounds):
        started = clock()
        fn()
        timings.append(clock() - started)
    return min(timings)


def make_app(url: str, tmp: Path) -> Any:
    vault = tmp / f"vault-{uuid.uuid4().hex[:8]}"
    app = create_app({
        "TESTING": True, "DATABASE_URL": url, "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "LOG_LEVEL": "WARNING", "PUBLIC_URL": "http://localhost", "LOG_FILE": str(tmp / "broker.log"),
        "KEY_VAULT_DIR": str(vault),
    })
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    return app


def dispose(app: Any) -> None:
    with app.app_context():
        db.engine.dispose()


def measure_ingest(n: int, server: str | None, tmp: Path) -> Times:
    records = build_records(n)
    with scratch_database(server, tmp, "bench_growth") as url:
        vault = tmp / f"ingest-{n}"
        vault.mkdir()
        api = measure_api(records, url, vault)
    with scratch_database(server, tmp, "bench_growth") as url:
        floor = measure_floor(records, url)
    return {"ingest": api, "ingest floor": floor}


def lists(n: int, werkgebieden: dict[str, tuple[str, ...]], rbl: str) -> dict[str, list[str]]:
    """The RBL's N pseudonyms, and per SWV N of which up to half are the RBL's pupils in its werkgebied."""
    rbl_list = [os.urandom(32).hex() for _ in range(n)]
    gemeenten = werkgebieden[rbl]
    result = {rbl: rbl_list}
    for party, werkgebied in werkgebieden.items():
        if party != rbl:
            shared = [p for i, p in enumerate(rbl_list) if gemeenten[i % len(gemeenten)] in werkgebied][: n // 2]
            result[party] = shared + [os.urandom(32).hex() for _ in range(n - len(shared))]
    return result


def measure_match(n: int, server: str | None, tmp: Path) -> Times:
    with scratch_database(server, tmp, "bench_growth") as url:
        app = make_app(url, tmp)
        with app.app_context():
            session = db.session
            convenant = runtime.get_convenant(CONVENANT)
            parties = required_parties(convenant)
            client = Client(client_id=str(uuid.uuid4()), party_id="bench", public_jwk={}, created_at=runtime.now(),
                            revoked_at=None)
            session.add(client)
            session.commit()
            rbl = next(p.id for p in parties if p.role == "rbl")
            werkgebieden = {p.id: tuple(p.werkgebied) for p in parties}
            pseudonyms = lists(n, werkgebieden, rbl)
            submissions = {}
            for party, values in pseudonyms.items():
                submissions[party] = store_list(party, values, werkgebieden[party], client.client_id)
                record_list(session, session.get_one(Submission, submissions[party]))
                session.commit()
            # As after a quiet moment, like bench/match.py. Only `records`: ANALYZE of a nearly empty
            # audit_entries makes its chain trigger's cached plan a sequential scan, and so the run's
            # append quadratic on PostgreSQL (a product problem, not the growth measured here).
            quiet = "PRAGMA wal_checkpoint(TRUNCATE)" if backend(url) == "sqlite" else "ANALYZE records"
            with db.engine.connect() as conn:
                conn.exec_driver_sql(quiet)
                conn.commit()
            progress(f"stored {len(pseudonyms)} lists of {n:,}")
            a, b, gemeenten = pairs(convenant, parties)[0]
            floor = best(lambda: set(pseudonyms[a.id]) & set(pseudonyms[b.id]))
            read_compare = best(lambda: compare(load_side(session, a, submissions[a.id], gemeenten),
                                                load_side(session, b, submissions[b.id], gemeenten)))
            session.rollback()
            started = clock()
            run = run_if_due(session, convenant, QUARTER, runtime.now())
            whole = clock() - started
            assert run is not None and run.report is not None and len(run.report["pairs"]) == 3, run
        dispose(app)
    return {"match read+compare (1 pair)": read_compare, "match run (3 pairs)": whole, "match floor": floor}


def measure_audit(n: int, server: str | None, tmp: Path) -> Times:
    with scratch_database(server, tmp, "bench_growth") as url:
        app = make_app(url, tmp)
        fill(app, n, min(n, 100_000))
        verify = measure_verify(app)
        dispose(app)
    return {"broker audit verify": verify.cli, "verify_log in memory": verify.memory, "verify floor": verify.floor}


FIGURES = [  # (figure, its floor)
    ("ingest", "ingest floor"),
    ("match read+compare (1 pair)", "match floor"),
    ("match run (3 pairs)", "match floor"),
    ("broker audit verify", "verify floor"),
    ("verify_log in memory", "verify floor"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="N records per list / entries (default 50,000)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (scratch databases are made there)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall clock (default) or this process's CPU time (see use_clock)")
    args = parser.parse_args()
    exit_on_sigterm()
    use_clock(args.clock)
    started = time.perf_counter()
    sizes = (args.n, 2 * args.n)
    times: dict[int, Times] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for n in sizes:
            progress(f"N = {n:,}: ingest")
            times[n] = measure_ingest(n, args.database_url, tmp)
            progress(f"N = {n:,}: match")
            times[n] |= measure_match(n, args.database_url, tmp)
            progress(f"N = {n:,}: audit fill and verify")
            times[n] |= measure_audit(n, args.database_url, tmp)
    small, large = sizes
    print(f"growth on {backend(args.database_url)}, N = {small:,} -> 2N = {large:,}, {args.clock} clock "
          f"(load average {os.getloadavg()[0]:.2f})")
    print(f"{'figure':<30}{'t(N) s':>10}{'t(2N) s':>10}{'t(2N)/t(N)':>12}{'N/s at 2N':>12}{'floor ratio':>13}")
    print("-" * 87)
    for figure, floor in FIGURES:
        t1, t2 = times[small][figure], times[large][figure]
        f1, f2 = times[small][floor], times[large][floor]
        print(f"{figure:<30}{t1:>10.3f}{t2:>10.3f}{t2 / t1:>11.2f}x{large / t2:>12,.0f}{f2 / f1:>12.2f}x")
    print("-" * 87)
    print("1.0-2.0 expected (2.0 = linear); the floor ratio is the same bench's floor at N and 2N "
          f"(ingest: HMAC+AES-GCM+insert; match: set intersection; verify: SHA-256 chain). "
          f"Total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
