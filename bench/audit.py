#!/usr/bin/env python3
"""Audit log benchmark: append, verify and proof latency at a million entries.

Fills a fresh database with per-subject audit entries the way a submission does (a Recorder with
one entry per pupil, appended by `broker.auditing.store.append_entries` in the step's transaction, a
checkpoint signed, committed), in batches of 100,000 (a 100k-record list per transaction). Then:

  (a) append throughput per batch, in entries/s;
  (b) verify throughput: `broker audit verify` itself (rows streamed from the database), and
      `audit.verify.verify_log` over the same rows in memory (chain, hashes and search columns);
  (c) inclusion and consistency proof latency through `broker.auditing.store.inclusion_proof` /
      `consistency_proof` against the database (median and p99 over random indices), and the
      HTTP endpoint on top.

Each is printed next to a floor measured in the same run over the same canonical bytes: a raw
SHA-256 chain (prev = sha256(prev + canonical)) in a hashlib loop. Proofs are also put next to one
indexed single-row SELECT (the least a proof served from the database can cost).

    .venv/bin/python bench/audit.py [--entries 1000000] [--batch 100000] [--database-url URL]

SQLite in a temporary directory by default. With a PostgreSQL URL the benchmark creates a scratch
database on that server (and drops it afterwards).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from audit.entry import Actor  # noqa: E402
from audit.merkle import MerkleTree, compute_root  # noqa: E402
from audit.proof import verify_consistency, verify_inclusion  # noqa: E402
from audit.verify import verify_log  # noqa: E402
from bench.common import scratch_database  # noqa: E402
from broker import create_app  # noqa: E402
from broker.app import runtime  # noqa: E402
from broker.app.extensions import db  # noqa: E402
from broker.auditing.step import Recorder, activity, checkpoint_signer  # noqa: E402
from broker.auditing.store import (  # noqa: E402
    DbNodes,
    append_entries,
    consistency_proof,
    inclusion_proof,
    latest_checkpoint,
    log_size,
    sign_checkpoint,
    stored_rows,
)
from broker.models import AuditCheckpoint, AuditEntryRow  # noqa: E402

CONVENANT = "thuiszitters-midden-gelre"
PARTY = "rbl-midden-gelre"


# -- helpers ---------------------------------------------------------------------------------------


def chain_floor(canonicals: list[bytes]) -> float:
    """Seconds for the raw SHA-256 chain over `canonicals`: the least any verifier must do."""
    sha256 = hashlib.sha256
    prev = bytes(32)
    started = time.perf_counter()
    for canonical in canonicals:
        prev = sha256(prev + canonical).digest()
    return time.perf_counter() - started


def two_hashes(canonicals: list[bytes]) -> float:
    """Seconds for leaf hash + chain hash per entry: the hashing verify_log cannot avoid."""
    sha256 = hashlib.sha256
    prev = bytes(32)
    started = time.perf_counter()
    for canonical in canonicals:
        sha256(b"\x00" + canonical).digest()
        prev = sha256(prev + canonical).digest()
    return time.perf_counter() - started


def best_floor(canonicals: list[bytes], rounds: int = 3) -> float:
    return min(chain_floor(canonicals) for _ in range(rounds))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Latency:
    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.seconds, 0.99) * 1000


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# -- (a) append ------------------------------------------------------------------------------------


@dataclass
class Batch:
    entries: int
    build: float  # Recorder.add: one entry per subject
    append: float  # append_entries: seal, insert rows, store Merkle nodes
    sign: float  # sign_checkpoint: root, consistency with the previous checkpoint, signature
    commit: float
    floor: float  # raw SHA-256 chain over the batch's canonical bytes

    @property
    def transaction(self) -> float:
        return self.append + self.sign + self.commit


def fill(app: Any, total: int, batch: int) -> list[Batch]:
    """Append `total` per-subject entries in transactions of `batch` entries, as submissions do."""
    batches: list[Batch] = []
    actor = Actor(type="client", id=str(uuid.uuid4()), party=PARTY)
    done = 0
    with app.app_context():
        session = db.session
        signer = checkpoint_signer()
        uri = activity(CONVENANT, "quarterly_list")
        while done < total:
            n = min(batch, total - done)
            subjects = [hashlib.sha256(b"subject %d" % (done + k)).hexdigest() for k in range(n)]
            started = time.perf_counter()
            recorder = Recorder(actor=actor, started=runtime.now())
            recorder.add(
                "record.received",
                uri,
                subjects=subjects,
                convenant_id=CONVENANT,
                attributes={"submission_id": str(uuid.uuid4()), "kind": "quarterly_list"},
            )
            built = time.perf_counter()
            sealed = append_entries(session, recorder.pending)
            appended = time.perf_counter()
            sign_checkpoint(session, signer, runtime.now())
            signed = time.perf_counter()
            session.commit()
            committed = time.perf_counter()
            floor = best_floor([s.canonical for s in sealed], rounds=1)
            batches.append(Batch(n, built - started, appended - built, signed - appended,
                                 committed - signed, floor))
            done += n
            session.expunge_all()
            progress(f"appended {done:,}/{total:,} ({n / (committed - built):,.0f} entries/s in that transaction)")
    return batches


def small_steps(app: Any, count: int) -> dict[str, Latency]:
    """Latency of a one-pupil submission's audit write on the full log: 3 entries, a checkpoint."""
    results = {name: Latency(name) for name in ("append", "sign", "transaction")}
    actor = Actor(type="client", id=str(uuid.uuid4()), party=PARTY)
    with app.app_context():
        session = db.session
        signer = checkpoint_signer()
        uri = activity(CONVENANT, "case")
        for n in range(count):
            recorder = Recorder(actor=actor, started=runtime.now())
            about = {"submission_id": str(uuid.uuid4()), "kind": "case"}
            subject = [hashlib.sha256(b"small %d" % n).hexdigest()]
            recorder.add("submission.accepted", uri, root=True, convenant_id=CONVENANT, attributes=about)
            recorder.add("record.received", uri, subjects=subject, convenant_id=CONVENANT, attributes=about)
            recorder.add("delivery.created", uri, subjects=subject, convenant_id=CONVENANT, attributes=about)
            started = time.perf_counter()
            append_entries(session, recorder.pending)
            appended = time.perf_counter()
            sign_checkpoint(session, signer, runtime.now())
            signed = time.perf_counter()
            session.commit()
            committed = time.perf_counter()
            results["append"].seconds.append(appended - started)
            results["sign"].seconds.append(signed - appended)
            results["transaction"].seconds.append(committed - started)
    progress(f"{count} one-pupil submissions appended")
    return results


