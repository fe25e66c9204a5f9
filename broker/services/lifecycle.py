"""The lifecycle of a case after it was sent: ending it and correcting its records.

Ending: a party ends its case about a pupil with one of the convenant's ending reasons. Every party
it exchanged data about the pupil with gets an end notice (the BSN and the reason, nothing else) and
the broker purges what it holds about the pupil in the ending party's flows, in one transaction with
the audit entries. An ending acts on the ending party's own flows only: other parties' exchanges
about the pupil go on. A later submission about the pupil is a new case and is routed again.

Correction (AVG art. 16): a party sends the corrected version of a record it sent; every party that
received an earlier version gets the correction, and the records and the audit link each version to
the one it replaces.

Who received what comes from the stored records and deliveries and from the audit log, which also
remembers what retention already purged.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import auditing
from broker.auditing import Recorder
from broker.errors import BrokerError, NotFound, ValidationFailed
from broker.keyring import Keyring
from broker.models import AuditEntryRow, CaseEnding, Delivery, DeliveryRecord, Record, Submission
from broker.services import need_to_know, outbox
from broker.services.delivery import Message, send_message
from broker.services.purge import purge_records, records_in_flows, withdraw_links
from broker.services.submission import (
    Accepted,
    audit_routing,
    audit_summary,
    member_party,
    pseudonymise,
    store,
    validate_records,
)
from schemas.convenant import Convenant, EndingReason
from schemas.validation import Bsn, RecordValidator

CASE = "case"
CORRECTION = "correction"
END_NOTICE = "end_notice"
END_CATEGORY = "einde"
ENDED = "case.ended"
NO_CASE = "Uw partij heeft geen lopende casus over deze leerling."
CHUNK = 500


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _attributes(canonical: bytes) -> dict[str, Any]:
    attributes = json.loads(canonical).get("attributes")
    return attributes if isinstance(attributes, dict) else {}


def _problem(field: str, code: str, message: str) -> dict[str, Any]:
    return {"record": None, "field": field, "code": code, "message": message}


# -- ending ----------------------------------------------------------------------------------------


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


# -- correction ------------------------------------------------------------------------------------


@dataclass
class Version:
    """The version a correction replaces: its record key and the submissions of its whole chain."""

    key: str  # "<submission_id>/<seq>"
    chain: list[str]  # submission ids, newest first

    @property
    def number(self) -> int:
        return len(self.chain)


@dataclass
class Corrected:
    """A stored correction: the submission and, per record, the version it replaces."""

    accepted: Accepted
    replaces: list[Version]

    def as_dict(self) -> dict[str, Any]:
        return {**self.accepted.as_dict(), "corrects": [v.key for v in self.replaces]}


def correct(
    session: Session,
    keyring: Keyring,
    convenant: Convenant,
    validator: RecordValidator,
    *,
    party_id: str,
    client_id: str,
    records: Any,
    now: dt.datetime,
    today: dt.date,
) -> Corrected:
    """Validate and store corrected records, and deliver each to every recipient of an earlier version.

    Validated like a submission and stored whole or not at all. A record's earlier version is the
    caller's most recent stored record about the same pupil; current routing also gets the correction
    (the pupil may have moved); a restriction holds a correction back as it holds back any record.
    """
    party = member_party(convenant, party_id)
    valid = validate_records(convenant, validator, party, records, today)
    pseudonyms = pseudonymise(keyring.pseudonymiser(convenant.id), convenant, valid)
    earlier = earlier_versions(session, convenant.id, party.id, pseudonyms)
    missing = [
        {
            "record": index,
            "field": convenant.subject_id_field,
            "code": "no_earlier_version",
            "message": "Uw partij heeft over deze jeugdige geen eerder record bij de broker dat te corrigeren is.",
        }
        for index, pseudonym in enumerate(pseudonyms)
        if pseudonym not in earlier
    ]
    if missing:
        raise ValidationFailed(
            f"{len(missing)} van {len(valid)} records corrigeren niets; er is niets opgeslagen.", errors=missing
        )
    receivers = _receivers(session, convenant.id, {p: earlier[p].chain for p in set(pseudonyms)})
    replaces = [earlier[p] for p in pseudonyms]
    accepted = store(
        session,
        keyring,
        convenant,
        party,
        client_id,
        CORRECTION,
        None,
        valid,
        now,
        pseudonyms=pseudonyms,
        corrects=[v.key for v in replaces],
        also_to=[tuple(sorted(receivers[p])) for p in pseudonyms],
    )
    return Corrected(accepted, replaces)


def earlier_versions(
    session: Session, convenant_id: str, party_id: str, pseudonyms: Iterable[str]
) -> dict[str, Version]:
    """Per pupil, the party's most recent stored case or correction record and the chain behind it."""
    stored: dict[str, list[Any]] = defaultdict(list)
    links: dict[str, dict[str, str]] = defaultdict(dict)  # pupil -> {submission id: key of what it corrects}
    for chunk in _chunks(sorted(set(pseudonyms))):
        rows = session.execute(
            select(
                Record.submission_id,
                Record.seq,
                Record.pseudonym,
                Record.corrects,
                Submission.received_at,
                Submission.kind,
            )
            .join(Submission, Submission.id == Record.submission_id)
            .where(
                Submission.convenant_id == convenant_id,
                Submission.party_id == party_id,
                Submission.kind.in_((CASE, CORRECTION)),
                Record.pseudonym.in_(chunk),
            )
        )
        for row in rows:
            stored[row.pseudonym].append(row)
            if row.corrects:
                links[row.pseudonym][row.submission_id] = row.corrects
        # The audit keeps the links of versions that were purged since.
        for subject, attributes in _audited(session, convenant_id, "record.corrected", chunk):
            if isinstance(attributes.get("submission_id"), str) and isinstance(attributes.get("corrects"), str):
                links[subject].setdefault(attributes["submission_id"], attributes["corrects"])
    return {pseudonym: _latest(versions, links[pseudonym]) for pseudonym, versions in stored.items()}


