"""Leases: which process runs the scheduled jobs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from broker.models.base import Base


class Lease(Base):
    """A job's lease: only its holder runs the job until it expires (one scheduler for all workers)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[dt.datetime]
