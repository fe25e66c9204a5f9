"""Purging with crypto-shredding: the one way the broker forgets personal data.

Records are sealed with a data key per submission. Purging some records of a submission re-seals
the others under a new data key and destroys the old one; purging the last record destroys the key.
Either way no remaining key opens a purged payload, and because a data key also needs its share in
the key vault (outside the database), a copy of the database taken before the purge cannot open it
either. The submission and delivery rows stay as tombstones (counts and times, no payload).

Each purge writes one audit entry per pupil (the pseudonym, never a payload) through the caller's
`audited_step`; once that committed, the caller calls `Keyring.sweep_vault`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from broker.app.keyring import Keyring
from broker.auditing import step as auditing
from broker.auditing.step import Recorder
from broker.exchange.delivery import delivery_activity
from broker.models import Delivery, DeliveryRecord, Record, Submission
from keys.envelope import Sealer

RecordKey = tuple[str, int]  # (submission_id, seq)
CHUNK = 500


@dataclass(frozen=True)
class PurgeResult:
    records: int
    submissions_emptied: int
    keys_destroyed: int


def _chunks(items: list[RecordKey]) -> Iterable[list[RecordKey]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def purge_records(
    session: Session,
    keyring: Keyring,
    keys: Iterable[RecordKey],
    recorder: Recorder,
    now: dt.datetime,
    *,
    reason: str,
    attributes: Mapping[str, object] | None = None,
) -> PurgeResult:
    """Delete the records `keys` and make their payloads undecryptable; audited per pupil."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for submission_id, seq in keys:
        wanted[submission_id].add(seq)
    purged = emptied = destroyed = 0
    touched: set[str] = set()
    for submission_id, seqs in sorted(wanted.items()):
        submission = session.get(Submission, submission_id, with_for_update=True)
        if submission is None:
            continue
        rows = session.execute(
            select(Record.seq, Record.pseudonym, Record.category, Record.payload)
            .where(Record.submission_id == submission_id)
            .order_by(Record.seq)
        ).all()
        going = [r for r in rows if r.seq in seqs]
        if not going:
            continue
        staying = [r for r in rows if r.seq not in seqs]
        old_key_id = submission.data_key_id
        if staying:
            _reseal(session, keyring, submission, staying)
        else:
            submission.purged_at = now
            emptied += 1
        doomed = [(submission_id, r.seq) for r in going]
        for chunk in _chunks(doomed):
            touched.update(
                session.scalars(
                    select(DeliveryRecord.delivery_id)
                    .where(tuple_(DeliveryRecord.submission_id, DeliveryRecord.seq).in_(chunk))
                    .distinct()
                )
            )
            session.execute(
                delete(DeliveryRecord).where(tuple_(DeliveryRecord.submission_id, DeliveryRecord.seq).in_(chunk))
            )
            session.execute(delete(Record).where(tuple_(Record.submission_id, Record.seq).in_(chunk)))
        keyring.destroy_data_key(old_key_id)
        destroyed += 1
        purged += len(going)
        by_category: dict[str, list[str]] = defaultdict(list)
        for row in going:
            by_category[row.category].append(row.pseudonym)
        for category, subjects in sorted(by_category.items()):
            recorder.add(
                "record.purged",
                _activity(submission),
                subjects=subjects,
                parties=[submission.party_id],
                convenant_id=submission.convenant_id,
                attributes={
                    "submission_id": submission_id,
                    "reason": reason,
                    "category": category,
                    "data_key_destroyed": old_key_id,
                    **(attributes or {}),
                },
            )
    session.flush()
    _tombstone_empty_deliveries(session, sorted(touched), now)
    return PurgeResult(purged, emptied, destroyed)


def _activity(submission: Submission) -> str:
    try:
        return auditing.activity(submission.convenant_id, submission.kind)
    except LookupError:  # a correction or notice is part of the case exchange
        return auditing.activity(submission.convenant_id, "case")


def _reseal(session: Session, keyring: Keyring, submission: Submission, staying: list[Any]) -> None:
    """Seal the records that stay under a fresh data key (same AAD: submission id and seq).

    One executemany for all of them: re-sealing a 100,000-record list is one statement, not 100,000.
    """
    old = Sealer(keyring.data_key(submission.data_key_id))
    row, key = keyring.new_data_key(submission.convenant_id)
    session.flush()
    new = Sealer(key)
    prefix = submission.id + "/"
    resealed = []
    for record in staying:
        aad = (prefix + str(record.seq)).encode()
        resealed.append(
            {"key_sid": submission.id, "key_seq": record.seq, "payload": new.seal(old.open(record.payload, aad), aad)}
        )
    table = cast(Table, Record.__table__)
    session.connection().execute(
        update(table)
        .where(table.c.submission_id == bindparam("key_sid"), table.c.seq == bindparam("key_seq"))
        .values(payload=bindparam("payload")),
        resealed,
    )
    submission.data_key_id = row.id


