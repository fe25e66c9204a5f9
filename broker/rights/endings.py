"""Ending a case: a party ends its case about a pupil with one of the convenant's ending reasons.

Every party it exchanged data about the pupil with gets an end notice (the BSN and the reason,
nothing else) and the broker purges what it holds about the pupil in the ending party's flows, in
one transaction with the audit entries. An ending acts on the ending party's own flows only: other
parties' exchanges about the pupil go on. A later submission about the pupil is a new case and is
routed again. Corrections are in `broker.rights.corrections`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.app.errors import BrokerError, NotFound, ValidationFailed
from broker.app.keyring import Keyring
from broker.auditing import step as auditing
from broker.auditing.step import Recorder
from broker.exchange import need_to_know
from broker.exchange.delivery import Message, send_message
from broker.exchange.submission import member_party
from broker.models import CaseEnding, Delivery, Record, Submission
from broker.parties import outbox
from broker.rights.purge import purge_records, records_in_flows, withdraw_links
from schemas.convenant import Convenant, EndingReason
from schemas.fields import Bsn

CASE = "case"
END_NOTICE = "end_notice"
END_CATEGORY = "einde"
ENDED = "case.ended"
NO_CASE = "Uw partij heeft geen lopende casus over deze leerling."


def _problem(field: str, code: str, message: str) -> dict[str, Any]:
    return {"record": None, "field": field, "code": code, "message": message}


@dataclass
class Ended:
    """What the broker tells the party that ended a case."""

    ending: CaseEnding
    reason: EndingReason
    notices: list[Delivery]
    purged: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "ending_id": self.ending.id,
            "convenant_id": self.ending.convenant_id,
            "reason": self.reason.id,
            "reason_code": self.reason.code,
            "reason_text": self.reason.text,
            "ended_at": self.ending.ended_at.isoformat(),
            "notified": list(self.ending.notified),
            "purged": self.purged,
        }


def find_ending_reason(convenant: Convenant, value: Any) -> EndingReason | None:
    """The convenant's ending reason named by its id or its code letter."""
    return next((r for r in convenant.ending_reasons if value in (r.id, r.code)), None)


def _check_ending(convenant: Convenant, bsn: Any, reason: Any) -> tuple[str, EndingReason]:
    errors = []
    try:
        bsn = Bsn().deserialize(bsn)
    except ma.ValidationError:
        errors.append(_problem("bsn", "invalid_bsn", "Geen geldig burgerservicenummer (negen cijfers, elfproef)."))
    chosen = find_ending_reason(convenant, reason)
    if chosen is None:
        allowed = [r.id for r in convenant.ending_reasons]
        errors.append(_problem("reason", "unknown_ending_reason", f"Kies een van: {', '.join(allowed)}."))
    if errors:
        raise ValidationFailed("Het verzoek om de casus te beëindigen is niet geldig.", errors=errors)
    assert chosen is not None
    return bsn, chosen


def _last_gemeente(session: Session, convenant_id: str, pseudonym: str) -> str:
    gemeente = session.scalar(
        select(Record.gemeente)
        .join(Submission, Submission.id == Record.submission_id)
        .where(Submission.convenant_id == convenant_id, Record.pseudonym == pseudonym, Submission.kind != END_NOTICE)
        .order_by(Submission.received_at.desc())
        .limit(1)
    )
    return gemeente or ""


