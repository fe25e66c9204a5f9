"""The access report (AVG art. 15): what the broker did with one pupil's data, and what it still holds.

It is read from the audit log (who sent and received what about the pupil, when, under which
processing activity) and from the current store (what the broker still holds). It is built per
convenant pseudonym and only ever queries by that pseudonym, so nothing about another pupil can
enter it. A party's officer sees the entries their party took part in and the records their
party sent or received, the same scoping rule as the log itself (`broker.auditing.entries`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broker.app.keyring import Keyring
from broker.auditing import step as auditing
from broker.auditing.step import Recorder
from broker.models import (
    AuditEntryRow,
    Breach,
    CaseEnding,
    Delivery,
    DeliveryRecord,
    Record,
    SubjectRestriction,
    Submission,
)
from broker.rights.subjects import BROKER, REQUEST_KIND, entry_attributes, local
from keys.envelope import Sealer
from schemas.convenant import Convenant

# Entries about data of a category: the category's Bijlage 1 fields are what was processed.
CARRIES_DATA = frozenset(
    {
        "record.received",
        "delivery.created",
        "delivery.fetched",
        "delivery.acked",
        "match.record_disclosed",
        "record.purged",
        "subject_request.forwarded",
    }
)
ACTIONS = {
    "record.received": "Gegevens aangeleverd bij de broker",
    "delivery.created": "Gegevens klaargezet voor de ontvanger",
    "delivery.fetched": "Gegevens opgehaald door de ontvanger",
    "delivery.acked": "Ontvangst bevestigd door de ontvanger",
    "match.record_disclosed": "Gegevens verstrekt na de kwartaalvergelijking",
    "match.known_to_both": "Kwartaalvergelijking: bij beide partijen bekend",
    "match.different_category": "Kwartaalvergelijking: bij beide partijen bekend in een andere categorie",
    "breach.subject_concerned": "Betrokken bij een (vermoedelijk) datalek",
    "record.purged": "Gegevens gewist bij de broker",
    "subject_request.registered": "Verzoek van de betrokkene ontvangen",
    "subject_request.forwarded": "Verzoek van de betrokkene doorgestuurd",
    "subject.restricted": "Verwerking beperkt",
    "subject.restriction_lifted": "Beperking van de verwerking opgeheven",
    "subject.erased": "Gegevens gewist op verzoek",
    "subject.access_report": "Inzagerapport opgesteld",
    "review.subject_looked_up": "Opgezocht in het logboek door een privacy officer",
}
REQUEST_LABELS = {
    "kind": "Soort verzoek",
    "received_by": "Ontvangen door",
    "received_at": "Ontvangen op",
    "note": "Toelichting",
}


# -- the access report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One processing step about the pupil, as the audit log records it."""

    convenant_id: str
    index: int
    time: dt.datetime  # Europe/Amsterdam
    name: str
    action: str
    source: str | None  # party id, BROKER, or None
    target: str | None
    category: str | None  # the category's label
    fields: tuple[str, ...]  # Bijlage 1 items with their fields
    activity: str  # the name of the processing activity


@dataclass(frozen=True)
class HeldRecord:
    """A record the broker still holds about the pupil, opened: it is the pupil's own data."""

    convenant_id: str
    submission_id: str
    seq: int
    received_at: dt.datetime  # Europe/Amsterdam
    sender: str
    recipients: tuple[str, ...]
    category: str  # the category's label
    activity: str
    values: tuple[tuple[str, str], ...]  # (label, value); the BSN is never among them


@dataclass(frozen=True)
class RestrictionLine:
    convenant_id: str
    restriction_id: str
    requested_by: str
    started_at: dt.datetime
    reason: str


@dataclass(frozen=True)
class EndingLine:
    convenant_id: str
    party: str
    ended_at: dt.datetime
    reason: str


@dataclass(frozen=True)
class BreachLine:
    convenant_id: str
    number: int
    reporter: str
    detected_at: dt.datetime
    closed: bool