def _latest(versions: list[Any], links: dict[str, str]) -> Version:
    """The newest version no other version replaces, and the submissions of its chain."""
    replaced = {key.partition("/")[0] for key in links.values()}
    current = [v for v in versions if v.submission_id not in replaced] or versions
    # Equal times (one clock tick) are decided for the correction: it came after what it corrects.
    head = max(current, key=lambda v: (v.received_at, v.kind == CORRECTION, v.corrects is not None))
    chain = [head.submission_id]
    while chain[-1] in links:
        previous = links[chain[-1]].partition("/")[0]
        if previous in chain:
            break
        chain.append(previous)
    return Version(f"{head.submission_id}/{head.seq}", chain)


def _audited(
    session: Session, convenant_id: str, name: str, subjects: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(pupil, attributes) of the audit entries `name` about `subjects`."""
    rows = session.execute(
        select(AuditEntryRow.data_subject_id, AuditEntryRow.canonical).where(
            AuditEntryRow.convenant_id == convenant_id,
            AuditEntryRow.name == name,
            AuditEntryRow.data_subject_id.in_(subjects),
        )
    )
    for subject, canonical in rows:
        yield str(subject), _attributes(canonical)


def _receivers(session: Session, convenant_id: str, chains: dict[str, list[str]]) -> dict[str, set[str]]:
    """Per pupil, every party that received some version of its chain (deliveries and audit log)."""
    receivers: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(chains)):
        delivered = session.execute(
            select(Record.pseudonym, Record.submission_id, Delivery.recipient_party_id)
            .join(
                DeliveryRecord,
                (DeliveryRecord.submission_id == Record.submission_id) & (DeliveryRecord.seq == Record.seq),
            )
            .join(Delivery, Delivery.id == DeliveryRecord.delivery_id)
            .where(Delivery.convenant_id == convenant_id, Record.pseudonym.in_(chunk))
        )
        for pseudonym, submission_id, party in delivered:
            if submission_id in chains[pseudonym]:
                receivers[pseudonym].add(party)
        for subject, attributes in _audited(session, convenant_id, "delivery.created", chunk):
            recipient = attributes.get("recipient")
            if attributes.get("submission_id") in chains[subject] and isinstance(recipient, str):
                receivers[subject].add(recipient)
    return receivers


def audit_correction(recorder: Recorder, convenant: Convenant, corrected: Corrected) -> int:
    """Record a correction: the summary, per pupil the version it replaces, and per pupil per recipient
    the delivery. Returns the summary's position among the recorder's entries."""
    accepted = corrected.accepted
    position = audit_summary(recorder, convenant, accepted)
    uri = auditing.activity(convenant.id, CASE)
    for seq, (pseudonym, version) in enumerate(zip(accepted.pseudonyms, corrected.replaces, strict=True)):
        recorder.add(
            "record.corrected",
            uri,
            subjects=[pseudonym],
            convenant_id=convenant.id,
            attributes={
                "submission_id": accepted.submission.id,
                "kind": CORRECTION,
                "corrects": version.key,
                "version": version.number + 1,
                "category": accepted.categories[seq],
            },
        )
    audit_routing(recorder, convenant, accepted)
    return position
