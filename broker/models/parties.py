"""The parties' side: OAuth clients, used assertions, sign-in failures, contacts, webhooks and the outbox."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from broker.models.base import Base


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


class SignInFailure(Base):
    """Recent failed token requests (per client and address) or logins (per username), for lockout."""

    __tablename__ = "sign_in_failures"
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]


class PartyContact(Base):
    """An e-mail address at which a party receives breach notifications."""

    __tablename__ = "party_contacts"
    party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    email: Mapped[str] = mapped_column(String(300), primary_key=True)
    created_at: Mapped[dt.datetime]


class Webhook(Base):
    """Where a party receives outbox messages; the HMAC secret is wrapped by the master key."""

    __tablename__ = "webhooks"
    party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    wrapped_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]


class OutboxEntry(Base):
    """A message to one party, delivered by webhook with retries (reminders, breach notices)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "delivered_at", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(100))
    # "webhook" (to the party's webhook) or "email" (to `address`).
    channel: Mapped[str] = mapped_column(String(10), default="webhook")
    address: Mapped[str | None] = mapped_column(String(300), nullable=True)
    topic: Mapped[str] = mapped_column(String(60))
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    next_attempt_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[dt.datetime | None]
    abandoned_at: Mapped[dt.datetime | None]


class OutboxAttempt(Base):
    """One try to deliver an outbox entry: every attempt is kept."""

    __tablename__ = "outbox_attempts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("outbox.id"), index=True)
    attempted_at: Mapped[dt.datetime]
    url: Mapped[str] = mapped_column(String(500))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