@dataclass
class AccessReport:
    """Everything the broker knows it did with one pupil's data, for one viewer."""

    generated_at: dt.datetime
    viewer_party: str | None
    convenants: dict[str, Convenant]
    rows: list[ReportRow] = field(default_factory=list)
    records: list[HeldRecord] = field(default_factory=list)
    restrictions: list[RestrictionLine] = field(default_factory=list)
    endings: list[EndingLine] = field(default_factory=list)
    breaches: list[BreachLine] = field(default_factory=list)

    def party_name(self, party_id: str | None) -> str:
        if party_id is None:
            return ""
        if party_id == BROKER:
            return "de broker"
        for convenant in self.convenants.values():
            party = convenant.party(party_id)
            if party is not None:
                return party.name
        return party_id

    def count(self, convenant_id: str) -> dict[str, int]:
        """How much of the report is about one convenant (for the audit entry)."""
        return {
            "rows": sum(r.convenant_id == convenant_id for r in self.rows),
            "records": sum(r.convenant_id == convenant_id for r in self.records),
        }


def _involves(party: str) -> Any:
    # The same test as the log's own scoping: the party took part in the entry.
    return AuditEntryRow.parties.contains(f",{party},", autoescape=True)


def _item_fields(convenant: Convenant, category_id: str | None) -> tuple[str, ...]:
    category = convenant.categories.get(category_id or "")
    if category is None:
        return ()
    shown = []
    for item in category.items:
        labels = ", ".join(convenant.fields[name].label for name in item.fields)
        shown.append(item.item if labels.casefold() == item.item.casefold() else f"{item.item}: {labels}")
    return tuple(shown)


def _category_label(convenant: Convenant, category_id: str | None) -> str | None:
    if category_id is None:
        return None
    if category_id == REQUEST_KIND:
        return "Verzoek van de betrokkene"
    category = convenant.categories.get(category_id)
    return category.label if category else category_id


