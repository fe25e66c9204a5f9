"""Breaches, their parties and history, and parties suspended while one is open."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from broker.models.base import Base


class Breach(Base):
    """A (suspected) personal data breach: what happened, its impact, its clock and its state."""

    __tablename__ = "breaches"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    convenant_id: Mapped[str] = mapped_column(String(100), index=True)
    # None: the breach happened at the broker itself.
    reporting_party_id: Mapped[str | None] = mapped_column(String(100))
    reported_by: Mapped[str] = mapped_column(String(100))
    reported_at: Mapped[dt.datetime]
    detected_at: Mapped[dt.datetime]
    notify_deadline: Mapped[dt.datetime]
    ap_deadline: Mapped[dt.datetime]
    description: Mapped[str] = mapped_column(Text)
    suspected_cause: Mapped[str] = mapped_column(Text)
    # Submission and delivery ids, a time window and subject pseudonyms (never a BSN).
    scope: Mapped[dict] = mapped_column(JSON)
    impact_computed: Mapped[dict] = mapped_column(JSON)
    impact: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), index=True)
    late_since: Mapped[dt.datetime | None]
    measures: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(100))
    trace_id: Mapped[str] = mapped_column(String(32))


class BreachParty(Base):
    """One controller in a breach: the reporter or an affected party, with its notice and AP decision."""

    __tablename__ = "breach_parties"
    breach_id: Mapped[str] = mapped_column(ForeignKey("breaches.id"), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    added_at: Mapped[dt.datetime]
    notified_at: Mapped[dt.datetime | None]
    notified_via: Mapped[str | None] = mapped_column(String(20))
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    ap_reported: Mapped[bool | None]
    ap_reference: Mapped[str | None] = mapped_column(String(100))
    ap_reported_at: Mapped[dt.datetime | None]
    ap_reasoning: Mapped[str | None] = mapped_column(Text)
    ap_decided_at: Mapped[dt.datetime | None]
    ap_decided_by: Mapped[str | None] = mapped_column(String(100))
    ap_escalated_at: Mapped[dt.datetime | None]


class BreachEvent(Base):
    """One step in a breach's history, for its timeline (the audit log holds the proof)."""

    __tablename__ = "breach_events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    breach_id: Mapped[str] = mapped_column(ForeignKey("breaches.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # the order of events within one breach
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict] = mapped_column(JSON)


class PartySuspension(Base):
    """Containment: a party's clients suspended while a breach is open."""

    __tablename__ = "party_suspensions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(100), index=True)
    breach_id: Mapped[str] = mapped_column(ForeignKey("breaches.id"), index=True)
    started_at: Mapped[dt.datetime]
    started_by: Mapped[str] = mapped_column(String(100))
    lifted_at: Mapped[dt.datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(100))
