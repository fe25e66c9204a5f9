"""Accept a submission: check the party's rights, validate, pseudonymise, seal, store and route.

Everything happens in the caller's transaction: a submission is stored whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from broker.app.errors import BadRequest, Forbidden, ValidationFailed
from broker.app.keyring import Keyring
from broker.exchange.restrictions import Restrictions, active_restrictions
from broker.matching.quarters import check_quarter, record_list
from broker.models import Delivery, DeliveryRecord, Record, Submission, table
from keys.envelope import Sealer
from keys.pseudonym import Pseudonymiser
from schemas.convenant import Convenant, Party
from schemas.fields import Violation
from schemas.validation import RecordValidator

KINDS = ("case", "quarterly_list")
# The kinds whose records are forwarded as they arrive (a quarterly list waits for the match).
ROUTED_KINDS = ("case", "correction")
QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
MAX_ERRORS = 1000


@dataclass
class Accepted:
    """What the broker tells the submitter after storing a submission."""

    submission: Submission
    deliveries: list[Delivery] = field(default_factory=list)
    pseudonyms: list[str] = field(default_factory=list)
    routed: dict[str, list[int]] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    withheld: list[int] = field(default_factory=list)  # records the sender's own restriction keeps here
    # (record, recipient): unchanged since it was last delivered to that recipient, so not delivered again
    duplicates: list[tuple[int, str]] = field(default_factory=list)

    def by_category(self, seqs: Iterable[int]) -> dict[str, list[str]]:
        """The pseudonyms of the records `seqs`, grouped by category (the audit keeps the category)."""
        groups: dict[str, list[str]] = defaultdict(list)
        for seq in seqs:
            groups[self.categories[seq]].append(self.pseudonyms[seq])
        return dict(sorted(groups.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission.id,
            "convenant_id": self.submission.convenant_id,
            "kind": self.submission.kind,
            "quarter": self.submission.quarter,
            "accepted": self.submission.record_count,
            "received_at": self.submission.received_at.isoformat(),
            "deliveries": [
                {"delivery_id": d.id, "recipient": d.recipient_party_id, "records": d.record_count}
                for d in self.deliveries
            ],
            "restricted": len(self.withheld),
            "duplicates": [{"record": seq, "recipient": recipient} for seq, recipient in self.duplicates],
        }


def member_party(convenant: Convenant, party_id: str) -> Party:
    """Return the caller's party in this convenant, or refuse."""
    party = convenant.party(party_id)
    if party is None:
        raise Forbidden("Uw partij is geen partij bij dit convenant.")
    return party


def check_envelope(kind: Any, quarter: Any) -> tuple[str, str | None]:
    """Check `kind` and `quarter` of a submission."""
    if kind not in KINDS:
        raise BadRequest(
            "kind moet 'case' of 'quarterly_list' zijn.",
            errors=[
                {"record": None, "field": "kind", "code": "invalid_choice", "message": "Kies case of quarterly_list."}
            ],
        )
    if kind == "quarterly_list":
        if not isinstance(quarter, str) or not QUARTER.match(quarter):
            raise BadRequest(
                "Een kwartaallijst noemt zijn kwartaal als JJJJ-QN, bijvoorbeeld 2026-Q4.",
                errors=[{"record": None, "field": "quarter", "code": "invalid_format", "message": "Gebruik JJJJ-QN."}],
            )
        return kind, quarter
    if quarter not in (None, ""):
        raise BadRequest(
            "Alleen een kwartaallijst heeft een kwartaal.",
            errors=[
                {
                    "record": None,
                    "field": "quarter",
                    "code": "not_allowed",
                    "message": "Laat quarter weg bij een casus.",
                }
            ],
        )
    return kind, None


def _category_violations(records: list[Any], party: Party, convenant: Convenant) -> list[Violation]:
    return [
        Violation(
            index,
            "category",
            "category_not_provided",
            f"Uw partij mag categorie {record['category']!r} volgens het convenant niet aanleveren.",
        )
        for index, record in enumerate(records)
        if isinstance(record, dict)
        and isinstance(record.get("category"), str)
        and record["category"] in convenant.categories
        and record["category"] not in party.provides
    ]


def _duplicates(records: list[dict[str, Any]], subject_field: str) -> list[Violation]:
    seen: dict[object, int] = {}
    violations = []
    for index, record in enumerate(records):
        subject = record.get(subject_field)
        if subject in seen:
            violations.append(
                Violation(
                    index, subject_field, "duplicate_subject", f"Deze jeugdige staat ook in record {seen[subject]}."
                )
            )
        else:
            seen[subject] = index
    return violations


