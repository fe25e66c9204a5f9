"""The audit log: sealed entries with their search columns, Merkle nodes, checkpoints, the register."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from broker.models.base import Base


class AuditEntryRow(Base):
    """One sealed audit entry. Append-only: database triggers refuse UPDATE and DELETE.

    The canonical bytes are the record; the other columns are copies of its fields for search.
    """

    __tablename__ = "audit_entries"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    processing_activity_id: Mapped[str] = mapped_column(String(300), index=True)
    data_subject_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(100))
    actor_party: Mapped[str | None] = mapped_column(String(100))
    parties: Mapped[str] = mapped_column(String(500))
    convenant_id: Mapped[str | None] = mapped_column(String(100))
    start_time: Mapped[dt.datetime] = mapped_column(index=True)
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    chain_hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditNode(Base):
    """A perfect Merkle subtree hash (level >= 1), kept so proofs need O(log n) reads."""

    __tablename__ = "audit_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCheckpoint(Base):
    """A signed checkpoint (C2SP tlog-checkpoint) of the audit log at one size."""

    __tablename__ = "audit_checkpoints"
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[dt.datetime]


class RegisterActivity(Base):
    """One version of a processing activity of the AVG art. 30 register; its text never changes."""

    __tablename__ = "register_activities"
    uri: Mapped[str] = mapped_column(String(300), primary_key=True)
    scope: Mapped[str] = mapped_column(String(100))
    activity: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(40))
    digest: Mapped[str] = mapped_column(String(80))
    text: Mapped[dict] = mapped_column(JSON)
    registered_at: Mapped[dt.datetime]