# -- (b) verify ------------------------------------------------------------------------------------


@dataclass
class Verify:
    entries: int
    cli: float  # `broker audit verify`, end to end
    stream: float  # the same query streamed without verifying (the database's share)
    memory: float  # verify_log over rows already in memory
    floor: float  # raw SHA-256 chain over the same canonical bytes
    two_hashes: float  # leaf + chain hash per entry over the same bytes (reference)
    canonical_bytes: int
    rows: list[tuple[Any, ...]]


def stream_rows(session: Any) -> Iterator[tuple[Any, ...]]:
    """The rows exactly as `broker audit verify` streams them, search columns and all."""
    yield from stored_rows(session)


def measure_verify(app: Any) -> Verify:
    runner = app.test_cli_runner()
    progress("running `broker audit verify`")
    cli, result = timed(lambda: runner.invoke(args=["audit", "verify"]))
    if result.exit_code != 0 or "OK:" not in result.output:
        raise SystemExit(f"broker audit verify failed: {result.output[-2000:]}")
    with app.app_context():
        session = db.session
        progress("streaming the rows (no verification)")
        stream, rows = timed(lambda: list(stream_rows(session)))
        notes = list(session.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.tree_size)))
        vkey = checkpoint_signer().verifier_key
        session.rollback()
    progress("verify_log in memory")
    memory, outcome = timed(lambda: verify_log(iter(rows), notes, vkey, progress_every=65_536))
    assert outcome.ok and outcome.entries == len(rows), outcome.problem
    canonicals = [row[1] for row in rows]
    progress("floor: raw SHA-256 chain (best of 3)")
    floor = best_floor(canonicals)
    both = min(two_hashes(canonicals) for _ in range(2))
    return Verify(len(rows), cli, stream, memory, floor, both, sum(map(len, canonicals)), rows)


# -- (c) proofs ------------------------------------------------------------------------------------


