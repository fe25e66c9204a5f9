"""Faults and concurrency against real `broker serve` processes (gunicorn), real HTTP and real OAuth.

1. kill -9 of the whole server in the middle of a 100,000-record list: nothing of it is stored, the
   audit chain verifies, and the same list then goes in whole, once.
2. The database goes away (PostgreSQL, a private cluster stopped with `-m immediate`): the API
   answers 503 problem+json with Retry-After, quickly; when the database is back, the same broker
   processes serve again, and what was acknowledged before is all there.
3. 20 concurrent submitters with fetches and acks, then every acknowledged submission checked in
   the database and the audit log; and one client assertion sent concurrently is honoured once.

Set BROKER_REQUIRE_FAULT_TESTS=1 (CI) to turn a missing PostgreSQL installation into a failure, and
BROKER_CONCURRENCY_SECONDS to choose how long the submitters run (60 s in CI, 10 s otherwise).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from fixtures.records import CONVENANT, GEMEENTE_POSTCODE, make_record
from serverproc import (
    PROBLEM_JSON,
    BrokerEnv,
    BrokerServer,
    HttpParty,
    PgCluster,
    Registrar,
    can_run_as_postgres,
    close_parties,
    postgres_bin,
)
from sqlalchemy import bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from broker.app.db import make_engine
from schemas.convenant_file import DEFAULT_DIR, load_convenant

REQUIRE = os.environ.get("BROKER_REQUIRE_FAULT_TESTS") == "1"
SUBMISSIONS = f"/api/v1/convenants/{CONVENANT}/submissions"
QUARTER = "2026-Q4"
LIST_SIZE = 100_000
RBL = "rbl-midden-gelre"
SWVS = ("swv-passend-wijs", "swv-de-verbinding", "swv-de-liemers")
TABLES = ("submissions", "records", "deliveries", "delivery_records", "data_keys", "quarter_lists")
UNAVAILABLE_TIMEOUT = 15  # seconds: a 503 must come quickly, not after a hang


def _is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def _workers(url: str) -> int:
    """4 gunicorn workers on PostgreSQL; SQLite serves one worker only."""
    return 4 if _is_postgres(url) else 1


def skip_or_fail(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (BROKER_REQUIRE_FAULT_TESTS=1: this test must run)")
    pytest.skip(reason)


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Any:
    """Return a function that prints a figure to the terminal, past pytest's capture (the CI log shows it)."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n[faults] {line}", flush=True)

    return say


@pytest.fixture
def broker_env(database_url: str, tmp_path: Path) -> BrokerEnv:
    """A broker on the test's fresh database: `broker init` run as its own process."""
    env = BrokerEnv(database_url, tmp_path / "broker")
    env.cli("init")
    return env


@pytest.fixture
def servers() -> Iterator[list[BrokerServer]]:
    """Every server a test starts goes in here, and is stopped (killed if need be) afterwards."""
    started: list[BrokerServer] = []
    yield started
    try:
        for server in started:
            server.stop()
    finally:
        close_parties()


def table_counts(url: str) -> dict[str, int]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608
    finally:
        engine.dispose()


def audit_verify(env: BrokerEnv) -> str:
    """`broker audit verify` as its own process; exit code 0 or the test fails with its output."""
    result = env.cli("audit", "verify", check=False)
    assert result.returncode == 0, f"audit verify exited {result.returncode}: {result.stdout}\n{result.stderr[-3000:]}"
    assert result.stdout.startswith("OK"), result.stdout
    return result.stdout.strip()


def audit_entries(url: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The records (decoded canonical JSON) of every audit entry with one of `names`, in log order."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT canonical FROM audit_entries WHERE name IN :names ORDER BY idx").bindparams(
                    bindparam("names", expanding=True)
                ),
                {"names": list(names)},
            ).scalars()
            return [json.loads(bytes(row)) for row in rows]
    finally:
        engine.dispose()


