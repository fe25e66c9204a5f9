"""Containment: a party's clients suspended while the breach is open, and reinstated."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.app.errors import Conflict, ValidationFailed
from broker.auditing.step import Recorder
from broker.breaches.impact import field_error
from broker.breaches.state import add_event, breach_activity, party_row, require_open
from broker.models import Breach, PartySuspension
from schemas.convenant import Convenant


def active_suspensions(
    session: Session, *, party_id: str | None = None, breach_id: str | None = None
) -> list[PartySuspension]:
    query = select(PartySuspension).where(PartySuspension.lifted_at.is_(None))
    if party_id is not None:
        query = query.where(PartySuspension.party_id == party_id)
    if breach_id is not None:
        query = query.where(PartySuspension.breach_id == breach_id)
    return list(session.scalars(query.order_by(PartySuspension.started_at)))


def suspensions_of(session: Session, breach: Breach) -> list[PartySuspension]:
    return list(
        session.scalars(
            select(PartySuspension).where(PartySuspension.breach_id == breach.id).order_by(PartySuspension.started_at)
        )
    )


def contain(
    session: Session, breach: Breach, convenant: Convenant, party_id: str, recorder: Recorder, now: dt.datetime
) -> PartySuspension:
    """Suspend a party's clients while the breach is open: its tokens stop working, its deliveries wait."""
    require_open(breach)
    if party_row(session, breach, party_id) is None:
        raise ValidationFailed(
            "Deze partij is niet bij het datalek betrokken.",
            [field_error("party_id", "not_in_breach", "Alleen een partij van dit datalek kan worden opgeschort.")],
        )
    if active_suspensions(session, party_id=party_id, breach_id=breach.id):
        raise Conflict("Deze partij is voor dit datalek al opgeschort.")
    suspension = PartySuspension(
        id=str(uuid.uuid4()),
        party_id=party_id,
        breach_id=breach.id,
        started_at=now,
        started_by=recorder.actor.id,
        lifted_at=None,
        lifted_by=None,
    )
    session.add(suspension)
    add_event(session, breach, recorder, now, "contained", {"party_id": party_id})
    recorder.add(
        "breach.party_suspended",
        breach_activity(),
        root=True,
        parties=[party_id],
        convenant_id=convenant.id,
        attributes={"breach_id": breach.id, "party": party_id},
    )
    return suspension


def lift(session: Session, breach: Breach, party_id: str, recorder: Recorder, now: dt.datetime) -> PartySuspension:
    """End a party's suspension for this breach; tokens from before it stay revoked."""
    suspensions = active_suspensions(session, party_id=party_id, breach_id=breach.id)
    if not suspensions:
        raise Conflict("Deze partij is voor dit datalek niet opgeschort.")
    end_suspension(session, breach, suspensions[0], recorder, now)
    return suspensions[0]


def end_suspension(
    session: Session, breach: Breach, suspension: PartySuspension, recorder: Recorder, now: dt.datetime
) -> None:
    suspension.lifted_at, suspension.lifted_by = now, recorder.actor.id
    add_event(session, breach, recorder, now, "containment_lifted", {"party_id": suspension.party_id})
    recorder.add(
        "breach.party_reinstated",
        breach_activity(),
        parties=[suspension.party_id],
        convenant_id=breach.convenant_id,
        attributes={"breach_id": breach.id, "party": suspension.party_id},
    )