def measure_proofs(app: Any, count: int, seed: int, leaves: list[bytes]) -> dict[str, Latency]:
    rng = random.Random(seed)
    results = {name: Latency(name) for name in
               ("inclusion", "consistency", "http inclusion", "row lookup", "memory inclusion")}
    with app.app_context():
        session = db.session
        checkpoint = latest_checkpoint(session)
        assert checkpoint is not None
        size, root = checkpoint.tree_size, checkpoint.root_hash
        assert size == log_size(session) == len(leaves)
        indices = [rng.randrange(size) for _ in range(count)]
        olds = [rng.randrange(1, size) for _ in range(count)]
        for index in indices[:5]:  # warm the connection and the page cache a little
            inclusion_proof(session, index, size)
        progress(f"{count} inclusion proofs through the database")
        for index in indices:
            seconds, proof = timed(lambda index=index: inclusion_proof(session, index, size))
            results["inclusion"].seconds.append(seconds)
            assert verify_inclusion(index, size, leaves[index], proof, root), index
        progress(f"{count} consistency proofs through the database")
        for old in olds:
            seconds, proof = timed(lambda old=old: consistency_proof(session, old, size))
            results["consistency"].seconds.append(seconds)
            old_root = compute_root(old, DbNodes(session))
            assert verify_consistency(old, size, old_root, root, proof), old
        progress(f"{count} single-row lookups (floor for a database round trip)")
        for index in indices:
            statement = select(AuditEntryRow.leaf_hash).where(AuditEntryRow.idx == index)
            seconds, _ = timed(lambda statement=statement: session.execute(statement).scalar_one())
            results["row lookup"].seconds.append(seconds)
        session.rollback()
    http = app.test_client()
    progress(f"{count} GET /api/v1/audit/entries/<i>/proof")
    for index in indices:
        seconds, response = timed(lambda index=index: http.get(f"/api/v1/audit/entries/{index}/proof"))
        assert response.status_code == 200, response.get_data(as_text=True)
        results["http inclusion"].seconds.append(seconds)
    tree = MerkleTree(leaves)
    for index in indices:
        seconds, _ = timed(lambda index=index: tree.prove_inclusion(index, size))
        results["memory inclusion"].seconds.append(seconds)
    return results


