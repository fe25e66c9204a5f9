"""What a breach concerns (its scope) and its impact, read from the audit log.

The impact says which parties sent, received and fetched which categories of data about how many
pupils in scope, and which personal data fields those categories carry. It is computed from the
per-pupil audit entries only (each carries the record's category), so it can be checked against
the log and still be computed after the records themselves were purged.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.app.errors import ValidationFailed
from broker.exchange.delivery import is_uuid
from broker.models import AuditEntryRow, Delivery, Submission
from schemas.convenant import Convenant

# Audit entries about one pupil that say a party sent or learned data, and who it was.
SENT, RECEIVED, FETCHED = "sent", "received", "fetched"
IMPACT_ENTRIES = ("record.received", "delivery.created", "delivery.fetched", "match.record_disclosed")


# -- scope ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a breach concerns. Each criterion given narrows the scope; within one, any item matches."""

    submissions: tuple[str, ...] = ()
    deliveries: tuple[str, ...] = ()
    window: tuple[dt.datetime, dt.datetime] | None = None
    subjects: tuple[str, ...] = ()  # pseudonyms in the breach's convenant, never a BSN

    def is_empty(self) -> bool:
        return not (self.submissions or self.deliveries or self.window or self.subjects)

    def to_json(self) -> dict[str, Any]:
        return {
            "submissions": list(self.submissions),
            "deliveries": list(self.deliveries),
            "window": {"from": self.window[0].isoformat(), "to": self.window[1].isoformat()} if self.window else None,
            "subjects": list(self.subjects),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        window = data.get("window")
        return cls(
            submissions=tuple(data.get("submissions") or ()),
            deliveries=tuple(data.get("deliveries") or ()),
            window=(dt.datetime.fromisoformat(window["from"]), dt.datetime.fromisoformat(window["to"]))
            if window
            else None,
            subjects=tuple(data.get("subjects") or ()),
        )

    def public(self) -> dict[str, Any]:
        """The scope as shown to parties and officers: pseudonyms are counted, not listed."""
        shown = self.to_json()
        shown["subjects"] = len(self.subjects)
        return shown


def check_scope(session: Session, convenant: Convenant, scope: Scope, party_id: str | None) -> None:
    """Refuse ids that do not exist, belong to another convenant, or (for a party) are not its own.

    To a party, another party's submission or delivery is one that does not exist (need-to-know).
    """
    errors = []
    for i, submission_id in enumerate(scope.submissions):
        row = session.get(Submission, submission_id) if is_uuid(submission_id) else None
        if row is None or row.convenant_id != convenant.id or (party_id is not None and row.party_id != party_id):
            errors.append(field_error(f"scope.submissions.{i}", "unknown_submission", "Deze inzending bestaat niet."))
    for i, delivery_id in enumerate(scope.deliveries):
        delivery = session.get(Delivery, delivery_id) if is_uuid(delivery_id) else None
        if (
            delivery is None
            or delivery.convenant_id != convenant.id
            or (party_id is not None and party_id not in (delivery.sender_party_id, delivery.recipient_party_id))
        ):
            errors.append(field_error(f"scope.deliveries.{i}", "unknown_delivery", "Deze levering bestaat niet."))
    if errors:
        raise ValidationFailed("De reikwijdte van de melding klopt niet.", errors)


def field_error(field_name: str, code: str, message: str) -> dict[str, Any]:
    return {"record": None, "field": field_name, "code": code, "message": message}


# -- impact from the audit log ----------------------------------------------------------------------


@dataclass
class ImpactCount:
    """Who sent or learned what about whom, as the audit log says."""

    by_category: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    parties: dict[str, dict[str, dict[str, set[str]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    )
    # Per pupil, the parties of its flows in scope: the only ones who may see that it is concerned.
    subjects: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, party: str | None, how: str, category: str, subject: str) -> None:
        self.by_category[category].add(subject)
        concerned = self.subjects[subject]
        if party:
            self.parties[party][how][category].add(subject)
            concerned.add(party)


def _flows(name: str, actor_party: str | None, attributes: dict[str, Any]) -> list[tuple[str | None, str]]:
    """Which party did what (sent, received, fetched) according to one per-pupil entry."""
    if name == "record.received":
        return [(actor_party, SENT)]
    if name == "delivery.created":
        return [(actor_party, SENT), (attributes.get("recipient"), RECEIVED)]
    if name == "delivery.fetched":
        return [(actor_party, FETCHED)]
    if name == "match.record_disclosed":
        return [(attributes.get("from"), SENT), (attributes.get("to"), RECEIVED)]
    return []


def _match_runs_of(session: Session, delivery_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """For match deliveries in scope: run id -> (from, to), so their disclosure entries match too."""
    runs = {}
    for delivery in session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids))):
        run_id = (delivery.summary or {}).get("run_id")
        if run_id:
            runs[run_id] = (delivery.sender_party_id, delivery.recipient_party_id)
    return runs