def _gemeente(record: dict[str, Any], path: str) -> str:
    value: Any = record
    for part in path.split("."):
        value = value[part]
    return str(value)


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# Sorted keys: the same record gives the same bytes whatever order its fields arrived in.
_canonical = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def submit(
    session: Session,
    keyring: Keyring,
    convenant: Convenant,
    validator: RecordValidator,
    *,
    party_id: str,
    client_id: str,
    kind: Any,
    quarter: Any,
    records: Any,
    now: dt.datetime,
    today: dt.date,
    lines: list[int] | None = None,
) -> Accepted:
    """Validate and store one submission and route its records; raise on any violation."""
    party = member_party(convenant, party_id)
    kind, quarter = check_envelope(kind, quarter)
    if kind == "quarterly_list":
        check_quarter(convenant, quarter)
    valid = validate_records(convenant, validator, party, records, today, lines)
    return store(session, keyring, convenant, party, client_id, kind, quarter, valid, now)


def validate_records(
    convenant: Convenant,
    validator: RecordValidator,
    party: Party,
    records: Any,
    today: dt.date,
    lines: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Check a list of records against the convenant and the party's rights; return them cleaned or raise."""
    if not isinstance(records, list) or not records:
        raise BadRequest(
            "Een aanlevering bevat een niet-lege lijst records.",
            errors=[
                {"record": None, "field": "records", "code": "required", "message": "Lever minstens één record aan."}
            ],
        )

    refused = _category_violations(records, party, convenant)
    if refused:
        raise Forbidden(
            "Uw partij levert categorieën aan die het convenant haar niet toestaat.",
            errors=_report(refused, lines),
        )

    valid, violations = validator.validate(records, today)
    if not violations:
        violations = _duplicates(valid, convenant.subject_id_field)
    if violations:
        raise ValidationFailed(
            f"{len({v.record for v in violations})} van {len(records)} records voldoen niet; er is niets opgeslagen.",
            errors=_report(violations, lines),
        )
    return valid


def _report(violations: list[Violation], lines: list[int] | None) -> list[dict[str, Any]]:
    report = []
    for v in violations[:MAX_ERRORS]:
        entry = v.as_dict()
        if lines is not None:
            entry["line"] = lines[v.record]
        report.append(entry)
    return report


def pseudonymise(pseudonymiser: Pseudonymiser, convenant: Convenant, records: list[dict[str, Any]]) -> list[str]:
    """Return the pseudonym of the pupil of each validated record."""
    subject_field = convenant.subject_id_field
    return [pseudonymiser.pseudonymise_bsn(record[subject_field]) for record in records]


def store(
    session: Session,
    keyring: Keyring,
    convenant: Convenant,
    party: Party,
    client_id: str,
    kind: str,
    quarter: str | None,
    records: list[dict[str, Any]],
    now: dt.datetime,
    *,
    pseudonyms: list[str] | None = None,
    corrects: list[str] | None = None,
    also_to: list[tuple[str, ...]] | None = None,
) -> Accepted:
    """Seal and store validated records as one submission and route them.

    A record of a routed kind goes to whoever the convenant's routing names for its gemeente, plus
    `also_to[seq]` (the earlier recipients of a corrected record). A pupil the sender itself
    restricted is stored but routed to no one; one a recipient or the broker restricted is routed
    as any other and held back when the recipient fetches (`broker.exchange.restrictions`), so the
    sender's answer never tells it about another party's restriction. `corrects[seq]` names the
    record a correction replaces.
    """
    pseudonymiser = keyring.pseudonymiser(convenant.id)
    data_key, key = keyring.new_data_key(convenant.id)
    sealer = Sealer(key)
    submission = Submission(
        id=str(uuid.uuid4()),
        convenant_id=convenant.id,
        party_id=party.id,
        client_id=client_id,
        kind=kind,
        quarter=quarter,
        record_count=len(records),
        data_key_id=data_key.id,
        received_at=now,
    )
    session.add(submission)
    session.flush()
    if kind == "quarterly_list":
        record_list(session, submission)

    routes = kind in ROUTED_KINDS
    restrictions = active_restrictions(session, convenant.id) if routes else Restrictions()
    rows: list[dict[str, Any]] = []
    categories: list[str] = []
    withheld: list[int] = []
    routed: dict[str, list[int]] = defaultdict(list)
    if pseudonyms is None:
        pseudonyms = pseudonymise(pseudonymiser, convenant, records)
    recipients_by_gemeente: dict[str, tuple[str, ...]] = {}
    dumps = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":")).encode
    fingerprints = [pseudonymiser.fingerprint(_canonical(r).encode()) for r in records] if routes else []
    delivered = last_delivered(session, convenant.id, party.id, pseudonyms) if routes else {}
    duplicates: list[tuple[int, str]] = []
    prefix = submission.id + "/"
    for seq, record in enumerate(records):
        gemeente = _gemeente(record, convenant.gemeente_field)
        pseudonym = pseudonyms[seq]
        categories.append(record["category"])
        rows.append(
            {
                "submission_id": submission.id,
                "seq": seq,
                "category": record["category"],
                "gemeente": gemeente,
                "pseudonym": pseudonym,
                "pseudonym_kid": pseudonymiser.kid,
                "payload": sealer.seal(dumps(record).encode(), (prefix + str(seq)).encode()),
                "corrects": corrects[seq] if corrects else None,
                "fingerprint": fingerprints[seq] if routes else None,
            }
        )
        if not routes:
            continue
        if gemeente not in recipients_by_gemeente:
            recipients_by_gemeente[gemeente] = tuple(p.id for p in convenant.recipients(party, gemeente))
        targets = recipients_by_gemeente[gemeente]
        if also_to and also_to[seq]:
            targets = tuple(dict.fromkeys((*targets, *(p for p in also_to[seq] if p != party.id))))
        if targets and restrictions.asked_by(pseudonym, party.id):
            withheld.append(seq)  # the sender's own restriction: it knows, and nothing leaves
            continue
        for recipient in targets:
            if delivered.get((pseudonym, recipient)) == fingerprints[seq]:
                duplicates.append((seq, recipient))  # unchanged since it last went there
                continue
            routed[recipient].append(seq)
    # Core executemany, not the ORM's bulk path: the rows are plain dicts already and the ORM's
    # per-row bookkeeping would double the cost of a 100,000-record list.
    connection = session.connection()
    connection.execute(insert(table(Record)), rows)

    # Quarterly lists are not forwarded whole: the quarterly match tells each party what it lacks.
    deliveries = [
        Delivery(
            id=str(uuid.uuid4()),
            convenant_id=convenant.id,
            kind=kind,
            submission_id=submission.id,
            sender_party_id=party.id,
            recipient_party_id=recipient,
            record_count=len(seqs),
            created_at=now,
            fetched_at=None,
            acked_at=None,
        )
        for recipient, seqs in routed.items()
    ]
    session.add_all(deliveries)
    session.flush()
    links = [
        {"delivery_id": d.id, "submission_id": submission.id, "seq": seq}
        for d in deliveries
        for seq in routed[d.recipient_party_id]
    ]
    if links:
        connection.execute(insert(table(DeliveryRecord)), links)
    return Accepted(submission, deliveries, pseudonyms, dict(routed), categories, withheld, duplicates)


