"""A case's end and the data subject's rights: endings, restrictions, requests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from broker.models.base import Base


class CaseEnding(Base):
    """A party ended its case about a pupil, with one of the convenant's ending reasons."""

    __tablename__ = "case_endings"
    __table_args__ = (Index("ix_case_endings_subject", "convenant_id", "pseudonym"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    party_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(60))
    ended_at: Mapped[dt.datetime]
    # The parties that received the pupil's data and got an end notice.
    notified: Mapped[list] = mapped_column(JSON)


class SubjectRestriction(Base):
    """AVG art. 18: while active, nothing about this pupil is routed."""

    __tablename__ = "subject_restrictions"
    __table_args__ = (Index("ix_subject_restrictions_subject", "convenant_id", "pseudonym"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[dt.datetime]
    lifted_at: Mapped[dt.datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(100))


class SubjectRequest(Base):
    """A data subject's request (AVG art. 15-21) as received by a party, and where it was forwarded."""

    __tablename__ = "subject_requests"
    __table_args__ = (Index("ix_subject_requests_subject", "convenant_id", "pseudonym"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    convenant_id: Mapped[str] = mapped_column(String(100))
    pseudonym: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    received_by: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[dt.datetime]
    registered_at: Mapped[dt.datetime]
    forwarded_to: Mapped[list] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
