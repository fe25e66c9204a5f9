"""Privacy officers and their review sessions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from broker.models.base import Base


class User(Base):
    """A privacy officer of the review interface."""

    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(40))
    party_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime]
    disabled_at: Mapped[dt.datetime | None]
    # Where breach alerts for this officer go; without one the officer sees them in the review UI only.
    email: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ReviewSession(Base):
    """One login to the review interface. The cookie carries a random token; only its hash is kept,
    so a copy of the table opens no session. An ended row stays until it is old (known addresses)."""

    __tablename__ = "review_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    address: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
