"""Correcting a case (AVG art. 16): a party sends the corrected version of a record it sent.

Every party that received an earlier version gets the correction, and the records and the audit
link each version to the one it replaces. Who received what comes from the stored records and
deliveries and from the audit log, which also remembers what retention already purged.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.app.errors import ValidationFailed
from broker.app.keyring import Keyring
from broker.auditing import step as auditing
from broker.auditing.step import Recorder
from broker.exchange.recording import audit_routing, audit_summary
from broker.exchange.submission import Accepted, member_party, pseudonymise, store, validate_records
from broker.models import AuditEntryRow, Delivery, DeliveryRecord, Record, Submission
from broker.rights.endings import CASE
from schemas.convenant import Convenant
from schemas.validation import RecordValidator

CORRECTION = "correction"
CHUNK = 500


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _attributes(canonical: bytes) -> dict[str, Any]:
    attributes = json.loads(canonical).get("attributes")
    return attributes if isinstance(attributes, dict) else {}





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
