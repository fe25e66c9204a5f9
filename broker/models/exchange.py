"""The exchange: submissions, their sealed records, deliveries and idempotency keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broker.models.base import Base
from broker.models.keys import DataKey
from broker.models.parties import Client


class Submission(Base):
    """One accepted case submission or quarterly list."""

    __tablename__ = "submissions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100), index=True)
    party_id: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id"))
    kind: Mapped[str] = mapped_column(String(20))
    quarter: Mapped[str | None] = mapped_column(String(7))
    record_count: Mapped[int]
    data_key_id: Mapped[str] = mapped_column(ForeignKey("data_keys.id"))
    received_at: Mapped[dt.datetime]
    # When its last record was purged (retention, ending, erasure); the row stays as a tombstone.
    purged_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    # Declared for the order of a flush only (the client and the data key before the submission),
    # never loaded: the tables live in other modules, and the ORM orders unrelated mappers by name.
    client: Mapped[Client] = relationship(lazy="raise")
    data_key: Mapped[DataKey] = relationship(lazy="raise")


class Record(Base):
    """One pupil record of a submission: routing metadata in clear, the rest sealed."""

    __tablename__ = "records"
    __table_args__ = (Index("ix_records_pseudonym", "pseudonym"),)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    category: Mapped[str] = mapped_column(String(50))
    gemeente: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    pseudonym_kid: Mapped[str] = mapped_column(String(100))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # A correction names the record it replaces, as "<submission_id>/<seq>".
    corrects: Mapped[str | None] = mapped_column(String(50), nullable=True)
    # A routed record's keyed fingerprint (keys.pseudonym): an unchanged record is not delivered again.
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Delivery(Base):
    """What the broker routed to one recipient party."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_recipient", "recipient_party_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    submission_id: Mapped[str | None] = mapped_column(ForeignKey("submissions.id"))
    sender_party_id: Mapped[str] = mapped_column(String(100))
    recipient_party_id: Mapped[str] = mapped_column(String(100))
    record_count: Mapped[int]
    created_at: Mapped[dt.datetime]
    fetched_at: Mapped[dt.datetime | None]
    acked_at: Mapped[dt.datetime | None]
    # A match delivery's counts of every group, with its quarter and result version.
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # When its records were purged (retention, ending, erasure); the row stays as a tombstone.
    purged_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class DeliveryRecord(Base):
    """Which stored records make up a delivery."""

    __tablename__ = "delivery_records"
    __table_args__ = (
        ForeignKeyConstraint(
            ["submission_id", "seq"], ["records.submission_id", "records.seq"], name="fk_delivery_records_record"
        ),
    )
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class IdempotencyKey(Base):
    """The answer to a submission sent with an Idempotency-Key, replayed for the same key and body.

    The key itself is not kept, only its SHA-256 (it is what a caller typed); the answer holds ids,
    counts and a receipt, never a BSN.
    """

    __tablename__ = "idempotency_keys"
    party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    submission_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
