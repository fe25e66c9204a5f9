"""The clock of a breach: its state moves on as notices arrive and deadlines pass; a late breach escalates once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.auditing.step import Recorder
from broker.breaches.notices import alert_officers, notify, party_name
from broker.breaches.state import AFFECTED, TE_LAAT, add_event, breach_activity, derive_state, parties_of
from broker.models import Breach, BreachParty, OutboxEntry
from schemas.convenant import Convenant


def refresh(session: Session, breach: Breach, convenant: Convenant, recorder: Recorder, now: dt.datetime) -> str:
    """Store the state as of `now`; a new state is audited, and becoming late escalates once."""
    parties = parties_of(session, breach)
    state = derive_state(breach, parties, now)
    if state == TE_LAAT and breach.late_since is None:
        breach.late_since = breach.notify_deadline
        _escalate(session, breach, convenant, parties, now)
    if state != breach.state:
        previous, breach.state = breach.state, state
        add_event(session, breach, recorder, now, "state_changed", {"from": previous, "to": state})
        recorder.add(
            "breach.state_changed",
            breach_activity(),
            parties=[p.party_id for p in parties],
            convenant_id=convenant.id,
            attributes={"breach_id": breach.id, "number": breach.number, "from": previous, "to": state},
        )
    return state


def _escalate(
    session: Session, breach: Breach, convenant: Convenant, parties: Sequence[BreachParty], now: dt.datetime
) -> None:
    """The deadline passed without every acknowledgement: alert every party and the privacy officers."""
    missing = [
        {"party_id": p.party_id, "name": party_name(convenant, p.party_id)}
        for p in parties
        if p.role == AFFECTED and p.acknowledged_at is None
    ]
    extra = {"missing_acknowledgements": missing}
    for p in parties:
        notify(session, breach, convenant, p.party_id, "breach.overdue", now, extra)
    alert_officers(session, breach, convenant, parties, "breach.overdue", now, extra)


def run_due(session: Session, convenants: dict[str, Convenant], recorder: Recorder, now: dt.datetime) -> int:
    """Note delivered notices, move states on, escalate late breaches and missing AP decisions.

    Returns how many breaches changed state, in the caller's `audited_step`.
    """
    changed = 0
    # Another runner holding a breach is handling it; on SQLite writers are serialised anyway.
    open_breaches = session.scalars(
        select(Breach).where(Breach.closed_at.is_(None)).order_by(Breach.number).with_for_update(skip_locked=True)
    ).all()
    for breach in open_breaches:
        convenant = convenants.get(breach.convenant_id)
        if convenant is None:
            continue
        _note_delivered_notices(session, breach, recorder, now)
        before = breach.state
        if refresh(session, breach, convenant, recorder, now) != before:
            changed += 1
        _escalate_ap_decisions(session, breach, convenant, recorder, now)
    return changed


def _note_delivered_notices(session: Session, breach: Breach, recorder: Recorder, now: dt.datetime) -> None:
    for party in parties_of(session, breach):
        if party.notified_at is not None:
            continue
        prefix = f"breach:{breach.id}:breach.notified:{party.party_id}:"
        delivered = session.execute(
            select(OutboxEntry.delivered_at, OutboxEntry.channel)
            .where(OutboxEntry.dedupe_key.startswith(prefix, autoescape=True), OutboxEntry.delivered_at.is_not(None))
            .order_by(OutboxEntry.delivered_at)
            .limit(1)
        ).first()
        if delivered is not None and delivered.delivered_at is not None:
            mark_notified(session, breach, party, delivered.channel, delivered.delivered_at, recorder)


def mark_notified(
    session: Session, breach: Breach, party: BreachParty, via: str, at: dt.datetime, recorder: Recorder
) -> None:
    """Record that `party` has the notice (delivered by webhook or e-mail, or read through the API)."""
    if party.notified_at is not None:
        return
    party.notified_at, party.notified_via = at, via
    add_event(session, breach, recorder, at, "notified", {"party_id": party.party_id, "via": via})
    recorder.add(
        "breach.party_notified",
        breach_activity(),
        parties=[party.party_id],
        convenant_id=breach.convenant_id,
        attributes={"breach_id": breach.id, "party": party.party_id, "via": via, "at": at.isoformat()},
    )


def _escalate_ap_decisions(
    session: Session, breach: Breach, convenant: Convenant, recorder: Recorder, now: dt.datetime
) -> None:
    if now < breach.ap_deadline:
        return
    parties = parties_of(session, breach)
    for party in parties:
        if party.ap_reported is not None or party.ap_escalated_at is not None:
            continue
        party.ap_escalated_at = now
        extra = {"missing_ap_decisions": [{"party_id": party.party_id, "name": party_name(convenant, party.party_id)}]}
        notify(session, breach, convenant, party.party_id, "breach.ap_overdue", now, extra)
        alert_officers(session, breach, convenant, [party], "breach.ap_overdue", now, extra)
        add_event(session, breach, recorder, now, "ap_overdue", {"party_id": party.party_id})
        recorder.add(
            "breach.ap_decision_overdue",
            breach_activity(),
            parties=[party.party_id],
            convenant_id=convenant.id,
            attributes={"breach_id": breach.id, "party": party.party_id, "ap_deadline": breach.ap_deadline.isoformat()},
        )
