"""Helpers shared by bench/load.py and bench/growth.py: percentiles, a scratch database, and a minimal
keep-alive HTTP/1.1 client (asyncio streams, stdlib only) for load on a loopback server."""

from __future__ import annotations

import asyncio
import contextvars
import signal
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "tests", ROOT):  # the project's packages first, then tests/conftest.py's helpers
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from broker.app.db import make_engine  # noqa: E402


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` blocks stop the server and drop scratch databases."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def backend(url: str | None) -> str:
    return make_url(url).get_backend_name() if url else "sqlite"


@contextmanager
def scratch_database(url: str | None, tmp: Path, prefix: str = "bench") -> Iterator[str]:
    """A fresh, empty database: a SQLite file in `tmp`, or a new database on the PostgreSQL server
    of `url` (created as `<prefix>_<random>` and dropped afterwards, also on an exception)."""
    if not url or backend(url) != "postgresql":
        yield url or f"sqlite:///{tmp / f'{prefix}-{uuid.uuid4().hex[:8]}.db'}"
        return
    parsed = make_url(url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        admin.dispose()


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------------


# A request still waiting for a connection at this time.perf_counter() gives up (QueueTimeout) without
# being sent: an overloaded server then never works on requests whose client has gone.
SEND_BY: contextvars.ContextVar[float] = contextvars.ContextVar("SEND_BY", default=float("inf"))
ANSWER_TIMEOUT = 120.0  # once sent, a request is waited for (gunicorn's worker timeout is 120 s as well)


class QueueTimeout(Exception):
    """The request waited past SEND_BY for a connection and was not sent."""


class Pool:
    """Keep-alive connections to one host; at most `limit` requests in flight, the rest wait."""

    def __init__(self, port: int, limit: int) -> None:
        self.port, self.idle = port, deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]]()
        self.slots = asyncio.Semaphore(limit)

    async def request(self, method: str, path: str, token: str | None = None, body: bytes = b"",
                      content_type: str = "application/json") -> tuple[int, bytes]:
        try:
            await asyncio.wait_for(self.slots.acquire(), max(0.0, SEND_BY.get() - time.perf_counter()))
        except TimeoutError:
            raise QueueTimeout from None
        try:
            return await asyncio.wait_for(self._send(method, path, token, body, content_type), ANSWER_TIMEOUT)
        finally:
            self.slots.release()

    async def _send(self, method: str, path: str, token: str | None, body: bytes,
                    content_type: str) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Length: {len(body)}\r\n"
        head += f"Authorization: Bearer {token}\r\n" if token else ""
        head += f"Content-Type: {content_type}\r\n" if body else ""
        data = head.encode() + b"\r\n" + body
        for attempt in range(2):
            reused = attempt == 0 and bool(self.idle)
            reader, writer = self.idle.pop() if reused else await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(data)
                status, payload, keep = await read_response(reader)
            except BaseException as e:
                writer.close()
                unanswered = isinstance(e, ConnectionError) or (
                    isinstance(e, asyncio.IncompleteReadError) and not e.partial)
                if reused and unanswered:
                    continue  # the server had closed this idle keep-alive connection: once more, on a new one
                raise
            if keep:
                self.idle.append((reader, writer))
            else:
                writer.close()
            return status, payload
        raise AssertionError("unreachable")

    def close(self) -> None:
        while self.idle:
            self.idle.pop()[1].close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
    keep = headers.get("connection", "").lower() != "close"
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"])), keep
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append((await reader.readexactly(size + 2))[:-2])
        await reader.readuntil(b"\r\n")
        return status, b"".join(chunks), keep
    return status, await reader.read(), False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
