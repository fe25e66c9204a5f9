"""Read and acknowledge what the broker routed to a party."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.app.errors import NotFound
from broker.app.keyring import Keyring
from broker.auditing import step as auditing
from broker.auditing.step import Recorder
from broker.exchange.restrictions import active_restrictions
from broker.models import Delivery, DeliveryRecord, Record, Submission
from keys.envelope import Sealer


def is_uuid(value: str) -> bool:
    """Whether `value` can be an id the broker issued (so it is safe to look up)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def delivery_summary(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "delivery_id": delivery.id,
        "convenant_id": delivery.convenant_id,
        "kind": delivery.kind,
        "sender": delivery.sender_party_id,
        "recipient": delivery.recipient_party_id,
        "records": delivery.record_count,
        "created_at": delivery.created_at.isoformat(),
        "fetched_at": delivery.fetched_at.isoformat() if delivery.fetched_at else None,
        "acked_at": delivery.acked_at.isoformat() if delivery.acked_at else None,
        "summary": delivery.summary,
    }


def list_deliveries(
    session: Session, party_id: str, *, convenant_id: str | None = None, unacked_only: bool = False
) -> list[Delivery]:
    """Return the deliveries addressed to `party_id`, newest first."""
    query = select(Delivery).where(Delivery.recipient_party_id == party_id)
    if convenant_id:
        query = query.where(Delivery.convenant_id == convenant_id)
    if unacked_only:
        query = query.where(Delivery.acked_at.is_(None))
    return list(session.scalars(query.order_by(Delivery.created_at.desc(), Delivery.id)))


def get_own_delivery(session: Session, party_id: str, delivery_id: str) -> Delivery:
    """Return a delivery the caller's party may read; another party's is answered as one that does not exist."""
    delivery = session.get(Delivery, delivery_id) if is_uuid(delivery_id) else None
    if delivery is None or delivery.recipient_party_id != party_id:
        raise NotFound("Deze levering bestaat niet.")
    return delivery


def delivery_activity(delivery: Delivery) -> str:
    """The processing activity of a delivery; a correction or end notice is part of the case exchange."""
    try:
        return auditing.activity(delivery.convenant_id, delivery.kind)
    except LookupError:
        return auditing.activity(delivery.convenant_id, "case")


def open_records(session: Session, keyring: Keyring, delivery: Delivery) -> tuple[list[str], list[dict[str, Any]]]:
    """Decrypt the records of a delivery, in submission order; also return their pseudonyms."""
    opened = _open(session, keyring, delivery)
    return [pseudonym for pseudonym, _, _ in opened], [record for _, _, record in opened]


def _open(session: Session, keyring: Keyring, delivery: Delivery) -> list[tuple[str, str, dict[str, Any]]]:
    """(pseudonym, stored category, decrypted record) of each record of a delivery, in submission order."""
    rows = session.execute(
        select(
            Record.submission_id, Record.seq, Record.payload, Submission.data_key_id, Record.pseudonym, Record.category
        )
        .join(
            DeliveryRecord, (DeliveryRecord.submission_id == Record.submission_id) & (DeliveryRecord.seq == Record.seq)
        )
        .join(Submission, Submission.id == Record.submission_id)
        .where(DeliveryRecord.delivery_id == delivery.id)
        .order_by(Record.submission_id, Record.seq)
    ).all()
    sealers: dict[str, Sealer] = {}
    opened = []
    for submission_id, seq, payload, data_key_id, pseudonym, category in rows:
        if data_key_id not in sealers:
            sealers[data_key_id] = Sealer(keyring.data_key(data_key_id))
        plaintext = sealers[data_key_id].open(payload, f"{submission_id}/{seq}".encode())
        opened.append((pseudonym, category, json.loads(plaintext)))
    return opened