def _tombstone_empty_deliveries(session: Session, delivery_ids: list[str], now: dt.datetime) -> None:
    """A delivery none of whose records remain is marked purged (a match summary keeps its counts)."""
    linked = select(DeliveryRecord.delivery_id).where(DeliveryRecord.delivery_id == Delivery.id).exists()
    for i in range(0, len(delivery_ids), CHUNK):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids[i : i + CHUNK]), Delivery.purged_at.is_(None), ~linked)
            .values(purged_at=now)
            .execution_options(synchronize_session=False)
        )


def records_of_subject(session: Session, convenant_id: str, pseudonym: str) -> list[RecordKey]:
    """Every record the broker still holds about one pupil in one convenant."""
    rows = session.execute(
        select(Record.submission_id, Record.seq)
        .join(Submission, Submission.id == Record.submission_id)
        .where(Submission.convenant_id == convenant_id, Record.pseudonym == pseudonym)
    ).all()
    return [(r.submission_id, r.seq) for r in rows]


@dataclass(frozen=True)
class Held:
    """What the broker holds about a pupil in one party's flows: records to purge, and deliveries of
    records that also went to a third party, from which only the party's own copy is withdrawn."""

    purge: list[RecordKey]
    withdraw: list[tuple[str, RecordKey]]  # (delivery id, record)


def records_in_flows(session: Session, convenant_id: str, pseudonym: str, party: str | None) -> Held:
    """The records about a pupil in `party`'s flows: those it sent and those on their way to it.

    `party` None (the broker's officer) is every record about the pupil. A record another party sent
    is purged when the party is its only recipient; when it went to a third party too, only the
    party's delivery of it is withdrawn (the third party's flow is not the party's to erase).
    """
    if party is None:
        return Held(records_of_subject(session, convenant_id, pseudonym), [])
    rows = session.execute(
        select(Record.submission_id, Record.seq, Submission.party_id, Delivery.id, Delivery.recipient_party_id)
        .join(Submission, Submission.id == Record.submission_id)
        .outerjoin(
            DeliveryRecord, (DeliveryRecord.submission_id == Record.submission_id) & (DeliveryRecord.seq == Record.seq)
        )
        .outerjoin(Delivery, Delivery.id == DeliveryRecord.delivery_id)
        .where(Submission.convenant_id == convenant_id, Record.pseudonym == pseudonym)
    ).all()
    senders: dict[RecordKey, str] = {}
    recipients: dict[RecordKey, dict[str, str]] = defaultdict(dict)  # record -> {delivery id: recipient}
    for submission_id, seq, sender, delivery_id, recipient in rows:
        key = (submission_id, seq)
        senders[key] = sender
        if delivery_id is not None:
            recipients[key][delivery_id] = recipient
    purge: list[RecordKey] = []
    withdraw: list[tuple[str, RecordKey]] = []
    for key, sender in senders.items():
        to = recipients.get(key, {})
        if sender == party or (to and set(to.values()) == {party}):
            purge.append(key)
        elif party in to.values():
            withdraw.extend((delivery_id, key) for delivery_id, r in to.items() if r == party)
    return Held(sorted(purge), sorted(withdraw))


def withdraw_links(
    session: Session,
    links: list[tuple[str, RecordKey]],
    recorder: Recorder,
    now: dt.datetime,
    *,
    reason: str,
    attributes: Mapping[str, object] | None = None,
) -> None:
    """Take records out of deliveries (the records stay for their other recipients); audited per pupil."""
    for delivery_id, (submission_id, seq) in links:
        record = session.get(Record, (submission_id, seq))
        delivery = session.get(Delivery, delivery_id)
        if record is None or delivery is None:
            continue
        session.execute(
            delete(DeliveryRecord).where(
                DeliveryRecord.delivery_id == delivery_id,
                DeliveryRecord.submission_id == submission_id,
                DeliveryRecord.seq == seq,
            )
        )
        recorder.add(
            "delivery.withdrawn",
            delivery_activity(delivery),
            subjects=[record.pseudonym],
            parties=[delivery.sender_party_id, delivery.recipient_party_id],
            convenant_id=delivery.convenant_id,
            attributes={
                "delivery_id": delivery_id,
                "submission_id": submission_id,
                "reason": reason,
                "category": record.category,
                **(attributes or {}),
            },
        )
    session.flush()
    _tombstone_empty_deliveries(session, sorted({d for d, _ in links}), now)


def held_count(session: Session, convenant_id: str | None = None) -> int:
    query = select(func.count()).select_from(Record).join(Submission, Submission.id == Record.submission_id)
    if convenant_id:
        query = query.where(Submission.convenant_id == convenant_id)
    return int(session.scalar(query) or 0)
