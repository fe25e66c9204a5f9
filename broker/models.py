"""Database tables. The schema itself is created by Alembic migrations, never by `create_all`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: DateTime(timezone=True)}


class Client(Base):
    """An OAuth client of one party, authenticated by its public key (private_key_jwt)."""

    __tablename__ = "clients"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(100), index=True)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class AssertionJti(Base):
    """A client assertion's `jti`, kept until the assertion expires so it cannot be replayed."""

    __tablename__ = "assertion_jtis"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class KeyMaterial(Base):
    """A key wrapped by the master key: per-convenant KEKs and pseudonym keys, broker signing keys."""

    __tablename__ = "key_material"
    __table_args__ = (UniqueConstraint("scope", "purpose", "version"),)
    kid: Mapped[str] = mapped_column(String(100), primary_key=True)
    scope: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(20))
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]


class DataKey(Base):
    """The key that encrypts one submission's records, wrapped by its convenant's KEK."""

    __tablename__ = "data_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kek_kid: Mapped[str] = mapped_column(ForeignKey("key_material.kid"), index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]
    destroyed_at: Mapped[dt.datetime | None]


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
