"""Data subjects' rights (AVG art. 15-18): the access report, forwarding, restriction and erasure.

The access report is read from the audit log (who sent and received what about the pupil, when,
under which processing activity) and from the current store (what the broker still holds). It is
built per convenant pseudonym and only ever queries by that pseudonym, so nothing about another
pupil can enter it. A party's officer sees the entries their party took part in and the records
their party sent or received, the same scoping rule as the log itself (`broker.auditing.entries`).

Every function that changes something adds audit entries to the recorder of the caller's
`audited_step`, which commits them with the change (after an erasure the caller sweeps the vault).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.entry import Actor
from broker.app.errors import Conflict, NotFound
from broker.app.keyring import Keyring
from broker.app.timefmt import AMSTERDAM
from broker.auditing import step as auditing
from broker.auditing.step import Recorder
from broker.exchange import need_to_know
from broker.exchange.delivery import Message, is_uuid, send_message
from broker.exchange.restrictions import BROKER  # the broker itself: in the report, as requester
from broker.models import (
    AuditEntryRow,
    SubjectRequest,
    SubjectRestriction,
)
from broker.parties import outbox
from broker.rights.purge import purge_records, records_in_flows, withdraw_links
from schemas.convenant import Convenant

REQUEST_KIND = "subject_request"  # the submission and delivery kind of a forwarded request
REQUEST_KINDS = ("inzage", "rectificatie", "wissing", "beperking", "bezwaar")
RIGHTS_STEP = "subject_rights"
ERASURE_REASON = "subject.erasure"

# The broker forwards a request on the requester's behalf, under its own name: the requester is not
# a party of the forwarding entries, so it never learns who else holds data about the pupil.
FORWARDER = Actor(type="system", id="broker:subject-requests")


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


# -- forwarding a request to the controllers that hold data ------------------------------------------


@dataclass(frozen=True)
class Forwarded:
    """A registered request, and the deliveries the broker made of it (never shown to the requester)."""

    request: SubjectRequest
    deliveries: dict[str, str]  # recipient -> delivery id


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
    sealed like any record, which it fetches with its own credentials. The requester is told
    neither whether nor to whom: a request about a pupil it may not name is registered like one
    about a pupil nobody holds, and forwarded to no one (need-to-know).
    """
    pseudonymiser = keyring.pseudonymiser(convenant.id)
    pseudonym = pseudonymiser.pseudonymise_bsn(bsn)
    recipients: list[str] = []
    if need_to_know.holds(session, convenant.id, received_by, pseudonym):
        recipients = sorted(need_to_know.holders(session, convenant.id, pseudonym) - {received_by})
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
        "subject_request.registered", uri, subjects=[pseudonym], convenant_id=convenant.id, attributes=about
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
            actor=FORWARDER,
            parties=[recipient],
            convenant_id=convenant.id,
            attributes={**about, "recipient": recipient, "delivery_id": delivery_id, "category": REQUEST_KIND},
        )
    session.flush()
    return Forwarded(request, deliveries)


# -- restriction (AVG art. 18) and erasure (art. 17) -------------------------------------------------


def acting_party(requested_by: str) -> str | None:
    """The party whose need-to-know bounds a request: None for the broker's own officers (all parties)."""
    return None if requested_by == BROKER else requested_by


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
    """Restrict processing of the pupil in the requester's own flows while the restriction is active.

    AVG art. 18 binds each controller: a party's restriction holds back what it would send or
    receive about the pupil; the broker's (`requested_by` BROKER) holds back every flow. A party
    may restrict only a pupil it may name (need-to-know). Returns the restriction and whether it is
    new (the requester's active one is returned as is).
    """
    need_to_know.require_held(session, convenant.id, acting_party(requested_by), pseudonym)
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


def own_restriction(
    session: Session, restriction_id: str, requested_by: str | None, convenant_ids: Container[str]
) -> SubjectRestriction:
    """The restriction `restriction_id` in one of `convenant_ids` if `requested_by` asked for it
    (None: the broker's officer, any). Someone else's restriction is answered as one that does not exist."""
    restriction = session.get(SubjectRestriction, restriction_id) if is_uuid(restriction_id) else None
    if (
        restriction is None
        or restriction.convenant_id not in convenant_ids
        or (requested_by is not None and restriction.requested_by != requested_by)
    ):
        raise NotFound("Deze beperking bestaat niet.")
    return restriction


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
    """Purge what the broker holds about the pupil in the requester's flows (crypto-shredding).

    A party erases what it sent about the pupil and what is on its way to it; the broker's officer
    (`requested_by` BROKER) erases everything. A party may erase only a pupil it may name. Returns
    the number of records purged. The request is kept with its reason (as a `SubjectRequest` of kind
    "wissing"); the purge is audited per record (`record.purged`, or `delivery.withdrawn` for a copy
    taken out of a delivery) and the request as `subject.erased`, in the caller's step; the caller
    sweeps the destroyed keys' vault shares after it committed (`Keyring.sweep_vault`).
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
    party = acting_party(requested_by)
    need_to_know.require_held(session, convenant.id, party, pseudonym)
    session.add(request)
    held = records_in_flows(session, convenant.id, pseudonym, party)
    about = {"requested_by": requested_by}
    result = purge_records(session, keyring, held.purge, recorder, now, reason=ERASURE_REASON, attributes=about)
    withdraw_links(session, held.withdraw, recorder, now, reason=ERASURE_REASON, attributes=about)
    recorder.add(
        "subject.erased",
        rights_activity(convenant.id),
        subjects=[pseudonym],
        parties=[requested_by] if requested_by != BROKER else [],
        convenant_id=convenant.id,
        attributes={"request_id": request.id, "requested_by": requested_by, "records": result.records},
    )
    return result.records