def last_delivered(
    session: Session, convenant_id: str, sender: str, pseudonyms: list[str]
) -> dict[tuple[str, str], str | None]:
    """Per (pupil, recipient), the fingerprint of the sender's record last delivered to that recipient.

    Two records delivered in the same instant with different fingerprints leave it unknown (None):
    the new record is then delivered, never dropped on a guess.
    """
    latest: dict[tuple[str, str], tuple[Any, set[str | None]]] = {}
    wanted = sorted(set(pseudonyms))
    for i in range(0, len(wanted), 500):
        rows = session.execute(
            select(Record.pseudonym, Delivery.recipient_party_id, Record.fingerprint, Submission.received_at)
            .join(Submission, Submission.id == Record.submission_id)
            .join(
                DeliveryRecord,
                (DeliveryRecord.submission_id == Record.submission_id) & (DeliveryRecord.seq == Record.seq),
            )
            .join(Delivery, Delivery.id == DeliveryRecord.delivery_id)
            .where(
                Submission.convenant_id == convenant_id,
                Submission.party_id == sender,
                Submission.kind.in_(ROUTED_KINDS),
                Record.pseudonym.in_(wanted[i : i + 500]),
            )
        )
        for pseudonym, recipient, fingerprint, received_at in rows:
            key = (pseudonym, recipient)
            if key not in latest or received_at > latest[key][0]:
                latest[key] = (received_at, {fingerprint})
            elif received_at == latest[key][0]:
                latest[key][1].add(fingerprint)
    return {key: next(iter(found)) if len(found) == 1 else None for key, (_, found) in latest.items()}