def fetch_for_recipient(
    session: Session, keyring: Keyring, delivery: Delivery, recorder: Recorder, now: dt.datetime
) -> list[dict[str, Any]]:
    """Open a delivery for its recipient: decrypt it, mark it fetched, and record who learned
    about whom (one audit entry per pupil), in the caller's `audited_step`.

    A record about a pupil the recipient or the broker restricted (AVG art. 18) is held back while
    the restriction lasts, and that is audited too (`delivery.held_back`).
    """
    restrictions = active_restrictions(session, delivery.convenant_id)
    recipient = delivery.recipient_party_id
    opened: list[tuple[str, str, dict[str, Any]]] = []
    held_back: list[tuple[str, str, dict[str, Any]]] = []
    for item in _open(session, keyring, delivery):
        (held_back if restrictions.holds_back(item[0], recipient) else opened).append(item)
    records = [record for _, _, record in opened]
    mark_fetched(delivery, now)
    uri = delivery_activity(delivery)
    about = {"delivery_id": delivery.id, "records": len(records)}
    # The stored category: an end notice carries none in its payload.
    for name, items in (("delivery.fetched", opened), ("delivery.held_back", held_back)):
        for category, group in sorted(_by_category(items).items()):
            recorder.add(
                name,
                uri,
                subjects=group,
                parties=[delivery.sender_party_id],
                convenant_id=delivery.convenant_id,
                attributes={**about, "category": category},
            )
    if not records:  # an empty delivery is still opened, and that is recorded too
        recorder.add(
            "delivery.fetched",
            uri,
            parties=[delivery.sender_party_id],
            convenant_id=delivery.convenant_id,
            attributes=about,
        )
    return records


def _by_category(opened: list[tuple[str, str, dict[str, Any]]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for subject, category, _ in opened:
        groups.setdefault(category, []).append(subject)
    return groups


def mark_fetched(delivery: Delivery, now: dt.datetime) -> None:
    if delivery.fetched_at is None:
        delivery.fetched_at = now


def acknowledge(delivery: Delivery, now: dt.datetime) -> bool:
    """Record that the recipient has the delivery; False when it was already acknowledged."""
    if delivery.acked_at is not None:
        return False
    delivery.acked_at = now
    if delivery.fetched_at is None:
        delivery.fetched_at = now
    return True


@dataclass(frozen=True)
class Message:
    """One sealed record the broker itself sends on a party's behalf: an end notice, a forwarded request."""

    convenant_id: str
    kind: str
    sender: str
    client_id: str
    category: str
    gemeente: str
    pseudonym: str
    pseudonym_kid: str
    body: dict[str, Any]


def send_message(
    session: Session, keyring: Keyring, message: Message, recipients: list[str], now: dt.datetime
) -> dict[str, Delivery]:
    """Store `message` as a one-record submission with its own data key, and deliver it to each recipient.

    Its own key means it is purged on its own. The caller audits the deliveries.
    """
    data_key, key = keyring.new_data_key(message.convenant_id)
    submission = Submission(
        id=str(uuid.uuid4()),
        convenant_id=message.convenant_id,
        party_id=message.sender,
        client_id=message.client_id,
        kind=message.kind,
        quarter=None,
        record_count=1,
        data_key_id=data_key.id,
        received_at=now,
    )
    # No ORM relationships order these inserts: flush each level before the rows that point at it.
    session.add(submission)
    session.flush()
    payload = json.dumps(message.body, ensure_ascii=False, separators=(",", ":")).encode()
    session.add(
        Record(
            submission_id=submission.id,
            seq=0,
            category=message.category,
            gemeente=message.gemeente,
            pseudonym=message.pseudonym,
            pseudonym_kid=message.pseudonym_kid,
            payload=Sealer(key).seal(payload, f"{submission.id}/0".encode()),
            corrects=None,
        )
    )
    deliveries = {
        recipient: Delivery(
            id=str(uuid.uuid4()),
            convenant_id=message.convenant_id,
            kind=message.kind,
            submission_id=submission.id,
            sender_party_id=message.sender,
            recipient_party_id=recipient,
            record_count=1,
            created_at=now,
            fetched_at=None,
            acked_at=None,
        )
        for recipient in recipients
    }
    session.add_all(deliveries.values())
    session.flush()
    session.add_all(DeliveryRecord(delivery_id=d.id, submission_id=submission.id, seq=0) for d in deliveries.values())
    session.flush()
    return deliveries