def compute_impact(
    session: Session, convenant: Convenant, scope: Scope, now: dt.datetime, reporter: str | None = None
) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """Read the audit log and say who sent and learned which categories about how many pupils.

    A party's breach (`reporter`) covers only what that party itself sent or received: the flows
    it took part in (need-to-know), and the fetches of what it sent. The broker's own breach
    (`reporter` None) covers every flow in scope. Returns the impact (counts only) and, per pupil
    concerned, the parties of its flows in scope (for the per-pupil audit entries).
    """
    size = session.scalar(select(func.count()).select_from(AuditEntryRow)) or 0
    query = select(
        AuditEntryRow.name, AuditEntryRow.actor_party, AuditEntryRow.data_subject_id, AuditEntryRow.canonical
    ).where(
        AuditEntryRow.convenant_id == convenant.id,
        AuditEntryRow.name.in_(IMPACT_ENTRIES),
        AuditEntryRow.data_subject_id.is_not(None),
        AuditEntryRow.idx < size,
    )
    if reporter is not None:
        query = query.where(AuditEntryRow.parties.contains(f",{reporter},", autoescape=True))
    if scope.window:
        query = query.where(AuditEntryRow.start_time >= scope.window[0], AuditEntryRow.start_time <= scope.window[1])
    subject_filter = set(scope.subjects)
    if subject_filter and len(subject_filter) <= 500:
        query = query.where(AuditEntryRow.data_subject_id.in_(subject_filter))
    submissions, deliveries = set(scope.submissions), set(scope.deliveries)
    match_runs = _match_runs_of(session, scope.deliveries) if deliveries else {}
    # A fetch names its delivery, not the submission: the deliveries made of a submission in scope.
    made_of = _deliveries_of(session, scope.submissions) if submissions else set()
    count = ImpactCount()
    for row in session.execute(query.execution_options(yield_per=5000)):
        if subject_filter and row.data_subject_id not in subject_filter:
            continue
        entry = json.loads(row.canonical)
        attributes = entry.get("attributes") or {}
        if submissions and attributes.get("submission_id") not in submissions:
            if row.name != "delivery.fetched" or attributes.get("delivery_id") not in made_of:
                continue
        if deliveries and attributes.get("delivery_id") not in deliveries:
            run = match_runs.get(attributes.get("run_id", ""))
            if run is None or (attributes.get("from"), attributes.get("to")) != run:
                continue
        category = str(attributes.get("category") or "onbekend")
        for party, how in _flows(row.name, row.actor_party, attributes):
            count.add(party, how, category, str(row.data_subject_id))
    return _impact_document(convenant, count, size, now), dict(count.subjects)


def _deliveries_of(session: Session, submission_ids: Sequence[str]) -> set[str]:
    return set(session.scalars(select(Delivery.id).where(Delivery.submission_id.in_(sorted(submission_ids)))))


def _impact_document(convenant: Convenant, count: ImpactCount, size: int, now: dt.datetime) -> dict[str, Any]:
    categories = [c for c in convenant.categories if c in count.by_category] + sorted(
        c for c in count.by_category if c not in convenant.categories
    )
    field_names: list[str] = []
    for category_id in categories:
        category = convenant.categories.get(category_id)
        for name in category.field_names if category else ():
            if name not in field_names:
                field_names.append(name)
    parties = []
    for party in convenant.parties:
        flows = count.parties.get(party.id)
        if not flows:
            continue
        subjects = set().union(*(s for how in flows.values() for s in how.values()))
        parties.append(
            {
                "party_id": party.id,
                "name": party.name,
                "data_subjects": len(subjects),
                **{how: {c: len(s) for c, s in sorted(flows[how].items())} for how in (SENT, RECEIVED, FETCHED)},
            }
        )
    return {
        "data_subjects": len(count.subjects),
        "data_subject_categories": [
            {"category": c, "label": category_label(convenant, c), "count": len(count.by_category[c])}
            for c in categories
        ],
        "personal_data_categories": [{"field": n, "label": convenant.fields[n].label} for n in field_names],
        "parties": parties,
        "audit_tree_size": size,
        "computed_at": now.isoformat(),
    }


def category_label(convenant: Convenant, category_id: str) -> str:
    category = convenant.categories.get(category_id)
    return category.label if category else category_id


def affected_parties(impact: dict[str, Any], reporter: str | None) -> list[str]:
    """Every party that sent or received data in scope, except the reporter: they must be informed."""
    return [p["party_id"] for p in impact.get("parties", []) if p["party_id"] != reporter]
