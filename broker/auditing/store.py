"""The audit log in the database: append in the step's own transaction, keep Merkle nodes,
sign checkpoints and serve proofs. The hashing and proof logic lives in `audit/`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, or_, select, text, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from audit.checkpoint import format_checkpoint, sign_note, verifier_key
from audit.columns import SEARCH_COLUMNS, search_columns
from audit.entry import GENESIS_HASH, AuditEntry, SealedEntry, format_time, seal_entries
from audit.merkle import EMPTY_ROOT, compute_root, plan_consistency, plan_inclusion, prove_consistency, prove_inclusion
from audit.proof import hash_children, verify_consistency
from audit.receipt import make_receipt
from audit.verify import VerifyResult, verify_log
from broker.models import AuditCheckpoint, AuditEntryRow, AuditNode

ADVISORY_LOCK = 0x6175646974  # "audit": one appender at a time across workers and instances


class AuditIntegrityError(Exception):
    """The stored log contradicts an earlier signed checkpoint; nothing more is signed."""


class DbNodes:
    """Serve perfect Merkle subtree hashes from the database (level 0 are the leaf hashes)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[tuple[int, int], bytes] = {}

    def prefetch(self, nodes: Iterable[tuple[int, int]]) -> None:
        """Fetch many nodes in two queries, so a proof costs two round trips."""
        wanted = [n for n in set(nodes) if n not in self.cache]
        leaves = [i for level, i in wanted if level == 0]
        inner: dict[int, list[int]] = {}
        for level, i in wanted:
            if level > 0:
                inner.setdefault(level, []).append(i)
        for chunk in _chunks(leaves, 500):
            for idx, leaf in self.session.execute(
                select(AuditEntryRow.idx, AuditEntryRow.leaf_hash).where(AuditEntryRow.idx.in_(chunk))
            ):
                self.cache[(0, idx)] = leaf
        # One `level = ? AND idx IN (...)` term per level: both databases answer that from the
        # primary key, where SQLite would scan the table for a row-value IN list.
        terms = [(AuditNode.level == level) & AuditNode.idx.in_(ids) for level, ids in inner.items()]
        if terms:
            for level, idx, node in self.session.execute(
                select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(or_(*terms))
            ):
                self.cache[(level, idx)] = node

    def get_node(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self.cache:
            self.prefetch([key])
        try:
            return self.cache[key]
        except KeyError:
            raise AuditIntegrityError(f"Merkle node {key} is missing") from None


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def lock_log(session: Session) -> None:
    """Serialise appends, and whatever the caller numbers max+1 before them, with a database lock
    held until the transaction ends: an advisory lock on PostgreSQL, the write lock on SQLite (a
    write that changes nothing takes it now, not at the transaction's first real write)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    else:
        session.execute(text("UPDATE leases SET name = name WHERE 1 = 0"))


def log_size(session: Session) -> int:
    last = session.scalar(select(func.max(AuditEntryRow.idx)))
    return 0 if last is None else last + 1


def _head(session: Session) -> tuple[int, bytes]:
    row = session.execute(
        select(AuditEntryRow.idx, AuditEntryRow.chain_hash).order_by(AuditEntryRow.idx.desc()).limit(1)
    ).first()
    return (0, GENESIS_HASH) if row is None else (row.idx + 1, row.chain_hash)


def append_entries(session: Session, entries: Sequence[AuditEntry]) -> list[SealedEntry]:
    """Append entries at the end of the log, in the caller's transaction.

    Every search column is derived from the canonical bytes being stored, by the function
    `broker audit verify` checks them with.
    """
    if not entries:
        return []
    lock_log(session)
    start, prev = _head(session)
    sealed = seal_entries(entries, start, prev)
    # Straight to the driver's executemany: for a 100,000-subject list, SQLAlchemy's per-value
    # type processing would cost more than the hashing. Only the timestamp needs the dialect's
    # own conversion.
    to_time = _bind(session, AuditEntryRow.__table__.c.start_time)
    loads, from_iso = json.loads, dt.datetime.fromisoformat
    rows = []
    for seal in sealed:
        values = list(search_columns(loads(seal.canonical)))
        values[_START] = to_time(from_iso(values[_START]))
        rows.append((seal.index, *values, seal.canonical, seal.leaf_hash, seal.chain_hash))
    _executemany(session, AuditEntryRow.__table__, ENTRY_COLUMNS, rows)
    _store_nodes(session, start, [s.leaf_hash for s in sealed])
    return sealed


ENTRY_COLUMNS = ("idx", *SEARCH_COLUMNS, "canonical", "leaf_hash", "chain_hash")
_START, _PREV = SEARCH_COLUMNS.index("start_time"), SEARCH_COLUMNS.index("prev_hash")


def _bind(session: Session, column: Any) -> Any:
    process = column.type.bind_processor(session.get_bind().dialect)
    return process or (lambda value: value)


def _executemany(session: Session, table: Any, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert plain tuples with the DBAPI's executemany (bytes and ints need no conversion)."""
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    # Table and column names are constants of this module, never input.
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
    connection.exec_driver_sql(sql, rows)


def _store_nodes(session: Session, start: int, leaves: list[bytes]) -> None:
    """Store every perfect subtree the new leaves complete."""
    end = start + len(leaves)
    below: dict[int, bytes] = dict(enumerate(leaves, start))
    nodes = DbNodes(session)
    rows: list[tuple[int, int, bytes]] = []
    level = 0
    while True:
        level += 1
        first = start >> level  # the lowest node that may end past `start`
        if (first + 1) << level <= start:
            first += 1
        last = (end >> level) - 1
        if last < first:
            break
        current: dict[int, bytes] = {}
        for i in range(first, last + 1):
            left = below.get(2 * i) or nodes.get_node(level - 1, 2 * i)
            right = below.get(2 * i + 1) or nodes.get_node(level - 1, 2 * i + 1)
            current[i] = hash_children(left, right)
            rows.append((level, i, current[i]))
        below = current
    if rows:
        _executemany(session, AuditNode.__table__, ("level", "idx", "hash"), rows)


@dataclass(frozen=True)
class CheckpointSigner:
    origin: str
    private_key: Ed25519PrivateKey

    @property
    def verifier_key(self) -> str:
        return verifier_key(self.origin, self.private_key.public_key())


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)).first()


