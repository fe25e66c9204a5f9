"""Data subjects' rights (AVG art. 15-18): the access report, forwarding, restriction and erasure.

The access report is read from the audit log (who sent and received what about the pupil, when,
under which processing activity) and from the current store (what the broker still holds). It is
built per convenant pseudonym and only ever queries by that pseudonym, so nothing about another
pupil can enter it. A party's officer sees the entries their party took part in and the records
their party sent or received, the same scoping rule as the log itself (`broker.review.entries`).

Every function that changes something adds audit entries to the caller's `Recorder`; the caller
commits with `commit_audited` (an erasure commits itself with `commit_purge`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import auditing
from broker.auditing import Recorder
from broker.errors import Conflict
from broker.keyring import Keyring
from broker.models import (
    AuditEntryRow,
    SubjectRequest,
    SubjectRestriction,
)
from broker.runtime import AMSTERDAM
from broker.services import outbox
from broker.services.delivery import Message, send_message
from broker.services.purge import commit_purge, purge_records, records_of_subject
from schemas.convenant import Convenant

BROKER = "broker"  # the broker itself: as a sender or receiver in the report, as requester of a restriction
REQUEST_KIND = "subject_request"  # the submission and delivery kind of a forwarded request
REQUEST_KINDS = ("inzage", "rectificatie", "wissing", "beperking", "bezwaar")
RIGHTS_STEP = "subject_rights"
ERASURE_REASON = "subject.erasure"

# Entries in which a party sent or learned a pupil's data: that party holds or held it.
DATA_FLOWS = (
    "record.received",
    "delivery.created",
    "delivery.fetched",
    "match.record_disclosed",
    "match.known_to_both",
    "match.different_category",
)


def entry_attributes(row: AuditEntryRow) -> dict[str, Any]:
    """The attributes of an entry, from its canonical bytes (the columns do not copy them)."""
    attributes = json.loads(bytes(row.canonical)).get("attributes")
    return attributes if isinstance(attributes, dict) else {}


def rights_activity(convenant_id: str) -> str:
    """The processing activity of rights requests: a dedicated one if the convenant has it, else the case exchange."""
    try:
        return auditing.activity(convenant_id, RIGHTS_STEP)
    except LookupError:
        return auditing.activity(convenant_id, "case")


def local(moment: dt.datetime) -> dt.datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(AMSTERDAM)


# -- who holds data about the pupil ----------------------------------------------------------------


def holders(session: Session, convenant: Convenant, pseudonym: str) -> set[str]:
    """The parties that sent or received data about the pupil, according to the audit log."""
    members = {p.id for p in convenant.parties}
    rows = session.scalars(
        select(AuditEntryRow).where(
            AuditEntryRow.data_subject_id == pseudonym,
            AuditEntryRow.convenant_id == convenant.id,
            AuditEntryRow.name.in_(DATA_FLOWS),
        )
    )
    found: set[str] = set()
    for row in rows:
        if (entry_attributes(row)).get("category") == REQUEST_KIND:
            continue  # a forwarded request is not data about the pupil held for the case
        found.update(p for p in row.parties.split(",") if p in members)
    return found


def senders(session: Session, convenant: Convenant, pseudonym: str) -> set[str]:
    """The parties that submitted data about the pupil, according to the audit log."""
    return {
        party
        for party in session.scalars(
            select(AuditEntryRow.actor_party)
            .where(
                AuditEntryRow.data_subject_id == pseudonym,
                AuditEntryRow.convenant_id == convenant.id,
                AuditEntryRow.name == "record.received",
            )
            .distinct()
        )
        if party
    }


# -- forwarding a request to the controllers that hold data ------------------------------------------


@dataclass(frozen=True)
class Forwarded:
    request: SubjectRequest
    deliveries: dict[str, str]  # recipient -> delivery id

    @property
    def forwarded_to(self) -> list[str]:
        return list(self.request.forwarded_to)


def forward_request(
    session: Session,
    keyring: Keyring,
    convenant: Convenant,
    *,
    bsn: str,
    kind: str,
    received_by: str,
    client_id: str,
    received_at: dt.datetime,
    note: str | None,
    recorder: Recorder,
    now: dt.datetime,
) -> Forwarded:
    """Register a request received by `received_by` and forward it to every other controller holding data.

    Each controller gets a webhook notice (without the BSN) and a delivery with the request itself,
    sealed like any record, which it fetches with its own credentials.
    """
    pseudonymiser = keyring.pseudonymiser(convenant.id)
    pseudonym = pseudonymiser.pseudonymise_bsn(bsn)
    recipients = sorted(holders(session, convenant, pseudonym) - {received_by})
    request = SubjectRequest(
        id=str(uuid.uuid4()),
        convenant_id=convenant.id,
        pseudonym=pseudonym,
        kind=kind,
        received_by=received_by,
        received_at=received_at,
        registered_at=now,
        forwarded_to=recipients,
        note=note,
    )
    session.add(request)
    uri = rights_activity(convenant.id)
    about = {"request_id": request.id, "kind": kind}
    recorder.add(
        "subject_request.registered",
        uri,
        subjects=[pseudonym],
        convenant_id=convenant.id,
        attributes={**about, "forwarded_to": recipients},
    )
    deliveries: dict[str, str] = {}
    if recipients:
        sealed = {
            "category": REQUEST_KIND,
            "bsn": bsn,
            "kind": kind,
            "received_by": received_by,
            "received_at": received_at.isoformat(),
            "note": note,
        }
        message = Message(
            convenant_id=convenant.id,
            kind=REQUEST_KIND,
            sender=received_by,
            client_id=client_id,
            category=REQUEST_KIND,
            gemeente="",
            pseudonym=pseudonym,
            pseudonym_kid=pseudonymiser.kid,
            body=sealed,
        )
        deliveries = {r: d.id for r, d in send_message(session, keyring, message, recipients, now).items()}
    for recipient, delivery_id in deliveries.items():
        outbox.enqueue(
            session,
            party_id=recipient,
            topic="subject_request.forwarded",
            dedupe_key=f"subject_request:{request.id}:{recipient}",
            payload={
                **about,
                "convenant_id": convenant.id,
                "received_by": received_by,
                "received_at": received_at.isoformat(),
                "delivery_id": delivery_id,
            },
            now=now,
        )
        recorder.add(
            "subject_request.forwarded",
            uri,
            subjects=[pseudonym],
            parties=[recipient],
            convenant_id=convenant.id,
            attributes={**about, "recipient": recipient, "delivery_id": delivery_id, "category": REQUEST_KIND},
        )
    session.flush()
    return Forwarded(request, deliveries)


# -- restriction (AVG art. 18) and erasure (art. 17) -------------------------------------------------


def active_restriction(
    session: Session, convenant_id: str, pseudonym: str, requested_by: str
) -> SubjectRestriction | None:
    return session.scalars(
        select(SubjectRestriction).where(
            SubjectRestriction.convenant_id == convenant_id,
            SubjectRestriction.pseudonym == pseudonym,
            SubjectRestriction.requested_by == requested_by,
            SubjectRestriction.lifted_at.is_(None),
        )
    ).first()


def restrict(
    session: Session,
    convenant: Convenant,
    pseudonym: str,
    *,
    requested_by: str,
    reason: str,
    recorder: Recorder,
    now: dt.datetime,
) -> tuple[SubjectRestriction, bool]:
    """Restrict processing of the pupil: nothing about it is routed while the restriction is active.

    Returns the restriction and whether it is new (the requester's active one is returned as is).
    """
    existing = active_restriction(session, convenant.id, pseudonym, requested_by)
    if existing is not None:
        return existing, False
    restriction = SubjectRestriction(
        id=str(uuid.uuid4()),
        convenant_id=convenant.id,
        pseudonym=pseudonym,
        requested_by=requested_by,
        reason=reason,
        started_at=now,
        lifted_at=None,
        lifted_by=None,
    )
    session.add(restriction)
    session.flush()
    recorder.add(
        "subject.restricted",
        rights_activity(convenant.id),
        subjects=[pseudonym],
        parties=[requested_by] if requested_by != BROKER else [],
        convenant_id=convenant.id,
        attributes={"restriction_id": restriction.id, "requested_by": requested_by},
    )
    return restriction, True


def lift_restriction(
    session: Session, restriction: SubjectRestriction, *, lifted_by: str, recorder: Recorder, now: dt.datetime
) -> SubjectRestriction:
    """Lift a restriction: routing about the pupil resumes unless another restriction is active."""
    if restriction.lifted_at is not None:
        raise Conflict("Deze beperking is al opgeheven.")
    restriction.lifted_at = now
    restriction.lifted_by = lifted_by
    session.flush()
    requester = restriction.requested_by
    recorder.add(
        "subject.restriction_lifted",
        rights_activity(restriction.convenant_id),
        subjects=[restriction.pseudonym],
        parties=[requester] if requester != BROKER else [],
        convenant_id=restriction.convenant_id,
        attributes={"restriction_id": restriction.id, "requested_by": requester, "lifted_by": lifted_by},
    )
    return restriction


def erase(
    session: Session,
    keyring: Keyring,
    convenant: Convenant,
    pseudonym: str,
    *,
    requested_by: str,
    reason: str,
    recorder: Recorder,
    now: dt.datetime,
) -> int:
    """Purge everything the broker holds about the pupil (crypto-shredding) and commit; return the count.

    The request is kept with its reason (as a `SubjectRequest` of kind "wissing"); the purge is
    audited per record (`record.purged`) and the request as `subject.erased`. All of it commits
    together, and the destroyed keys' vault shares go after the commit.
    """
    request = SubjectRequest(
        id=str(uuid.uuid4()),
        convenant_id=convenant.id,
        pseudonym=pseudonym,
        kind="wissing",
        received_by=requested_by,
        received_at=now,
        registered_at=now,
        forwarded_to=[],
        note=reason,
    )
    session.add(request)
    keys = records_of_subject(session, convenant.id, pseudonym)
    result = purge_records(
        session, keyring, keys, recorder, now, reason=ERASURE_REASON, attributes={"requested_by": requested_by}
    )
    recorder.add(
        "subject.erased",
        rights_activity(convenant.id),
        subjects=[pseudonym],
        parties=[requested_by] if requested_by != BROKER else [],
        convenant_id=convenant.id,
        attributes={"request_id": request.id, "requested_by": requested_by, "records": result.records},
    )
    commit_purge(session, keyring, recorder)
    return result.records
