"""The states of a breach and reading it: who is in it, what state it is in as of now."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.app.errors import Conflict, NotFound
from broker.auditing import step as auditing
from broker.auditing.step import Recorder
from broker.auditing.store import lock_log
from broker.exchange.delivery import is_uuid
from broker.models import Breach, BreachEvent, BreachParty
from schemas.convenant import BreachRules, Convenant

GEMELD, GENOTIFICEERD, BEVESTIGD, TE_LAAT, GESLOTEN = "gemeld", "genotificeerd", "bevestigd", "te laat", "gesloten"


STATES = (GEMELD, GENOTIFICEERD, BEVESTIGD, TE_LAAT, GESLOTEN)


REPORTER, AFFECTED = "melder", "betrokken"


BROKER_REPORTER = "broker"


# How far ahead of the broker's clock a `detected_at` may lie (clock skew between systems).
CLOCK_SKEW = dt.timedelta(minutes=5)


def breach_activity() -> str:
    return auditing.broker_activity("breach")


def rules_of(convenant: Convenant) -> BreachRules:
    if convenant.breach is None:
        raise Conflict(f"Het convenant {convenant.id} legt geen afspraken over datalekken vast (sectie [breach]).")
    return convenant.breach


def new_party(breach: Breach, party_id: str, role: str, now: dt.datetime) -> BreachParty:
    return BreachParty(
        breach_id=breach.id,
        party_id=party_id,
        role=role,
        added_at=now,
        notified_at=now if role == REPORTER else None,
        notified_via="melding" if role == REPORTER else None,
        acknowledged_at=None,
        acknowledged_by=None,
        ap_reported=None,
        ap_reference=None,
        ap_reported_at=None,
        ap_reasoning=None,
        ap_decided_at=None,
        ap_decided_by=None,
        ap_escalated_at=None,
    )


def add_event(
    session: Session, breach: Breach, recorder: Recorder, now: dt.datetime, kind: str, detail: dict[str, Any]
) -> None:
    session.flush()
    lock_log(session)  # see `report`: two steps on one breach at once must not pick the same seq
    seq = (session.scalar(select(func.max(BreachEvent.seq)).where(BreachEvent.breach_id == breach.id)) or 0) + 1
    session.add(
        BreachEvent(
            id=str(uuid.uuid4()),
            breach_id=breach.id,
            seq=seq,
            at=now,
            actor=recorder.actor.id,
            kind=kind,
            detail=detail,
        )
    )


def require_open(breach: Breach) -> None:
    if breach.closed_at is not None:
        raise Conflict("Dit datalek is gesloten.")


def get_breach(session: Session, breach_id: str, *, lock: bool = False) -> Breach:
    """The breach, locked for this transaction when it is about to change (so steps do not interleave)."""
    breach = session.get(Breach, breach_id, with_for_update=lock) if is_uuid(breach_id) else None
    if breach is None:
        raise NotFound("Dit datalek bestaat niet.")
    return breach


def parties_of(session: Session, breach: Breach) -> list[BreachParty]:
    return list(
        session.scalars(
            select(BreachParty)
            .where(BreachParty.breach_id == breach.id)
            .order_by(BreachParty.role.desc(), BreachParty.party_id)
        )
    )


def party_row(session: Session, breach: Breach, party_id: str) -> BreachParty | None:
    return session.get(BreachParty, (breach.id, party_id))


def visible_to_party(session: Session, party_id: str) -> list[Breach]:
    """The breaches a party reported or is affected by, newest first."""
    query = (
        select(Breach)
        .join(BreachParty, BreachParty.breach_id == Breach.id)
        .where(BreachParty.party_id == party_id)
        .order_by(Breach.detected_at.desc(), Breach.number.desc())
    )
    return list(session.scalars(query))


def all_breaches(session: Session, party_id: str | None = None) -> list[Breach]:
    """Every breach (the broker's officer), or those of one party (a party's officer)."""
    if party_id is not None:
        return visible_to_party(session, party_id)
    return list(session.scalars(select(Breach).order_by(Breach.detected_at.desc(), Breach.number.desc())))


def derive_state(breach: Breach, parties: Sequence[BreachParty], now: dt.datetime) -> str:
    """The state as of `now`, from the facts; `te laat` holds from the deadline until all acknowledged."""
    if breach.closed_at is not None:
        return GESLOTEN
    affected = [p for p in parties if p.role == AFFECTED]
    if all(p.acknowledged_at is not None for p in affected):
        return BEVESTIGD
    if now >= breach.notify_deadline:
        return TE_LAAT
    if all(p.notified_at is not None for p in affected):
        return GENOTIFICEERD
    return GEMELD


def is_late(breach: Breach, parties: Sequence[BreachParty], now: dt.datetime) -> bool:
    """Whether some affected party acknowledged after the deadline or has still not done so past it."""
    for p in parties:
        if p.role != AFFECTED:
            continue
        acked = p.acknowledged_at
        if (acked is None and now >= breach.notify_deadline) or (acked is not None and acked > breach.notify_deadline):
            return True
    return False