def problem_of(response: requests.Response) -> dict[str, Any] | None:
    if response.headers.get("Content-Type", "").split(";")[0].strip() != PROBLEM_JSON:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def unavailable_problem(response: requests.Response) -> str | None:
    """None when `response` is the documented 503 (problem+json, service-unavailable, Retry-After); else why not."""
    if response.status_code != 503:
        return f"status {response.status_code}: {response.text[:300]}"
    body = problem_of(response)
    if body is None:
        return f"503 but {response.headers.get('Content-Type')!r}, not {PROBLEM_JSON}: {response.text[:300]}"
    if body.get("type") != "/problems/service-unavailable" or body.get("status") != 503:
        return f"503 problem of type {body.get('type')!r}: {body}"
    retry = response.headers.get("Retry-After", "")
    if not retry.isdigit():
        return f"503 without a Retry-After of seconds: {retry!r}"
    return None


# -- 1. kill -9 in the middle of a 100,000-record list ----------------------------------------------


def quarterly_list_body(n: int) -> bytes:
    gemeenten = list(GEMEENTE_POSTCODE)
    categories = ["langdurig_verzuim", "absoluut_verzuim", "vrijstelling_5a"]
    records = [make_record(i, categories[i % 3], gemeenten[i % len(gemeenten)]) for i in range(n)]
    return json.dumps({"kind": "quarterly_list", "quarter": QUARTER, "records": records}).encode()


