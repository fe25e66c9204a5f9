#!/usr/bin/env python3
"""Load benchmark: a mix of case submissions and delivery fetches against `broker serve` (gunicorn).

Sets everything up itself in a temporary directory: `broker init`, a client per party, `broker serve
--no-scheduler` on a free loopback port, real tokens from /oauth/token (private_key_jwt). Then an
open-loop asyncio HTTP/1.1 client sends requests at a fixed arrival rate, whatever the answers take,
and times each from the moment it was due (so a slow answer cannot hide the requests queued behind
it: no coordinated omission). At most --connections requests are in flight; one that waited 10 s
for a connection fails unsent ("not sent"), so an overloaded server never works for clients that
left. The mix, per ten requests: 3 case submissions (1 valid record each, half from the RBL, half
from the SWVs), 3 GET /api/v1/deliveries/{id}, 3 POST .../ack and one GET /api/v1/deliveries?status=open
(which finds the ids to fetch).

The floor, measured in the same run against the same server at the same rate: GET /healthz, which
touches neither database nor keys: what gunicorn, Flask and this client cost per request. Then a
short closed-loop phase (--capacity-seconds) gives the most requests/s the mix and /healthz reach.

    .venv/bin/python bench/load.py [--rate 200] [--duration 30] [--warmup 5] [--workers W]
                                   [--database-url postgresql+psycopg://user@host/postgres]

SQLite (one worker) by default; with a PostgreSQL URL a scratch database is created on that server
and dropped afterwards, and gunicorn gets 2 workers per core unless --workers says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from fixtures.parties import ASSERTION_TYPE  # noqa: E402
from fixtures.records import GEMEENTE_POSTCODE, make_record  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import ECKey  # noqa: E402

from bench.common import (  # noqa: E402
    ROOT,
    SEND_BY,
    Pool,
    QueueTimeout,
    backend,
    exit_on_sigterm,
    free_port,
    percentile,
    scratch_database,
)
from broker.app.serving import default_workers  # noqa: E402

CONVENANT = "thuiszitters-midden-gelre"
BROKER = str(Path(sys.executable).with_name("broker"))
# Who submits (the RBL half the time) and what: (category cycle, gemeenten in the party's werkgebied).
RBL_CATEGORIES = ("langdurig_verzuim", "absoluut_verzuim", "vrijstelling_5a")
SUBMITTERS = {
    "rbl-midden-gelre": (RBL_CATEGORIES, tuple(GEMEENTE_POSTCODE)),
    "swv-passend-wijs": (("langdurig_verzuim",), ("Arnhem", "Renkum", "Rheden", "Rozendaal")),
    "swv-de-verbinding": (("langdurig_verzuim",), ("Lingewaard", "Overbetuwe")),
    "swv-de-liemers": (("langdurig_verzuim",), ("Duiven", "Westervoort", "Zevenaar")),
}
ORDER = ("rbl-midden-gelre", "swv-passend-wijs", "rbl-midden-gelre", "swv-de-verbinding", "rbl-midden-gelre",
         "swv-de-liemers")
PATTERN = "SFASFASFAL"  # submit, fetch, ack, list
QUEUED = 10.0  # seconds a request may wait for a free connection before it counts as failed
Client = tuple[str, ECKey]  # client_id, private key


# -- the broker under test ---------------------------------------------------------------------------


@contextmanager
def broker_server(url: str, tmp: Path, workers: int, threads: int) -> Iterator[tuple[int, dict[str, Client]]]:
    """`broker init`, a client per party, `broker serve`; yields (port, party clients); kills the server."""
    port = free_port()
    env = {**os.environ, "BROKER_DATABASE_URL": url, "BROKER_MASTER_KEY_FILE": str(tmp / "master.key"),
           "BROKER_SECRET_KEY_FILE": str(tmp / "secret.key"), "BROKER_KEY_VAULT_DIR": str(tmp / "vault"),
           "BROKER_PUBLIC_URL": f"http://127.0.0.1:{port}", "BROKER_LOG_FILE": str(tmp / "broker.log")}
    subprocess.run([BROKER, "init"], env=env, check=True, capture_output=True, cwd=ROOT)
    clients = {}
    for party in SUBMITTERS:
        key = ECKey.generate_key("P-256")
        (tmp / f"{party}.jwk").write_text(json.dumps(key.as_dict(private=False)))
        out = subprocess.run([BROKER, "clients", "add", "--party", party, "--public-key", str(tmp / f"{party}.jwk")],
                             env=env, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        clients[party] = (out.strip(), key)
    log = (tmp / "server.log").open("wb")
    server = subprocess.Popen([BROKER, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                               "--threads", str(threads), "--no-scheduler"], env=env, cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise SystemExit(f"broker serve exited: {(tmp / 'server.log').read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("broker serve did not listen within 30 s") from None
                time.sleep(0.1)
        yield port, clients
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # gunicorn's master and its workers: our own group only
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


async def get_token(pool: Pool, port: int, client: Client) -> str:
    (client_id, key), now = client, int(time.time())
    assertion = jwt.encode({"alg": "ES256"}, {"iss": client_id, "sub": client_id, "iat": now, "exp": now + 120,
                                              "aud": f"http://127.0.0.1:{port}/oauth/token", "jti": uuid.uuid4().hex},
                           key)
    form = f"grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}"
    status, body = await pool.request("POST", "/oauth/token", body=form.encode(),
                                      content_type="application/x-www-form-urlencoded")
    assert status == 200, body
    return str(json.loads(body)["access_token"])


# -- the mix -----------------------------------------------------------------------------------------

Sample = tuple[str, float, int | str]  # kind, seconds from due to answered, HTTP status or failure


class Mix:
    """The client side of four parties: submits, lists, fetches and acknowledges."""

    def __init__(self, pool: Pool, tokens: dict[str, str]) -> None:
        self.pool, self.tokens = pool, tokens
        self.pupil, self.submitter = itertools.count(), itertools.cycle(ORDER)
        self.lister = itertools.cycle(SUBMITTERS)
        self.open: dict[str, deque[str]] = {p: deque() for p in SUBMITTERS}
        self.seen: set[str] = set()
        self.fetched: deque[tuple[str, str]] = deque()

    def op(self, letter: str) -> tuple[str, Callable[[], Awaitable[int]]]:
        if letter == "F" and any(self.open.values()):
            party = max(self.open, key=lambda p: len(self.open[p]))
            delivery = self.open[party].popleft()
            return "fetch", lambda: self.fetch(party, delivery)
        if letter == "A" and self.fetched:
            party, delivery = self.fetched.popleft()
            return "ack", lambda: self.call("POST", f"/api/v1/deliveries/{delivery}/ack", party)
        if letter == "S":
            return "submit", self.submit
        if letter == "H":
            return "healthz", lambda: self.call("GET", "/healthz", None)
        return "list", self.list_open  # also when there is nothing (yet) to fetch or acknowledge

    async def call(self, method: str, path: str, party: str | None, body: bytes = b"") -> int:
        return (await self.pool.request(method, path, self.tokens[party] if party else None, body))[0]

    async def submit(self) -> int:
        party, n = next(self.submitter), next(self.pupil)
        categories, gemeenten = SUBMITTERS[party]
        record = make_record(n, categories[n % len(categories)], gemeenten[n % len(gemeenten)])
        body = json.dumps({"kind": "case", "records": [record]}).encode()
        return await self.call("POST", f"/api/v1/convenants/{CONVENANT}/submissions", party, body)

    async def list_open(self) -> int:
        party = next(self.lister)
        status, body = await self.pool.request("GET", "/api/v1/deliveries?status=open", self.tokens[party])
        for item in json.loads(body)["deliveries"] if status == 200 else []:
            if item["delivery_id"] not in self.seen:
                self.seen.add(item["delivery_id"])
                self.open[party].append(item["delivery_id"])
        return status

    async def fetch(self, party: str, delivery: str) -> int:
        status = await self.call("GET", f"/api/v1/deliveries/{delivery}", party)
        if status == 200:
            self.fetched.append((party, delivery))
        return status


async def timed(kind: str, call: Callable[[], Awaitable[int]], due: float, samples: list[Sample]) -> None:
    SEND_BY.set(due + QUEUED)  # in this request's task only
    try:
        status: int | str = await call()
    except QueueTimeout:
        status = "not sent (queued 10 s)"
    except TimeoutError:
        status = "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        status = type(e).__name__
    samples.append((kind, time.perf_counter() - due, status))


async def open_loop(mix: Mix, pattern: str, rate: float, duration: float) -> tuple[list[Sample], float]:
    """Start a request every 1/rate s for `duration` s, never waiting for answers; time each from its due."""
    samples: list[Sample] = []
    tasks, start = [], time.perf_counter()
    for i in itertools.count():
        due = start + i / rate
        if due >= start + duration:
            break
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(*mix.op(pattern[i % len(pattern)]), due, samples)))
    await asyncio.gather(*tasks)
    return samples, time.perf_counter() - start


async def closed_loop(mix: Mix, pattern: str, concurrency: int, duration: float) -> float:
    """As many requests as `concurrency` clients sending back to back manage: successful requests/s."""
    letters, end, samples = itertools.cycle(pattern), time.perf_counter() + duration, list[Sample]()

    async def client() -> None:
        while (now := time.perf_counter()) < end:
            await timed(*mix.op(next(letters)), now, samples)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return sum(1 for s in samples if s[2] in (200, 201)) / (time.perf_counter() - started)


# -- report ------------------------------------------------------------------------------------------


def row(label: str, samples: list[Sample], seconds: float, expected: dict[str, int]) -> tuple[float, float]:
    ms = [s[1] * 1000 for s in samples]
    errors = Counter(f"{s[2]}" for s in samples if s[2] != expected[s[0]])
    p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
    print(f"{label:<24}{len(ms):>7}{(len(ms) - errors.total()) / seconds:>8.1f}{p50:>9.1f}"
          f"{percentile(ms, 0.95):>9.1f}{p99:>9.1f}{max(ms, default=0):>9.1f}  {dict(errors) or 0}")
    return p50, p99


async def drain(pool: Pool, limit: float = 60.0) -> None:
    """Wait until the server has worked off what an overloaded phase left queued (/healthz fast again)."""
    fast, end = 0, time.perf_counter() + limit
    while fast < 3 and time.perf_counter() < end:
        started = time.perf_counter()
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
            await pool.request("GET", "/healthz")
        fast = fast + 1 if time.perf_counter() - started < 0.05 else 0


async def bench(args: argparse.Namespace, port: int, clients: dict[str, Client]) -> None:
    pool = Pool(port, args.connections)
    try:
        tokens = {party: await get_token(pool, port, client) for party, client in clients.items()}
        mix, expected = Mix(pool, tokens), {"submit": 201, "fetch": 200, "ack": 200, "list": 200, "healthz": 200}
        status, _ = await pool.request("GET", "/healthz")
        assert status == 200, f"GET /healthz answered {status}"
        await open_loop(mix, PATTERN, args.rate, args.warmup)
        await drain(pool)
        floor, floor_seconds = await open_loop(mix, "H", args.rate, args.floor_duration)
        await drain(pool)
        samples, seconds = await open_loop(mix, PATTERN, args.rate, args.duration)
        capacity = []
        for pattern in (PATTERN, "H") if args.capacity_seconds else ():
            await drain(pool)
            capacity.append(await closed_loop(mix, pattern, args.connections, args.capacity_seconds))
    finally:
        pool.close()
    print(f"{'request':<24}{'count':>7}{'ok/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  errors")
    print("-" * 92)
    for kind in ("submit", "list", "fetch", "ack"):
        row(kind, [s for s in samples if s[0] == kind], seconds, expected)
    p50, p99 = row("all (mix)", samples, seconds, expected)
    f50, f99 = row("floor: GET /healthz", floor, floor_seconds, expected)
    print("-" * 92)
    print(f"ratio mix/floor: p50 {p50 / f50:.1f}x, p99 {p99 / f99:.1f}x (latency from each request's due time)")
    if capacity:
        print(f"capacity (closed loop, {args.connections} connections, {args.capacity_seconds:g} s each): mix "
              f"{capacity[0]:,.0f} req/s, /healthz {capacity[1]:,.0f} req/s -> ratio {capacity[1] / capacity[0]:.1f}x")
    errors = sum(1 for s in samples if s[2] != expected[s[0]])
    achieved = (len(samples) - errors) / seconds
    met = p99 < 50 and errors == 0 and achieved >= 0.98 * args.rate
    print(f"aim: p99 < 50 ms at {args.rate:g} req/s, 0 errors -> p99 {p99:.1f} ms, {errors} errors, "
          f"{achieved:.1f} ok/s -> {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second offered (default 200)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of the mix first, not measured")
    parser.add_argument("--floor-duration", type=float, default=10.0, help="seconds of GET /healthz (default 10)")
    parser.add_argument("--capacity-seconds", type=float, default=5.0, help="closed-loop seconds per phase (0: skip)")
    parser.add_argument("--connections", type=int, default=32, help="most connections in flight (default 32)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: 1 on SQLite, 2 per core else)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a scratch database is made there)")
    args = parser.parse_args()
    exit_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.database_url, Path(tmp), "bench_load") as url:
        workers = args.workers or default_workers(url)
        print(f"load on {backend(url)}, {workers} worker(s) x {args.threads} thread(s), {os.cpu_count()} cores: "
              f"{args.rate:g} req/s offered, open loop, {args.duration:g} s after {args.warmup:g} s warm-up; "
              f"mix per 10: 3 submit, 3 fetch, 3 ack, 1 list", flush=True)
        with broker_server(url, Path(tmp), workers, args.threads) as (port, clients):
            asyncio.run(bench(args, port, clients))
        print("load average (1/5/15 min) at the end: {:.2f} {:.2f} {:.2f} (other processes skew the figures)"
              .format(*os.getloadavg()))


if __name__ == "__main__":
    main()
