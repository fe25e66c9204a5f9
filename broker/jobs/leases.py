"""Leases in the database: one holder runs a job, whichever worker, process or host it is in.

A lease is a row (name, holder, expires_at). Taking it is one conditional UPDATE (it is ours, or
it expired) or, the first time, an INSERT; the database decides between rivals (PostgreSQL
re-checks the UPDATE's condition after the rival commits; the primary key refuses a second
INSERT). A holder that dies stops renewing, and the lease passes on when it expires.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.models import Lease


def holder_id() -> str:
    """Who this process is, readable in the table: host, pid and a random part."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(session: Session, name: str, holder: str, now: dt.datetime, ttl: dt.timedelta) -> bool:
    """Take or renew the lease `name` for `ttl`; whether `holder` holds it now. Commits."""
    result = session.execute(
        update(Lease)
        .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
        .values(holder=holder, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        session.commit()
        return True
    if session.get(Lease, name) is not None:
        session.rollback()
        return False
    try:
        session.add(Lease(name=name, holder=holder, expires_at=now + ttl))
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def release(session: Session, name: str, holder: str) -> None:
    """Give the lease up (on shutdown), so another holder need not wait for it to expire."""
    session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        .execution_options(synchronize_session=False)
    )
    session.commit()