class WriteProbe:
    """Tells when the broker's open transaction is demonstrably writing the list's rows.

    PostgreSQL: a backend of the database has a transaction id (it wrote) and its current or last
    statement inserts records or audit entries. SQLite: the WAL grew by megabytes (the page cache
    spills the uncommitted records into it).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url, poolclass=NullPool) if _is_postgres(url) else None
        self.wal = Path(make_url(url).database or "").with_name(Path(make_url(url).database or "").name + "-wal")
        self.wal_start = self._wal_size()

    def _wal_size(self) -> int:
        try:
            return self.wal.stat().st_size
        except OSError:
            return 0

    def evidence(self) -> str | None:
        if self.engine is None:
            grown = self._wal_size() - self.wal_start
            return f"WAL grew by {grown / 2**20:.1f} MiB of uncommitted pages" if grown >= 4 * 2**20 else None
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT state, left(query, 60) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_xid IS NOT NULL "
                    "AND (query ILIKE 'INSERT INTO records%' OR query ILIKE 'INSERT INTO audit_entries%')"
                )
            ).first()
        return None if row is None else f"open transaction writing ({row[0]}): {row[1]}"

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def test_kill_9_mid_submission_stores_nothing_and_resubmission_succeeds(
    broker_env: BrokerEnv, database_url: str, servers: list[BrokerServer], report: Any
) -> None:
    """SIGKILL of the gunicorn master and its workers while a 100,000-record list is being stored:
    after a restart none of it is there, the audit chain verifies, and the same list goes in whole."""
    registrar = Registrar(broker_env)
    try:
        rbl = registrar.add(RBL)
    finally:
        registrar.close()
    body = quarterly_list_body(LIST_SIZE)
    server = BrokerServer(broker_env, workers=_workers(database_url), name="kill")
    servers.append(server)
    server.start()
    rbl.login()
    before = table_counts(database_url)
    report(f"kill test: {len(body) / 2**20:.1f} MiB body, {len(server.pids())} server processes")

    outcome: dict[str, Any] = {}

    def post() -> None:
        try:
            outcome["response"] = rbl.post_raw(SUBMISSIONS, body, timeout=600)
        except requests.RequestException as e:
            outcome["error"] = e

    probe = WriteProbe(database_url)
    thread = threading.Thread(target=post, daemon=True)
    started = time.monotonic()
    thread.start()
    evidence = None
    try:
        while thread.is_alive() and time.monotonic() - started < 600:
            evidence = probe.evidence()
            if evidence:
                break
            time.sleep(0.05)
    finally:
        probe.close()
    killed_at = time.monotonic() - started
    pids = server.pids()
    server.kill()
    thread.join(60)
    assert "response" not in outcome, (
        f"the list was answered before the kill ({killed_at:.1f} s): "
        f"{outcome['response'].status_code} {outcome['response'].text[:500]}\n{server.log_tail()}"
    )
    assert evidence, f"no sign of the list being stored after {killed_at:.1f} s\n{server.log_tail()}"
    assert server.pids() == [], "processes of the killed server survived"
    report(f"kill test: SIGKILL to {len(pids)} processes {killed_at:.2f} s after the POST began ({evidence})")

    server.start()  # the same database, the same port
    after_restart = table_counts(database_url)
    assert after_restart == before, f"rows of the killed list were stored: before {before}, after {after_restart}"
    verified = audit_verify(broker_env)
    report(f"kill test: after restart audit verify: {verified[:80]}")

    started = time.monotonic()
    response = rbl.post_raw(SUBMISSIONS, body, timeout=600)
    ingest = time.monotonic() - started
    assert response.status_code == 201, (response.status_code, response.text[:2000], server.log_tail())
    accepted = response.json()
    assert accepted["accepted"] == LIST_SIZE
    report(f"kill test: the same 100,000-record list resubmitted in {ingest:.1f} s "
           f"({LIST_SIZE / ingest:,.0f} records/s); killed at {killed_at / ingest:.0%} of that")
    server.stop()

    final = table_counts(database_url)
    assert final["submissions"] == before["submissions"] + 1
    assert final["records"] == before["records"] + LIST_SIZE
    assert final["quarter_lists"] == before["quarter_lists"] + 1
    assert final["deliveries"] == before["deliveries"]  # a quarterly list is not forwarded whole
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM records WHERE submission_id = :id"),
                {"id": accepted["submission_id"]},
            ).one()
            versions = conn.execute(
                text("SELECT version FROM quarter_lists WHERE party_id = :p AND quarter = :q"), {"p": RBL, "q": QUARTER}
            ).scalars().all()
    finally:
        engine.dispose()
    assert tuple(stored) == (LIST_SIZE, LIST_SIZE, 0, LIST_SIZE - 1)
    assert versions == [1], f"the killed list left a version number behind: {versions}"
    summaries = audit_entries(database_url, ("submission.accepted",))
    assert [e["attributes"]["submission_id"] for e in summaries] == [accepted["submission_id"]]
    started = time.monotonic()
    audit_verify(broker_env)
    report(f"kill test: final audit verify took {time.monotonic() - started:.1f} s")


# -- 2. the database goes away and comes back ------------------------------------------------------


@pytest.fixture
def private_postgres(database_url: str) -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this test's own, which it may stop and start."""
    if not _is_postgres(database_url):
        pytest.skip(
            "the database-outage test runs in the PostgreSQL pass of the suite "
            "(BROKER_DATABASE_URL=postgresql+psycopg://...): it stops and restarts a PostgreSQL server, "
            "and an SQLite file cannot be unreachable"
        )
    bin_dir = postgres_bin()
    if bin_dir is None:
        skip_or_fail("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    assert bin_dir is not None
    why_not = can_run_as_postgres()
    if why_not:
        skip_or_fail(f"cannot start a private PostgreSQL cluster: {why_not}")
    cluster = PgCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def case_records(start: int, party_id: str, n: int) -> list[dict[str, Any]]:
    gemeenten = {RBL: ["Arnhem", "Duiven", "Overbetuwe"], "swv-de-liemers": ["Zevenaar", "Duiven"]}[party_id]
    return [make_record(start + i, gemeente=gemeenten[i % len(gemeenten)]) for i in range(n)]


def test_database_outage_is_503_and_recovers_without_restart(
    private_postgres: PgCluster, tmp_path: Path, servers: list[BrokerServer], report: Any
) -> None:
    """With PostgreSQL stopped (-m immediate) submissions, delivery lists and tokens are 503
    problem+json with Retry-After within seconds; once it is back the same broker processes serve
    again, every submission acknowledged before is intact and the audit chain verifies."""
    admin = make_engine(private_postgres.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text('CREATE DATABASE "broker"'))
    admin.dispose()
    url = private_postgres.url("broker")
    env = BrokerEnv(url, tmp_path / "broker")
    env.cli("init")
    registrar = Registrar(env)
    try:
        rbl, liemers = registrar.add(RBL), registrar.add("swv-de-liemers")
        spare = registrar.add(RBL)  # asks for its first token during the outage
    finally:
        registrar.close()
    server = BrokerServer(env, workers=4, scheduler=True, name="outage")
    servers.append(server)
    server.start()

    acknowledged: dict[str, int] = {}
    for i, (party, n) in enumerate([(rbl, 3), (liemers, 2), (rbl, 1), (liemers, 4)]):
        response = party.submit(case_records(100 * i, party.party_id, n))
        assert response.status_code == 201, (response.status_code, response.text[:1000])
        acknowledged[response.json()["submission_id"]] = n
    assert liemers.get("/api/v1/deliveries").status_code == 200

    private_postgres.stop("immediate")
    problems: list[str] = []
    timings: list[float] = []

    def expect_503(label: str, call: Any) -> None:
        started = time.monotonic()
        try:
            response = call()
        except requests.RequestException as e:
            problems.append(f"during the outage, {label}: {type(e).__name__} ({e})")
            return
        finally:
            timings.append(time.monotonic() - started)
        why = unavailable_problem(response)
        if why:
            problems.append(f"during the outage, {label}: {why}")

    # Several of each, so that more than one worker (and each worker's pooled connections) answers.
    for round_ in range(6):
        expect_503("POST submissions", lambda r=round_: rbl.submit(
            case_records(5000 + 10 * r, RBL, 2), timeout=UNAVAILABLE_TIMEOUT))
        expect_503("GET deliveries", lambda: liemers.get("/api/v1/deliveries", timeout=UNAVAILABLE_TIMEOUT))
        expect_503("POST /oauth/token", lambda: spare.request_token(timeout=UNAVAILABLE_TIMEOUT))
    expect_503("GET /readyz", lambda: requests.get(f"{server.base_url}/readyz", timeout=UNAVAILABLE_TIMEOUT))
    try:
        health = requests.get(f"{server.base_url}/healthz", timeout=UNAVAILABLE_TIMEOUT)
        if health.status_code != 200:
            problems.append(f"during the outage, GET /healthz (liveness) answered {health.status_code}")
    except requests.RequestException as e:
        problems.append(f"during the outage, GET /healthz: {type(e).__name__}")
    report(f"outage: {len(timings)} calls answered in at most {max(timings):.2f} s "
           f"(median {statistics.median(timings):.2f} s)")
    assert server.alive(), f"the broker died with its database:\n{server.log_tail()}"

    private_postgres.start()
    recovered_after = time.monotonic()
    for round_ in range(8):
        response = rbl.submit(case_records(7000 + 10 * round_, RBL, 2), timeout=30)
        if response.status_code == 201:
            acknowledged[response.json()["submission_id"]] = 2
        else:
            problems.append(f"after the restart, POST submissions: {response.status_code} {response.text[:300]}")
        response = liemers.get("/api/v1/deliveries", timeout=30)
        if response.status_code != 200:
            problems.append(f"after the restart, GET deliveries: {response.status_code} {response.text[:300]}")
        response = spare.request_token(timeout=30)
        if response.status_code != 200:
            problems.append(f"after the restart, POST /oauth/token: {response.status_code} {response.text[:300]}")
    report(f"outage: 24 calls after the database came back took {time.monotonic() - recovered_after:.2f} s")
    assert server.alive(), f"the broker died:\n{server.log_tail()}"
    server.stop()

    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT id, record_count FROM submissions")).all())
            counted = dict(
                conn.execute(text("SELECT submission_id, COUNT(*) FROM records GROUP BY submission_id")).all()
            )
    finally:
        engine.dispose()
    for submission_id, n in acknowledged.items():
        if stored.get(submission_id) != n or counted.get(submission_id) != n:
            problems.append(f"acknowledged submission {submission_id} ({n} records) is stored as "
                            f"{stored.get(submission_id)} / {counted.get(submission_id)} records")
    if set(stored) != set(acknowledged):
        problems.append(f"submissions stored but never acknowledged: {sorted(set(stored) - set(acknowledged))}")
    result = env.cli("audit", "verify", check=False)
    if result.returncode != 0:
        problems.append(f"audit verify exited {result.returncode}: {result.stderr[-1500:]}")
    assert not problems, "\n".join(problems) + "\n--- broker log ---\n" + server.log_tail(3000)


# -- 3. concurrency ----------------------------------------------------------------------------------


def concurrency_seconds(url: str) -> float:
    configured = os.environ.get("BROKER_CONCURRENCY_SECONDS")
    if configured:
        return float(configured)
    if _is_postgres(url):
        return 60.0 if REQUIRE else 10.0
    return 20.0 if REQUIRE else 10.0  # one worker on SQLite: shorter, still 20 clients at once


@dataclass
class Sent:
    submission_id: str
    party_id: str
    records: list[tuple[str, str, str]]  # (bsn, category, gemeente) in order
    deliveries: dict[str, tuple[str, int]]  # delivery_id -> (recipient, records)


@dataclass
class Tally:
    """What the submitters saw; appended to from many threads (list.append is atomic)."""

    acknowledged: list[Sent] = field(default_factory=list)
    refused: list[tuple[int | None, str, list[str]]] = field(default_factory=list)  # status, detail, bsns
    latencies: list[float] = field(default_factory=list)
    other_calls: collections.Counter[str] = field(default_factory=collections.Counter)
    bad_calls: list[str] = field(default_factory=list)
    fetch_mismatches: list[str] = field(default_factory=list)
    fetched_records: int = 0


class Routing:
    """Who must receive a record, from the werkgebieden in the convenant file (not the broker's code)."""

    def __init__(self) -> None:
        convenant = load_convenant(DEFAULT_DIR / f"{CONVENANT}.toml")
        self.parties = {p.id: p for p in convenant.parties}

    def recipient(self, sender: str, gemeente: str) -> str:
        if sender == RBL:
            targets = [p.id for p in self.parties.values() if p.role == "swv" and gemeente in p.werkgebied]
            assert len(targets) == 1, (gemeente, targets)
            return targets[0]
        return RBL

    def gemeenten(self, party_id: str) -> list[str]:
        return list(self.parties[party_id].werkgebied)

    def categories(self, party_id: str) -> list[str]:
        return list(self.parties[party_id].provides)


def _classify(response: requests.Response) -> str | None:
    """None for a success; 'unavailable' for the documented 503; else a description of the error."""
    if response.status_code < 300:
        return None
    if unavailable_problem(response) is None:
        return "unavailable"
    return f"{response.status_code} {response.headers.get('Content-Type')}: {response.text[:300]}"


def submitter(
    party: HttpParty, routing: Routing, numbers: Iterator[int], expected: dict[str, str],
    tally: Tally, stop_at: float, seed: int,
) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data, not crypto
    gemeenten = routing.gemeenten(party.party_id)
    categories = routing.categories(party.party_id)
    iteration = 0
    while time.monotonic() < stop_at:
        iteration += 1
        records = []
        for _ in range(rng.randint(1, 5)):
            n = next(numbers)
            record = make_record(n, rng.choice(categories), rng.choice(gemeenten))
            expected[record["bsn"]] = routing.recipient(party.party_id, record["adres"]["gemeente"])
            records.append(record)
        started = time.monotonic()
        try:
            response = party.submit(records, timeout=120)
        except requests.RequestException as e:
            tally.refused.append((None, f"{type(e).__name__}: {e}", [r["bsn"] for r in records]))
            continue
        tally.latencies.append(time.monotonic() - started)
        if response.status_code == 201:
            body = response.json()
            tally.acknowledged.append(Sent(
                body["submission_id"], party.party_id,
                [(r["bsn"], r["category"], r["adres"]["gemeente"]) for r in records],
                {d["delivery_id"]: (d["recipient"], d["records"]) for d in body["deliveries"]},
            ))
        else:
            tally.refused.append((response.status_code, _classify(response) or "", [r["bsn"] for r in records]))
        if iteration % 3 == 0:
            fetch_and_ack(party, expected, tally, rng)


def fetch_and_ack(party: HttpParty, expected: dict[str, str], tally: Tally, rng: random.Random) -> None:
    def call(label: str, response: requests.Response) -> bool:
        problem = _classify(response)
        tally.other_calls[f"{label} {response.status_code}"] += 1
        if problem is not None and problem != "unavailable":
            tally.bad_calls.append(f"{label}: {problem}")
        return problem is None

    try:
        listing = party.get("/api/v1/deliveries?status=open", timeout=120)
        if not call("list", listing):
            return
        open_ = [d for d in listing.json()["deliveries"] if d.get("kind", "case") == "case"]
        if not open_:
            return
        delivery_id = rng.choice(open_[:10])["delivery_id"]
        fetched = party.get(f"/api/v1/deliveries/{delivery_id}", timeout=120)
        if not call("fetch", fetched):
            return
        for record in fetched.json()["records"]:
            tally.fetched_records += 1
            if expected.get(record.get("bsn")) != party.party_id:
                tally.fetch_mismatches.append(
                    f"{party.party_id} fetched pupil {record.get('bsn')} meant for {expected.get(record.get('bsn'))}"
                )
        call("ack", party.post(f"/api/v1/deliveries/{delivery_id}/ack", timeout=120))
    except requests.RequestException as e:
        tally.bad_calls.append(f"fetch/ack: {type(e).__name__}: {e}")


def _clients_per_party() -> dict[str, int]:
    return {RBL: 8, "swv-passend-wijs": 4, "swv-de-verbinding": 4, "swv-de-liemers": 4}  # 20 in all


def test_twenty_concurrent_submitters_store_each_acknowledged_submission_exactly_once(
    broker_env: BrokerEnv, database_url: str, servers: list[BrokerServer], report: Any
) -> None:
    """20 clients of the 4 parties submit 1-5 records at a time, list, fetch and ack, for a bounded
    time against gunicorn (4 workers on PostgreSQL). Afterwards every acknowledged submission is
    stored once with exactly its records, routed once to the right party, audited once per
    submission and once per record; nothing else is stored and the audit chain verifies."""
    registrar = Registrar(broker_env)
    try:
        parties = [registrar.add(p) for p, n in _clients_per_party().items() for _ in range(n)]
        pseudonymiser = registrar.pseudonymiser(CONVENANT)
    finally:
        registrar.close()
    workers = _workers(database_url)
    server = BrokerServer(broker_env, workers=workers, scheduler=True, name="concurrency")
    servers.append(server)
    server.start()
    for party in parties:
        party.login()

    routing = Routing()
    numbers = itertools.count(1_000_000)
    expected: dict[str, str] = {}
    tally = Tally()
    seconds = concurrency_seconds(database_url)
    started = time.monotonic()
    stop_at = started + seconds
    threads = [
        threading.Thread(target=submitter, args=(p, routing, numbers, expected, tally, stop_at, i), daemon=True)
        for i, p in enumerate(parties)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 300)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a submitter hangs"
    assert server.alive(), f"the server died under load:\n{server.log_tail()}"
    server.stop()

    acked = tally.acknowledged
    unavailable = [r for r in tally.refused if r[1] == "unavailable"]
    errors = [r for r in tally.refused if r[1] != "unavailable"]
    latencies = sorted(tally.latencies)
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else latencies * 99
    report(
        f"concurrency ({'PostgreSQL' if workers > 1 else 'SQLite'}, {workers} worker(s), 20 clients, {elapsed:.0f} s): "
        f"{len(acked)} submissions acknowledged = {len(acked) / elapsed:.1f}/s, "
        f"{sum(len(s.records) for s in acked)} records; latency p50 {q[49] * 1000:.0f} ms, "
        f"p95 {q[94] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
        f"503s {len(unavailable)}, other errors {len(errors)}; calls {dict(tally.other_calls)}; "
        f"fetched {tally.fetched_records} records"
    )
    assert not errors, f"{len(errors)} submissions failed otherwise than 503 problem+json: {errors[:5]}"
    assert not tally.bad_calls, tally.bad_calls[:10]
    assert not tally.fetch_mismatches, tally.fetch_mismatches[:10]
    assert acked, "nothing was acknowledged"

    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            submissions = {
                row.id: row for row in conn.execute(
                    text("SELECT id, party_id, kind, record_count FROM submissions WHERE convenant_id = :c"),
                    {"c": CONVENANT},
                )
            }
            records: dict[str, list[Any]] = collections.defaultdict(list)
            for row in conn.execute(
                text("SELECT submission_id, seq, category, gemeente, pseudonym FROM records "
                     "ORDER BY submission_id, seq")
            ):
                records[row.submission_id].append(row)
            deliveries = {
                row.id: row for row in conn.execute(
                    text("SELECT id, submission_id, sender_party_id, recipient_party_id, record_count, kind "
                         "FROM deliveries WHERE submission_id IS NOT NULL")
                )
            }
            links: dict[tuple[str, int], list[str]] = collections.defaultdict(list)
            for row in conn.execute(text("SELECT delivery_id, submission_id, seq FROM delivery_records")):
                links[(row.submission_id, row.seq)].append(row.delivery_id)
    finally:
        engine.dispose()

    pseudonym = pseudonymiser.pseudonymise_bsn
    problems: list[str] = []
    acked_ids = [s.submission_id for s in acked]
    if len(set(acked_ids)) != len(acked_ids):
        problems.append("one submission id was acknowledged twice")
    if set(submissions) != set(acked_ids):
        problems.append(f"stored but never acknowledged: {sorted(set(submissions) - set(acked_ids))[:5]}; "
                        f"acknowledged but not stored: {sorted(set(acked_ids) - set(submissions))[:5]}")
    for sent in acked:
        row = submissions.get(sent.submission_id)
        if row is None:
            continue
        n = len(sent.records)
        if (row.party_id, row.kind, row.record_count) != (sent.party_id, "case", n):
            problems.append(f"{sent.submission_id}: stored as {tuple(row)}, sent {n} records by {sent.party_id}")
        stored = [(r.seq, r.category, r.gemeente, r.pseudonym) for r in records.get(sent.submission_id, [])]
        wanted = [(i, cat, gem, pseudonym(bsn)) for i, (bsn, cat, gem) in enumerate(sent.records)]
        if stored != wanted:
            problems.append(f"{sent.submission_id}: records {stored} instead of {wanted}")
        for seq, (bsn, _, _) in enumerate(sent.records):
            recipients = [deliveries[d].recipient_party_id for d in links.get((sent.submission_id, seq), [])]
            if recipients != [expected[bsn]]:
                problems.append(f"{sent.submission_id} record {seq}: routed to {recipients}, not [{expected[bsn]}]")
        own = {d.id: (d.recipient_party_id, d.record_count) for d in deliveries.values()
               if d.submission_id == sent.submission_id}
        if own != sent.deliveries:
            problems.append(f"{sent.submission_id}: deliveries {own}, the response said {sent.deliveries}")
    stray = set(records) - set(submissions)
    if stray:
        problems.append(f"records of no submission: {sorted(stray)[:5]}")
    refused_subjects = {pseudonym(bsn) for _, _, bsns in tally.refused for bsn in bsns}
    half = [r.submission_id for rows in records.values() for r in rows if r.pseudonym in refused_subjects]
    if half:
        problems.append(f"records of unacknowledged submissions were stored: {sorted(set(half))[:5]}")

    summaries = collections.Counter(
        e["attributes"]["submission_id"] for e in audit_entries(database_url, ("submission.accepted",))
    )
    received: dict[str, list[str]] = collections.defaultdict(list)
    for entry in audit_entries(database_url, ("record.received",)):
        received[entry["attributes"]["submission_id"]].append(entry["data_subject_id"])
    for sent in acked:
        if summaries.get(sent.submission_id) != 1:
            problems.append(f"{sent.submission_id}: {summaries.get(sent.submission_id, 0)} submission.accepted entries")
        subjects = sorted(received.get(sent.submission_id, []))
        if subjects != sorted(pseudonym(bsn) for bsn, _, _ in sent.records):
            problems.append(f"{sent.submission_id}: record.received for {len(subjects)} pupils, "
                            f"sent {len(sent.records)}")
    if set(summaries) - set(acked_ids) or set(received) - set(acked_ids):
        problems.append("audit entries of submissions never acknowledged: "
                        f"{sorted((set(summaries) | set(received)) - set(acked_ids))[:5]}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])
    started = time.monotonic()
    verified = audit_verify(broker_env)
    report(f"concurrency: {verified[:60]} (verified in {time.monotonic() - started:.1f} s)")


def test_one_client_assertion_sent_concurrently_gets_one_token(
    broker_env: BrokerEnv, database_url: str, servers: list[BrokerServer], report: Any
) -> None:
    """The same signed assertion, sent from 8 threads at once (so several gunicorn workers get it),
    is exchanged for a token exactly once; the others are refused as replays, none with a 5xx."""
    rounds, senders = 5, 8
    registrar = Registrar(broker_env)
    try:
        # A client per round: each refused replay counts towards the client's failed-login lockout.
        parties = [registrar.add(RBL if r % 2 == 0 else "swv-de-liemers") for r in range(rounds)]
    finally:
        registrar.close()
    server = BrokerServer(broker_env, workers=_workers(database_url), name="replay")
    servers.append(server)
    server.start()
    outcomes: list[list[tuple[int, Any]]] = []
    for party in parties:
        assertion = party.assertion()
        barrier = threading.Barrier(senders)
        results: list[tuple[int, Any]] = []

        def send(party: HttpParty = party, assertion: str = assertion, barrier: threading.Barrier = barrier,
                 results: list[tuple[int, Any]] = results) -> None:
            http = requests.Session()  # a connection of its own: any worker may take it
            try:
                barrier.wait(timeout=30)
                response = party.request_token(assertion, timeout=60, http=http)
                if response.status_code == 200 and "access_token" in response.json():
                    results.append((200, "token"))
                else:
                    body = problem_of(response)
                    results.append((response.status_code, body.get("error", body) if body else response.text[:300]))
            except requests.RequestException as e:
                results.append((0, type(e).__name__))
            finally:
                http.close()

        threads = [threading.Thread(target=send, daemon=True) for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        outcomes.append(sorted(results, key=lambda r: (r[0], str(r[1]))))
    report(f"replay: {senders} threads x {rounds} assertions, statuses per assertion: "
           f"{[dict(sorted(collections.Counter(status for status, _ in r).items())) for r in outcomes]}")
    server.stop()
    for results in outcomes:
        assert len(results) == senders
        assert [status for status, _ in results].count(200) == 1, results
        refused = [(status, error) for status, error in results if status != 200]
        # 401 for the replay; 429 once the failures lock the client out. Not a 503: a refusal is
        # no reason to be unavailable, and the refusal must be in the audit log.
        assert all(status in (401, 429) and error == "invalid_client" for status, error in refused), refused
    refusals = audit_entries(database_url, ("token.refused",))
    assert len(refusals) == rounds * (senders - 1), f"{len(refusals)} refusals audited, not {rounds * (senders - 1)}"
    audit_verify(broker_env)


# -- production rules of `broker serve` -------------------------------------------------------------


def test_serve_refuses_sqlite_with_several_workers(tmp_path: Path, database_url: str) -> None:
    """`broker serve --workers 4` on SQLite exits with a message instead of serving."""
    if _is_postgres(database_url):
        pytest.skip("an SQLite rule; the SQLite pass of the suite runs it")
    env = BrokerEnv(database_url, tmp_path / "broker")
    env.cli("init")
    server = BrokerServer(env, workers=4, name="refused")
    try:
        with pytest.raises(AssertionError, match="exited"):
            server.start(timeout=60)
        assert server.process is not None and server.process.returncode not in (0, None)
        assert "SQLite" in server.log_tail(), server.log_tail()
    finally:
        server.stop()