# -- main ------------------------------------------------------------------------------------------


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f}" if seconds > 0 else f"{'-':>12}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries to append (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=100_000, help="entries per transaction (default 100,000)")
    parser.add_argument("--proofs", type=int, default=200, help="random indices for the latencies")
    parser.add_argument("--small-steps", type=int, default=20,
                        help="one-pupil submissions timed on the full log (default 20)")
    parser.add_argument("--seed", type=int, default=6962)
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL server URL (a scratch database is created there); SQLite by default")
    args = parser.parse_args()
    started = time.perf_counter()

    with (
        tempfile.TemporaryDirectory() as tmpdir,
        scratch_database(args.database_url, Path(tmpdir), "broker_bench_audit") as url,
    ):
        app = create_app({
            "TESTING": True,
            "DATABASE_URL": url,
            "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "LOG_LEVEL": "WARNING", "PUBLIC_URL": "http://localhost",
            "LOG_FILE": str(Path(tmpdir) / "broker.log"),
            "KEY_VAULT_DIR": str(Path(tmpdir) / "vault"),
        })
        init = app.test_cli_runner().invoke(args=["init"])
        assert init.exit_code == 0, init.output
        dialect = make_url(url).get_backend_name()
        print(f"audit benchmark on {dialect}: {args.entries:,} entries in transactions of {args.batch:,}",
              flush=True)
        batches = fill(app, args.entries, args.batch)
        steps = small_steps(app, args.small_steps)
        verify = measure_verify(app)
        latencies = measure_proofs(app, args.proofs, args.seed, [row[3] for row in verify.rows])
        with app.app_context():
            db.engine.dispose()

    # -- report --------------------------------------------------------------------------------
    first = batches[0]
    appended = sum(b.entries for b in batches)
    append_total = sum(b.transaction for b in batches)
    append_only = sum(b.append for b in batches)
    floor_append = sum(b.floor for b in batches)
    median_tx = statistics.median(b.entries / b.transaction for b in batches)
    n = verify.entries
    mean_bytes = verify.canonical_bytes / n

    print()
    print(f"{'SUMMARY':<52}{'entries':>10}{'seconds':>10}{'entries/s':>13}{'floor/s':>13}{'ratio':>8}")
    print("-" * 106)

    def line(label: str, entries: int, seconds: float, floor_seconds: float) -> None:
        ratio = (floor_seconds / seconds) if seconds else 0.0
        print(f"{label:<52}{entries:>10,}{seconds:>10.2f}{rate(entries, seconds)} "
              f"{rate(entries, floor_seconds)}{ratio:>7.0%}")

    print("(a) append, per-subject entries, one transaction per batch")
    line(f"    first batch: append+sign+commit ({first.entries:,}/tx)", first.entries, first.transaction, first.floor)
    line("    all batches: append+sign+commit", appended, append_total, floor_append)
    line("    all batches: append_entries alone", appended, append_only, floor_append)
    last = batches[-1]
    line(f"    last batch: append+sign+commit (log at {appended - last.entries:,})", last.entries,
         last.transaction, last.floor)
    print(f"    median transaction {median_tx:,.0f} entries/s; building the entries (Recorder.add) "
          f"{appended / sum(b.build for b in batches):,.0f} entries/s, outside the transaction")
    print(f"    per transaction: sign_checkpoint {first.sign * 1000:.1f} ms at the first batch, "
          f"{last.sign * 1000:.1f} ms at the last; commit {last.commit * 1000:.1f} ms")
    print(f"    one-pupil submission (3 entries + checkpoint) on the full log, {args.small_steps} times: "
          f"median {steps['transaction'].median_ms:.1f} ms, p99 {steps['transaction'].p99_ms:.1f} ms "
          f"(append_entries {steps['append'].median_ms:.1f} ms, sign_checkpoint {steps['sign'].median_ms:.1f} ms)")
    print(f"(b) verify {n:,} entries ({mean_bytes:.0f} canonical bytes each)")
    line("    broker audit verify (streamed from the database)", n, verify.cli, verify.floor)
    line("    verify_log in memory (pure library)", n, verify.memory, verify.floor)
    line("    streaming the rows only (database share)", n, verify.stream, verify.floor)
    line("    floor: raw SHA-256 chain, hashlib loop", n, verify.floor, verify.floor)
    line("    reference: leaf+chain hash (2 SHA-256 per entry)", n, verify.two_hashes, verify.floor)
    print(f"(c) proof latency at {n:,} entries, {args.proofs} random indices")
    print(f"    {'':<48}{'median ms':>12}{'p99 ms':>10}{'vs row lookup':>15}{'vs floor chain':>16}")
    lookup = latencies["row lookup"].median_ms
    for key, label in [
        ("inclusion", "inclusion_proof (DbNodes, database)"),
        ("consistency", "consistency_proof (DbNodes, database)"),
        ("http inclusion", "GET /api/v1/audit/entries/<i>/proof"),
        ("memory inclusion", "MerkleTree.prove_inclusion (in memory)"),
        ("row lookup", "floor: one indexed single-row SELECT"),
    ]:
        item = latencies[key]
        print(f"    {label:<48}{item.median_ms:>12.3f}{item.p99_ms:>10.3f}"
              f"{item.median_ms / lookup:>14.1f}x{item.median_ms / (verify.floor * 1000):>15.5%}")
    print("-" * 106)
    verify_ratio = verify.floor / verify.cli
    memory_ratio = verify.floor / verify.memory
    proof_p99 = max(latencies["inclusion"].p99_ms, latencies["consistency"].p99_ms)
    print(f"aim: verify >= 50% of floor: broker audit verify {verify_ratio:.0%}, verify_log in memory "
          f"{memory_ratio:.0%} -> {'met' if verify_ratio >= 0.5 else 'NOT met'} (two SHA-256 passes per "
          f"entry alone reach {verify.floor / verify.two_hashes:.0%})")
    print(f"aim: proofs < 5 ms: inclusion median {latencies['inclusion'].median_ms:.2f} ms, consistency median "
          f"{latencies['consistency'].median_ms:.2f} ms, worst p99 {proof_p99:.2f} ms -> "
          f"{'met' if max(latencies['inclusion'].median_ms, latencies['consistency'].median_ms) < 5 else 'NOT met'}"
          f"{'' if proof_p99 < 5 else ' (p99 above 5 ms)'}")
    print(f"ratio = floor time / measured time (100% = as fast as a bare SHA-256 chain); "
          f"total run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
