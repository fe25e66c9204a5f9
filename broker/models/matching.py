"""Quarterly lists and match runs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broker.models.base import Base
from broker.models.exchange import Submission


class QuarterList(Base):
    """One version of a party's quarterly list: the submission that holds it, numbered per party."""

    __tablename__ = "quarter_lists"
    __table_args__ = (UniqueConstraint("convenant_id", "quarter", "party_id", "version"),)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    quarter: Mapped[str] = mapped_column(String(7))
    party_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime]
    # For the order of a flush only (the submission before its list row), never loaded.
    submission: Mapped[Submission] = relationship(lazy="raise")


class MatchRun(Base):
    """One version of a quarter's match result. Inserted first: the unique version is a lock too."""

    __tablename__ = "match_runs"
    __table_args__ = (UniqueConstraint("convenant_id", "quarter", "version"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    quarter: Mapped[str] = mapped_column(String(7))
    version: Mapped[int] = mapped_column(Integer)
    supersedes: Mapped[str | None] = mapped_column(String(36))
    trigger: Mapped[str] = mapped_column(String(20))
    inputs: Mapped[dict] = mapped_column(JSON)
    missing: Mapped[list] = mapped_column(JSON)
    report: Mapped[dict | None] = mapped_column(JSON)
    ran_at: Mapped[dt.datetime]