def sign_checkpoint(session: Session, signer: CheckpointSigner, now: dt.datetime) -> AuditCheckpoint:
    """Sign the log at its current size, after proving it extends the last signed checkpoint."""
    lock_log(session)
    size = log_size(session)
    latest = latest_checkpoint(session)
    if latest is not None and latest.tree_size == size:
        return latest
    nodes = DbNodes(session)
    root = compute_root(size, nodes) if size else EMPTY_ROOT
    if latest is not None:
        if latest.tree_size > size:
            raise AuditIntegrityError(f"the log has {size} entries, fewer than the {latest.tree_size} signed")
        nodes.prefetch(n for part in plan_consistency(latest.tree_size, size) for n in part)
        proof = prove_consistency(latest.tree_size, size, nodes)
        if not verify_consistency(latest.tree_size, size, latest.root_hash, root, proof):
            raise AuditIntegrityError(f"the log is not consistent with checkpoint {latest.tree_size}")
    note = sign_note(format_checkpoint(signer.origin, size, root), signer.origin, signer.private_key)
    checkpoint = AuditCheckpoint(tree_size=size, root_hash=root, note=note, signed_at=now)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    nodes = DbNodes(session)
    nodes.prefetch(n for part in plan_inclusion(index, size) for n in part)
    return prove_inclusion(index, size, nodes)


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    nodes = DbNodes(session)
    nodes.prefetch(n for part in plan_consistency(old_size, new_size) for n in part)
    return prove_consistency(old_size, new_size, nodes)


def receipt_for(session: Session, sealed: SealedEntry, checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """Return a receipt proving `sealed` is in the log signed by `checkpoint`."""
    proof = inclusion_proof(session, sealed.index, checkpoint.tree_size)
    return make_receipt(sealed.index, sealed.leaf_hash, checkpoint.note, proof, checkpoint.tree_size)


# The text SQLAlchemy writes for a DateTime on SQLite; PostgreSQL hands back a datetime.
_SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


def _stored_time(value: Any) -> Any:
    """Return a stored start_time in the entries' notation, or as it is if the broker never
    writes it so (then it matches no entry)."""
    if isinstance(value, dt.datetime):
        return format_time(value) if value.tzinfo is not None else value
    if isinstance(value, str) and _SQLITE_TIME.fullmatch(value):
        return f"{value[:10]}T{value[11:]}Z"
    return value


def _stored_columns(values: Sequence[Any]) -> tuple[Any, ...]:
    """Return stored search column values as search_columns derives them from an entry."""
    columns = list(values)
    columns[_START] = _stored_time(columns[_START])
    if isinstance(columns[_PREV], bytes | bytearray | memoryview):
        columns[_PREV] = bytes(columns[_PREV])
    return tuple(columns)


def stored_rows(session: Session, yield_per: int = 50_000) -> Generator[tuple[Any, ...], None, None]:
    """Stream every stored row in index order as verify_log reads it, search columns and all.

    The columns come as the driver returns them, without SQLAlchemy's conversions, so that a
    value the broker would never write cannot be read as one it would.
    """
    table = AuditEntryRow.__table__
    columns = [type_coerce(table.c[name], NullType()) for name in SEARCH_COLUMNS]
    rows = session.execute(
        select(table.c.idx, table.c.canonical, table.c.chain_hash, table.c.leaf_hash, *columns)
        .order_by(table.c.idx)
        .execution_options(yield_per=yield_per)
    )
    # The caller may stop reading at the first problem; the server-side cursor is closed anyway.
    with rows:
        for r in rows:
            yield r[0], bytes(r[1]), bytes(r[2]), bytes(r[3]), _stored_columns(r[4:])


def verify_stored_log(
    session: Session, vkey: str, progress: Callable[[int], None] | None = None, progress_every: int = 65_536
) -> VerifyResult:
    """Verify the stored log and every stored column against every stored checkpoint, streaming."""
    notes = list(session.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.tree_size)))
    stream = stored_rows(session)
    try:
        return verify_log(stream, notes, vkey, progress, progress_every=progress_every)
    finally:
        stream.close()
