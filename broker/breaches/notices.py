"""What a breach notice says, and queueing it to a party (webhook and e-mail) and to the privacy officers."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broker.app.timefmt import local_text
from broker.breaches.state import BROKER_REPORTER, parties_of
from broker.models import Breach, BreachParty, PartyContact, User
from broker.officers.accounts import BROKER_OFFICER
from broker.parties import outbox
from schemas.convenant import Convenant


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def party_name(convenant: Convenant, party_id: str | None) -> str:
    if party_id is None:
        return "de broker"
    party = convenant.party(party_id)
    return party.name if party else party_id


def public_url(path: str) -> str:
    """The broker's own address for `path`, from PUBLIC_URL, never from a request's Host header
    (production refuses to start without PUBLIC_URL; without it a link is the path alone)."""
    base = current_app.config.get("PUBLIC_URL") or ""
    return base.rstrip("/") + path


def notice_payload(
    breach: Breach, convenant: Convenant, parties: Sequence[BreachParty], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What every notice says: the four facts the convenant requires, the deadlines, who is involved."""
    impact = breach.impact
    return {
        "breach_id": breach.id,
        "breach_number": breach.number,
        "convenant_id": convenant.id,
        "convenant_title": convenant.title,
        "reporting_party": breach.reporting_party_id,
        "reporting_party_name": party_name(convenant, breach.reporting_party_id),
        "state": breach.state,
        "detected_at": breach.detected_at.isoformat(),
        "detected_at_local": local_text(breach.detected_at),
        "deadline": breach.notify_deadline.isoformat(),
        "deadline_local": local_text(breach.notify_deadline),
        "ap_deadline": breach.ap_deadline.isoformat(),
        "ap_deadline_local": local_text(breach.ap_deadline),
        "description": breach.description,
        "suspected_cause": breach.suspected_cause,
        "personal_data_categories": impact.get("personal_data_categories", []),
        "data_subject_categories": impact.get("data_subject_categories", []),
        "data_subjects": impact.get("data_subjects", 0),
        "parties": [
            {"party_id": p.party_id, "name": party_name(convenant, p.party_id), "role": p.role} for p in parties
        ],
        "acknowledge_url": public_url(f"/api/v1/breaches/{breach.id}/acknowledgements"),
        **(extra or {}),
    }


def notify(
    session: Session,
    breach: Breach,
    convenant: Convenant,
    party_id: str,
    topic: str,
    now: dt.datetime,
    extra: dict[str, Any] | None = None,
    *,
    round_id: str = "",
) -> None:
    """Queue a notice to one party: by its webhook, and by e-mail to each of its contact addresses."""
    payload = notice_payload(breach, convenant, parties_of(session, breach), extra)
    key = f"breach:{breach.id}:{topic}:{party_id}:" + (f"{round_id}:" if round_id else "")
    outbox.enqueue(session, party_id=party_id, topic=topic, dedupe_key=key + "webhook", payload=payload, now=now)
    addresses = session.scalars(select(PartyContact.email).where(PartyContact.party_id == party_id)).all()
    for address in addresses:
        outbox.enqueue(
            session,
            party_id=party_id,
            topic=topic,
            dedupe_key=key + "mail:" + _digest(address),
            payload=payload,
            now=now,
            channel="email",
            address=address,
        )


def alert_officers(
    session: Session,
    breach: Breach,
    convenant: Convenant,
    parties: Sequence[BreachParty],
    topic: str,
    now: dt.datetime,
    extra: dict[str, Any],
) -> None:
    """E-mail the broker's privacy officers and those of the parties in the breach (if they gave an address)."""
    party_ids = {p.party_id for p in parties}
    officers = session.scalars(
        select(User).where(
            User.disabled_at.is_(None),
            User.email.is_not(None),
            or_(User.role == BROKER_OFFICER, User.party_id.in_(party_ids)),
        )
    )
    payload = notice_payload(breach, convenant, parties, extra)
    for user in officers:
        assert user.email is not None
        outbox.enqueue(
            session,
            party_id=user.party_id or BROKER_REPORTER,
            topic=topic,
            dedupe_key=f"breach:{breach.id}:{topic}:officer:{_digest(user.username)}",
            payload=payload,
            now=now,
            channel="email",
            address=user.email,
        )