def _flow(row: AuditEntryRow, attributes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Who sent and who received, according to one entry."""
    actor = row.actor_party or BROKER
    name = row.name
    if name in ("delivery.created", "subject_request.forwarded"):
        return actor, attributes.get("recipient")
    if name in ("delivery.fetched", "delivery.acked"):
        others = [p for p in row.parties.split(",") if p and p != row.actor_party]
        return (others[0] if others else BROKER), row.actor_party
    if name == "match.record_disclosed":
        return attributes.get("from"), attributes.get("to")
    if name in ("match.known_to_both", "match.different_category"):
        pair = list(attributes.get("parties") or [p for p in row.parties.split(",") if p])
        return (pair[0] if pair else None), (pair[1] if len(pair) > 1 else None)
    if name == "record.received":
        return actor, BROKER
    return actor, None


def _rows_of_subject(
    session: Session, convenant: Convenant, pseudonym: str, viewer_party: str | None, names: Mapping[str, str]
) -> tuple[list[ReportRow], set[str]]:
    """The entries about the pupil, and the delivery acknowledgements of the deliveries that held it."""
    query = select(AuditEntryRow).where(AuditEntryRow.data_subject_id == pseudonym)
    if viewer_party is not None:
        query = query.where(_involves(viewer_party))
    rows = list(session.scalars(query.order_by(AuditEntryRow.idx)))
    decoded = [(row, entry_attributes(row)) for row in rows]
    deliveries = {str(a["delivery_id"]) for _, a in decoded if a.get("delivery_id")}
    categories = {str(a["delivery_id"]): a.get("category") for _, a in decoded if a.get("delivery_id")}
    recipients = {r.actor_party for r, _ in decoded if r.name == "delivery.fetched" and r.actor_party}
    recipients |= {str(a["recipient"]) for r, a in decoded if r.name == "delivery.created" and a.get("recipient")}
    if deliveries and recipients:
        # `delivery.acked` is one entry per delivery, not per pupil: it belongs to the pupil's deliveries.
        acked = (
            select(AuditEntryRow)
            .where(
                AuditEntryRow.name == "delivery.acked",
                AuditEntryRow.convenant_id == convenant.id,
                AuditEntryRow.actor_party.in_(sorted(recipients)),
                AuditEntryRow.idx > rows[0].idx,
            )
            .order_by(AuditEntryRow.idx)
        )
        if viewer_party is not None:
            acked = acked.where(_involves(viewer_party))
        for row in session.scalars(acked):
            attributes = entry_attributes(row)
            delivery_id = str(attributes.get("delivery_id"))
            if delivery_id in deliveries:
                decoded.append((row, {**attributes, "category": categories.get(delivery_id)}))
    decoded.sort(key=lambda pair: pair[0].idx)
    result = []
    for row, attributes in decoded:
        category = attributes.get("category")
        source, target = _flow(row, attributes)
        result.append(
            ReportRow(
                convenant_id=row.convenant_id or convenant.id,
                index=row.idx,
                time=local(row.start_time),
                name=row.name,
                action=ACTIONS.get(row.name, row.name),
                source=source,
                target=target,
                category=_category_label(convenant, category),
                fields=_item_fields(convenant, category) if row.name in CARRIES_DATA else (),
                activity=names.get(row.processing_activity_id, row.processing_activity_id),
            )
        )
    breaches = {str(a["breach_id"]) for r, a in decoded if r.name == "breach.subject_concerned" and a.get("breach_id")}
    return result, breaches


def _values(convenant: Convenant, record: Mapping[str, Any], party_name: Any) -> tuple[tuple[str, str], ...]:
    """The record's values with their labels, in the order of Bijlage 1; the BSN is left out."""
    if record.get("category") == REQUEST_KIND:
        shown = []
        for key, label in REQUEST_LABELS.items():
            value = record.get(key)
            if value not in (None, ""):
                shown.append((label, party_name(value) if key == "received_by" else str(value)))
        return tuple(shown)
    category = convenant.categories.get(str(record.get("category")))
    names = category.field_names if category else tuple(k for k in record if k != "category")
    values: list[tuple[str, str]] = []
    for name in names:
        spec = convenant.fields.get(name)
        if name == convenant.subject_id_field or (spec is not None and spec.type == "bsn"):
            continue  # the report never shows a BSN, not even the pupil's own
        value = record.get(name)
        if value in (None, ""):
            continue
        if spec is not None and spec.type == "object" and isinstance(value, Mapping):
            for sub in spec.fields:
                if value.get(sub.name) not in (None, ""):
                    values.append((f"{spec.label}, {sub.label}", str(value[sub.name])))
            continue
        values.append((spec.label if spec else name, str(value)))
    return tuple(values)


def _held_records(
    session: Session,
    keyring: Keyring,
    convenant: Convenant,
    pseudonym: str,
    viewer_party: str | None,
    report: AccessReport,
) -> list[HeldRecord]:
    query = (
        select(Record, Submission)
        .join(Submission, Submission.id == Record.submission_id)
        .where(Submission.convenant_id == convenant.id, Record.pseudonym == pseudonym)
        .order_by(Submission.received_at, Record.submission_id, Record.seq)
    )
    if viewer_party is not None:
        received = (
            select(DeliveryRecord.delivery_id)
            .join(Delivery, Delivery.id == DeliveryRecord.delivery_id)
            .where(
                DeliveryRecord.submission_id == Record.submission_id,
                DeliveryRecord.seq == Record.seq,
                Delivery.recipient_party_id == viewer_party,
            )
            .exists()
        )
        query = query.where(or_(Submission.party_id == viewer_party, received))
    held = []
    for record, submission in session.execute(query).all():
        recipients = tuple(
            session.scalars(
                select(Delivery.recipient_party_id)
                .join(DeliveryRecord, DeliveryRecord.delivery_id == Delivery.id)
                .where(DeliveryRecord.submission_id == record.submission_id, DeliveryRecord.seq == record.seq)
                .distinct()
                .order_by(Delivery.recipient_party_id)
            )
        )
        if viewer_party is not None and submission.party_id != viewer_party:
            recipients = tuple(r for r in recipients if r == viewer_party)  # other recipients are not theirs to see
        sealer = Sealer(keyring.data_key(submission.data_key_id))
        opened = json.loads(sealer.open(record.payload, f"{record.submission_id}/{record.seq}".encode()))
        held.append(
            HeldRecord(
                convenant_id=convenant.id,
                submission_id=record.submission_id,
                seq=record.seq,
                received_at=local(submission.received_at),
                sender=submission.party_id,
                recipients=recipients,
                category=_category_label(convenant, record.category) or record.category,
                activity=_activity_name(convenant, submission.kind),
                values=_values(convenant, opened, report.party_name),
            )
        )
    return held


def _activity_name(convenant: Convenant, kind: str) -> str:
    register = auditing.register()
    try:
        activity = register.activity(convenant.id, kind)
    except LookupError:
        activity = register.activity(convenant.id, "case")
    return str(activity.text.get("name", activity.uri))


def access_report(
    session: Session,
    keyring: Keyring,
    convenants: Mapping[str, Convenant],
    bsn_pseudonyms: Mapping[str, str],
    viewer_party: str | None,
    *,
    now: dt.datetime,
) -> AccessReport:
    """Build the access report (AVG art. 15) about one pupil, known by its pseudonym per convenant.

    `viewer_party` None is the broker's officer (everything); a party id limits the report to the
    entries that party took part in and the records it sent or received.
    """
    report = AccessReport(generated_at=local(now), viewer_party=viewer_party, convenants=dict(convenants))
    names = {a.uri: str(a.text.get("name", a.uri)) for a in auditing.register().activities}
    for convenant_id, pseudonym in sorted(bsn_pseudonyms.items()):
        convenant = convenants.get(convenant_id)
        if convenant is None or (viewer_party is not None and convenant.party(viewer_party) is None):
            continue
        rows, breach_ids = _rows_of_subject(session, convenant, pseudonym, viewer_party, names)
        report.rows.extend(rows)
        report.records.extend(_held_records(session, keyring, convenant, pseudonym, viewer_party, report))
        restrictions = select(SubjectRestriction).where(
            SubjectRestriction.convenant_id == convenant_id,
            SubjectRestriction.pseudonym == pseudonym,
            SubjectRestriction.lifted_at.is_(None),
        )
        if viewer_party is not None:
            restrictions = restrictions.where(SubjectRestriction.requested_by == viewer_party)
        report.restrictions.extend(
            RestrictionLine(convenant_id, r.id, r.requested_by, local(r.started_at), r.reason)
            for r in session.scalars(restrictions.order_by(SubjectRestriction.started_at))
        )
        reasons = {r.id: f"{r.code}. {r.text}" for r in convenant.ending_reasons}
        endings = select(CaseEnding).where(CaseEnding.convenant_id == convenant_id, CaseEnding.pseudonym == pseudonym)
        report.endings.extend(
            EndingLine(convenant_id, e.party_id, local(e.ended_at), reasons.get(e.reason, e.reason))
            for e in session.scalars(endings.order_by(CaseEnding.ended_at))
            if viewer_party is None or viewer_party == e.party_id or viewer_party in (e.notified or [])
        )
        if breach_ids:
            breaches = select(Breach).where(Breach.id.in_(sorted(breach_ids))).order_by(Breach.number)
            report.breaches.extend(
                BreachLine(
                    convenant_id,
                    b.number,
                    b.reporting_party_id or BROKER,
                    local(b.detected_at),
                    b.closed_at is not None,
                )
                for b in session.scalars(breaches)
            )
    return report


def audit_access_report(
    recorder: Recorder, report: AccessReport, bsn_pseudonyms: Mapping[str, str], output: str
) -> None:
    """Record that a report was made: one entry per convenant pseudonym it covered."""
    for convenant_id, pseudonym in sorted(bsn_pseudonyms.items()):
        if convenant_id not in report.convenants:
            continue
        if report.viewer_party is not None and report.convenants[convenant_id].party(report.viewer_party) is None:
            continue
        recorder.add(
            "subject.access_report",
            auditing.broker_activity("review"),
            subjects=[pseudonym],
            convenant_id=convenant_id,
            attributes={"format": output, **report.count(convenant_id)},
        )