def end_case(
    session: Session,
    keyring: Keyring,
    convenant: Convenant,
    recorder: Recorder,
    *,
    party_id: str,
    client_id: str,
    bsn: Any,
    reason: Any,
    now: dt.datetime,
) -> Ended:
    """End the caller's case about a pupil: store the ending, send end notices, purge the pupil's records.

    Everything happens in the caller's `audited_step`; the caller sweeps the vault after it committed. From then
    on nothing about the pupil is routed (its records are gone, also from unfetched deliveries); a
    later submission about the pupil starts a new case and is routed again.
    """
    party = member_party(convenant, party_id)
    bsn, chosen = _check_ending(convenant, bsn, reason)
    pseudonymiser = keyring.pseudonymiser(convenant.id)
    pseudonym = pseudonymiser.pseudonymise_bsn(bsn)
    case = need_to_know.current_case(session, convenant.id, party.id, pseudonym)
    if not case.open:  # the answer for a pupil the party never held, and for one nobody holds
        raise NotFound(NO_CASE)
    notified = [p.id for p in convenant.parties if p.id in case.counterparts]
    ending = CaseEnding(
        id=str(uuid.uuid4()),
        convenant_id=convenant.id,
        pseudonym=pseudonym,
        party_id=party.id,
        reason=chosen.id,
        ended_at=now,
        notified=notified,
    )
    session.add(ending)
    doomed = records_in_flows(session, convenant.id, pseudonym, party.id)  # before the notices are stored
    notice = {
        convenant.subject_id_field: bsn,
        "ending_reason": chosen.id,
        "ending_reason_code": chosen.code,
        "ending_reason_text": chosen.text,
    }
    message = Message(
        convenant_id=convenant.id,
        kind=END_NOTICE,
        sender=party.id,
        client_id=client_id,
        category=END_CATEGORY,
        gemeente=_last_gemeente(session, convenant.id, pseudonym),
        pseudonym=pseudonym,
        pseudonym_kid=pseudonymiser.kid,
        body=notice,
    )
    # One submission per recipient, so that each notice is purged on its own.
    notices = [send_message(session, keyring, message, [recipient], now)[recipient] for recipient in notified]
    uri = auditing.activity(convenant.id, CASE)
    _announce(session, recorder, uri, ending, chosen, notices)
    about = {"ending_id": ending.id}
    purged = purge_records(session, keyring, doomed.purge, recorder, now, reason=ENDED, attributes=about)
    withdraw_links(session, doomed.withdraw, recorder, now, reason=ENDED, attributes=about)
    # Last: a later case between these parties is read from the audit log from here on.
    recorder.add(
        ENDED,
        uri,
        subjects=[pseudonym],
        parties=notified,
        convenant_id=convenant.id,
        attributes={
            "ending_id": ending.id,
            "reason": chosen.id,
            "reason_code": chosen.code,
            "notified": notified,
            "purged": purged.records,
        },
    )
    return Ended(ending, chosen, notices, purged.records)


def _announce(
    session: Session, recorder: Recorder, uri: str, ending: CaseEnding, reason: EndingReason, notices: list[Delivery]
) -> None:
    """Queue a webhook per end notice (where to fetch it and why, never the BSN) and audit each delivery."""
    for delivery in notices:
        outbox.enqueue(
            session,
            party_id=delivery.recipient_party_id,
            topic=ENDED,
            dedupe_key=f"{ENDED}/{ending.id}/{delivery.recipient_party_id}",
            payload={
                "convenant_id": ending.convenant_id,
                "delivery_id": delivery.id,
                "ending_reason": reason.id,
                "ending_reason_text": reason.text,
                "ended_at": ending.ended_at.isoformat(),
            },
            now=ending.ended_at,
        )
        recorder.add(
            "delivery.created",
            uri,
            subjects=[ending.pseudonym],
            parties=[delivery.recipient_party_id],
            convenant_id=ending.convenant_id,
            attributes={
                "submission_id": delivery.submission_id,
                "kind": END_NOTICE,
                "delivery_id": delivery.id,
                "recipient": delivery.recipient_party_id,
                "category": END_CATEGORY,
                "ending_id": ending.id,
            },
        )


def audit_end_rejection(recorder: Recorder, convenant: Convenant, refusal: BrokerError) -> None:
    """Record a refused ending: what was wrong, never the BSN it named."""
    recorder.add(
        "case.end_rejected",
        auditing.activity(convenant.id, CASE),
        root=True,
        status="Error",
        convenant_id=convenant.id,
        attributes=auditing.refusal_attributes(refusal),
    )
