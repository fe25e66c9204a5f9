"""The 24-hour breach workflow: report, impact from the audit log, notify, acknowledge, decide, close.

A breach's clock starts at `detected_at`. The convenant file says how many hours the parties have
to inform each other (`[breach] notify_within_hours`) and to decide about reporting to the
Autoriteit Persoonsgegevens (`ap_within_hours`). Hours are elapsed hours, computed in UTC.

States: gemeld -> genotificeerd (every affected party has the notice) -> bevestigd (every affected
party acknowledged) -> gesloten. A breach whose deadline passes before every acknowledgement is in
is `te laat`; it escalates once, to the parties and the privacy officers.

Every function here adds audit entries to the caller's `Recorder`; the caller commits with
`commit_audited`, so a step and its audit entries are stored together or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from broker import auditing
from broker.auditing import Recorder
from broker.errors import Conflict, Forbidden, NotFound, ValidationFailed
from broker.models import (
    AuditEntryRow,
    Breach,
    BreachEvent,
    BreachParty,
    Delivery,
    OutboxAttempt,
    OutboxEntry,
    PartyContact,
    PartySuspension,
    Submission,
    User,
)
from broker.services import outbox
from broker.services.delivery import is_uuid
from broker.timefmt import local_text
from broker.users import BROKER_OFFICER
from schemas.convenant import BreachRules, Convenant

GEMELD, GENOTIFICEERD, BEVESTIGD, TE_LAAT, GESLOTEN = "gemeld", "genotificeerd", "bevestigd", "te laat", "gesloten"
STATES = (GEMELD, GENOTIFICEERD, BEVESTIGD, TE_LAAT, GESLOTEN)
REPORTER, AFFECTED = "melder", "betrokken"
BROKER_REPORTER = "broker"

# How far ahead of the broker's clock a `detected_at` may lie (clock skew between systems).
CLOCK_SKEW = dt.timedelta(minutes=5)

# Audit entries about one pupil that say a party sent or learned data, and who it was.
SENT, RECEIVED, FETCHED = "sent", "received", "fetched"
IMPACT_ENTRIES = ("record.received", "delivery.created", "delivery.fetched", "match.record_disclosed")


def breach_activity() -> str:
    return auditing.broker_activity("breach")


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
    """Refuse ids that do not exist, belong to another convenant, or (for a party) are not its own."""
    errors = []
    for i, submission_id in enumerate(scope.submissions):
        row = session.get(Submission, submission_id) if is_uuid(submission_id) else None
        if row is None or row.convenant_id != convenant.id:
            errors.append(_error(f"scope.submissions.{i}", "unknown_submission", "Deze inzending bestaat niet."))
        elif party_id is not None and row.party_id != party_id:
            errors.append(
                _error(f"scope.submissions.{i}", "not_your_submission", "Deze inzending is niet van uw partij.")
            )
    for i, delivery_id in enumerate(scope.deliveries):
        delivery = session.get(Delivery, delivery_id) if is_uuid(delivery_id) else None
        if delivery is None or delivery.convenant_id != convenant.id:
            errors.append(_error(f"scope.deliveries.{i}", "unknown_delivery", "Deze levering bestaat niet."))
        elif party_id is not None and party_id not in (delivery.sender_party_id, delivery.recipient_party_id):
            errors.append(
                _error(
                    f"scope.deliveries.{i}",
                    "not_your_delivery",
                    "Uw partij heeft deze levering niet verstuurd of ontvangen.",
                )
            )
    if errors:
        raise ValidationFailed("De reikwijdte van de melding klopt niet.", errors)


def _error(field_name: str, code: str, message: str) -> dict[str, Any]:
    return {"record": None, "field": field_name, "code": code, "message": message}


# -- impact from the audit log ----------------------------------------------------------------------


@dataclass
class ImpactCount:
    """Who sent or learned what about whom, as the audit log says."""

    subjects: set[str] = field(default_factory=set)
    by_category: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    parties: dict[str, dict[str, dict[str, set[str]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    )

    def add(self, party: str | None, how: str, category: str, subject: str) -> None:
        self.subjects.add(subject)
        self.by_category[category].add(subject)
        if party:
            self.parties[party][how][category].add(subject)


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
    session: Session, convenant: Convenant, scope: Scope, now: dt.datetime
) -> tuple[dict[str, Any], set[str]]:
    """Read the audit log and say who sent and learned which categories about how many pupils.

    Returns the impact (counts only) and the pseudonyms concerned (for per-pupil audit entries).
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
    if scope.window:
        query = query.where(AuditEntryRow.start_time >= scope.window[0], AuditEntryRow.start_time <= scope.window[1])
    subject_filter = set(scope.subjects)
    if subject_filter and len(subject_filter) <= 500:
        query = query.where(AuditEntryRow.data_subject_id.in_(subject_filter))
    submissions, deliveries = set(scope.submissions), set(scope.deliveries)
    match_runs = _match_runs_of(session, scope.deliveries) if deliveries else {}
    count = ImpactCount()
    for row in session.execute(query.execution_options(yield_per=5000)):
        if subject_filter and row.data_subject_id not in subject_filter:
            continue
        entry = json.loads(row.canonical)
        attributes = entry.get("attributes") or {}
        if submissions and attributes.get("submission_id") not in submissions:
            continue
        if deliveries and attributes.get("delivery_id") not in deliveries:
            run = match_runs.get(attributes.get("run_id", ""))
            if run is None or (attributes.get("from"), attributes.get("to")) != run:
                continue
        category = str(attributes.get("category") or "onbekend")
        for party, how in _flows(row.name, row.actor_party, attributes):
            count.add(party, how, category, str(row.data_subject_id))
    return _impact_document(convenant, count, size, now), count.subjects


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
            {"category": c, "label": _category_label(convenant, c), "count": len(count.by_category[c])}
            for c in categories
        ],
        "personal_data_categories": [{"field": n, "label": convenant.fields[n].label} for n in field_names],
        "parties": parties,
        "audit_tree_size": size,
        "computed_at": now.isoformat(),
    }


def _category_label(convenant: Convenant, category_id: str) -> str:
    category = convenant.categories.get(category_id)
    return category.label if category else category_id


def affected_parties(impact: dict[str, Any], reporter: str | None) -> list[str]:
    """Every party that sent or received data in scope, except the reporter: they must be informed."""
    return [p["party_id"] for p in impact.get("parties", []) if p["party_id"] != reporter]


# -- reporting --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    convenant: Convenant
    reporting_party: str | None  # None: the breach happened at the broker itself
    detected_at: dt.datetime
    description: str
    suspected_cause: str
    scope: Scope


def rules_of(convenant: Convenant) -> BreachRules:
    if convenant.breach is None:
        raise Conflict(f"Het convenant {convenant.id} legt geen afspraken over datalekken vast (sectie [breach]).")
    return convenant.breach


def report(session: Session, report: Report, recorder: Recorder, now: dt.datetime) -> Breach:
    """Store a breach, compute its impact, add the parties and queue their notices."""
    convenant = report.convenant
    rules = rules_of(convenant)
    if report.detected_at > now + CLOCK_SKEW:
        raise ValidationFailed(
            "Het moment van vaststellen ligt in de toekomst.",
            [_error("detected_at", "future_time", "Het moment van vaststellen mag niet in de toekomst liggen.")],
        )
    if report.reporting_party is not None and convenant.party(report.reporting_party) is None:
        raise Forbidden("Uw partij neemt niet deel aan dit convenant.")
    check_scope(session, convenant, report.scope, report.reporting_party)
    impact, subjects = compute_impact(session, convenant, report.scope, now)
    number = (session.scalar(select(func.max(Breach.number))) or 0) + 1
    breach = Breach(
        id=str(uuid.uuid4()),
        number=number,
        convenant_id=convenant.id,
        reporting_party_id=report.reporting_party,
        reported_by=recorder.actor.id,
        reported_at=now,
        detected_at=report.detected_at,
        notify_deadline=report.detected_at + rules.notify_within,
        ap_deadline=report.detected_at + rules.ap_within,
        description=report.description,
        suspected_cause=report.suspected_cause,
        scope=report.scope.to_json(),
        impact_computed=impact,
        impact=impact,
        state=GEMELD,
        late_since=None,
        measures=None,
        closed_at=None,
        closed_by=None,
        trace_id=recorder.trace_id,
    )
    session.add(breach)
    session.flush()
    if report.reporting_party is not None:
        session.add(_party_row(breach, report.reporting_party, REPORTER, now))
    affected = affected_parties(impact, report.reporting_party)
    for party_id in affected:
        session.add(_party_row(breach, party_id, AFFECTED, now))
    session.flush()
    _event(session, breach, recorder, now, "reported", {"affected": affected, "data_subjects": impact["data_subjects"]})
    parties = [p for p in (report.reporting_party, *affected) if p]
    recorder.add(
        "breach.reported",
        breach_activity(),
        root=True,
        parties=parties,
        convenant_id=convenant.id,
        attributes={
            "breach_id": breach.id,
            "number": number,
            "detected_at": breach.detected_at.isoformat(),
            "deadline": breach.notify_deadline.isoformat(),
            "affected": affected,
            "data_subjects": impact["data_subjects"],
            "audit_tree_size": impact["audit_tree_size"],
        },
    )
    if subjects:
        recorder.add(
            "breach.subject_concerned",
            breach_activity(),
            subjects=sorted(subjects),
            parties=parties,
            convenant_id=convenant.id,
            attributes={"breach_id": breach.id, "number": number},
        )
    for party_id in affected:
        notify(session, breach, convenant, party_id, "breach.notified", now)
    refresh(session, breach, convenant, recorder, now)
    return breach


def _party_row(breach: Breach, party_id: str, role: str, now: dt.datetime) -> BreachParty:
    return BreachParty(
        breach_id=breach.id,
        party_id=party_id,
        role=role,
        added_at=now,
        notified_at=now if role == REPORTER else None,
        notified_via="melding" if role == REPORTER else None,
        acknowledged_at=None,
        acknowledged_by=None,
        ap_reported=None,
        ap_reference=None,
        ap_reported_at=None,
        ap_reasoning=None,
        ap_decided_at=None,
        ap_decided_by=None,
        ap_escalated_at=None,
    )


def _event(
    session: Session, breach: Breach, recorder: Recorder, now: dt.datetime, kind: str, detail: dict[str, Any]
) -> None:
    session.flush()
    seq = (session.scalar(select(func.max(BreachEvent.seq)).where(BreachEvent.breach_id == breach.id)) or 0) + 1
    session.add(
        BreachEvent(
            id=str(uuid.uuid4()),
            breach_id=breach.id,
            seq=seq,
            at=now,
            actor=recorder.actor.id,
            kind=kind,
            detail=detail,
        )
    )


# -- reading ----------------------------------------------------------------------------------------


def get_breach(session: Session, breach_id: str, *, lock: bool = False) -> Breach:
    """The breach, locked for this transaction when it is about to change (so steps do not interleave)."""
    breach = session.get(Breach, breach_id, with_for_update=lock) if is_uuid(breach_id) else None
    if breach is None:
        raise NotFound("Dit datalek bestaat niet.")
    return breach


def parties_of(session: Session, breach: Breach) -> list[BreachParty]:
    return list(
        session.scalars(
            select(BreachParty)
            .where(BreachParty.breach_id == breach.id)
            .order_by(BreachParty.role.desc(), BreachParty.party_id)
        )
    )


def party_row(session: Session, breach: Breach, party_id: str) -> BreachParty | None:
    return session.get(BreachParty, (breach.id, party_id))


def visible_to_party(session: Session, party_id: str) -> list[Breach]:
    """The breaches a party reported or is affected by, newest first."""
    query = (
        select(Breach)
        .join(BreachParty, BreachParty.breach_id == Breach.id)
        .where(BreachParty.party_id == party_id)
        .order_by(Breach.detected_at.desc(), Breach.number.desc())
    )
    return list(session.scalars(query))


def all_breaches(session: Session, party_id: str | None = None) -> list[Breach]:
    """Every breach (the broker's officer), or those of one party (a party's officer)."""
    if party_id is not None:
        return visible_to_party(session, party_id)
    return list(session.scalars(select(Breach).order_by(Breach.detected_at.desc(), Breach.number.desc())))


def derive_state(breach: Breach, parties: Sequence[BreachParty], now: dt.datetime) -> str:
    """The state as of `now`, from the facts; `te laat` holds from the deadline until all acknowledged."""
    if breach.closed_at is not None:
        return GESLOTEN
    affected = [p for p in parties if p.role == AFFECTED]
    if all(p.acknowledged_at is not None for p in affected):
        return BEVESTIGD
    if now >= breach.notify_deadline:
        return TE_LAAT
    if all(p.notified_at is not None for p in affected):
        return GENOTIFICEERD
    return GEMELD


def is_late(breach: Breach, parties: Sequence[BreachParty], now: dt.datetime) -> bool:
    """Whether some affected party acknowledged after the deadline or has still not done so past it."""
    for p in parties:
        if p.role != AFFECTED:
            continue
        acked = p.acknowledged_at
        if (acked is None and now >= breach.notify_deadline) or (acked is not None and acked > breach.notify_deadline):
            return True
    return False


# -- state and escalation ---------------------------------------------------------------------------


def refresh(session: Session, breach: Breach, convenant: Convenant, recorder: Recorder, now: dt.datetime) -> str:
    """Store the state as of `now`; a new state is audited, and becoming late escalates once."""
    parties = parties_of(session, breach)
    state = derive_state(breach, parties, now)
    if state == TE_LAAT and breach.late_since is None:
        breach.late_since = breach.notify_deadline
        _escalate(session, breach, convenant, parties, now)
    if state != breach.state:
        previous, breach.state = breach.state, state
        _event(session, breach, recorder, now, "state_changed", {"from": previous, "to": state})
        recorder.add(
            "breach.state_changed",
            breach_activity(),
            parties=[p.party_id for p in parties],
            convenant_id=convenant.id,
            attributes={"breach_id": breach.id, "number": breach.number, "from": previous, "to": state},
        )
    return state


def _escalate(
    session: Session, breach: Breach, convenant: Convenant, parties: Sequence[BreachParty], now: dt.datetime
) -> None:
    """The deadline passed without every acknowledgement: alert every party and the privacy officers."""
    missing = [
        {"party_id": p.party_id, "name": party_name(convenant, p.party_id)}
        for p in parties
        if p.role == AFFECTED and p.acknowledged_at is None
    ]
    extra = {"missing_acknowledgements": missing}
    for p in parties:
        notify(session, breach, convenant, p.party_id, "breach.overdue", now, extra)
    _alert_officers(session, breach, convenant, parties, "breach.overdue", now, extra)


def _alert_officers(
    session: Session,
    breach: Breach,
    convenant: Convenant,
    parties: Sequence[BreachParty],
    topic: str,
    now: dt.datetime,
    extra: dict[str, Any],
) -> None:
    """E-mail the broker's privacy officers and those of the parties in the breach (if they gave an address)."""
    party_ids = {p.party_id for p in parties}
    officers = session.scalars(
        select(User).where(
            User.disabled_at.is_(None),
            User.email.is_not(None),
            or_(User.role == BROKER_OFFICER, User.party_id.in_(party_ids)),
        )
    )
    payload = notice_payload(breach, convenant, parties, extra)
    for user in officers:
        assert user.email is not None
        outbox.enqueue(
            session,
            party_id=user.party_id or BROKER_REPORTER,
            topic=topic,
            dedupe_key=f"breach:{breach.id}:{topic}:officer:{_digest(user.username)}",
            payload=payload,
            now=now,
            channel="email",
            address=user.email,
        )


def run_due(session: Session, convenants: dict[str, Convenant], recorder: Recorder, now: dt.datetime) -> int:
    """Note delivered notices, move states on, escalate late breaches and missing AP decisions.

    Returns how many breaches changed state. The caller commits with `commit_audited`.
    """
    changed = 0
    # Another runner holding a breach is handling it; on SQLite writers are serialised anyway.
    open_breaches = session.scalars(
        select(Breach).where(Breach.closed_at.is_(None)).order_by(Breach.number).with_for_update(skip_locked=True)
    ).all()
    for breach in open_breaches:
        convenant = convenants.get(breach.convenant_id)
        if convenant is None:
            continue
        _note_delivered_notices(session, breach, recorder, now)
        before = breach.state
        if refresh(session, breach, convenant, recorder, now) != before:
            changed += 1
        _escalate_ap_decisions(session, breach, convenant, recorder, now)
    return changed


def _note_delivered_notices(session: Session, breach: Breach, recorder: Recorder, now: dt.datetime) -> None:
    for party in parties_of(session, breach):
        if party.notified_at is not None:
            continue
        prefix = f"breach:{breach.id}:breach.notified:{party.party_id}:"
        delivered = session.execute(
            select(OutboxEntry.delivered_at, OutboxEntry.channel)
            .where(OutboxEntry.dedupe_key.startswith(prefix), OutboxEntry.delivered_at.is_not(None))
            .order_by(OutboxEntry.delivered_at)
            .limit(1)
        ).first()
        if delivered is not None and delivered.delivered_at is not None:
            mark_notified(session, breach, party, delivered.channel, delivered.delivered_at, recorder)


def mark_notified(
    session: Session, breach: Breach, party: BreachParty, via: str, at: dt.datetime, recorder: Recorder
) -> None:
    """Record that `party` has the notice (delivered by webhook or e-mail, or read through the API)."""
    if party.notified_at is not None:
        return
    party.notified_at, party.notified_via = at, via
    _event(session, breach, recorder, at, "notified", {"party_id": party.party_id, "via": via})
    recorder.add(
        "breach.party_notified",
        breach_activity(),
        parties=[party.party_id],
        convenant_id=breach.convenant_id,
        attributes={"breach_id": breach.id, "party": party.party_id, "via": via, "at": at.isoformat()},
    )


def _escalate_ap_decisions(
    session: Session, breach: Breach, convenant: Convenant, recorder: Recorder, now: dt.datetime
) -> None:
    if now < breach.ap_deadline:
        return
    parties = parties_of(session, breach)
    for party in parties:
        if party.ap_reported is not None or party.ap_escalated_at is not None:
            continue
        party.ap_escalated_at = now
        extra = {"missing_ap_decisions": [{"party_id": party.party_id, "name": party_name(convenant, party.party_id)}]}
        notify(session, breach, convenant, party.party_id, "breach.ap_overdue", now, extra)
        _alert_officers(session, breach, convenant, [party], "breach.ap_overdue", now, extra)
        _event(session, breach, recorder, now, "ap_overdue", {"party_id": party.party_id})
        recorder.add(
            "breach.ap_decision_overdue",
            breach_activity(),
            parties=[party.party_id],
            convenant_id=convenant.id,
            attributes={"breach_id": breach.id, "party": party.party_id, "ap_deadline": breach.ap_deadline.isoformat()},
        )


# -- notices ----------------------------------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def party_name(convenant: Convenant, party_id: str | None) -> str:
    if party_id is None:
        return "de broker"
    party = convenant.party(party_id)
    return party.name if party else party_id


def public_url(path: str) -> str:
    base = current_app.config.get("PUBLIC_URL")
    if not base and has_request_context():
        base = request.host_url
    return (base or "").rstrip("/") + path


def notice_payload(
    breach: Breach, convenant: Convenant, parties: Sequence[BreachParty], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What every notice says: the four facts the convenant requires, the deadlines, who is involved."""
    impact = breach.impact
    return {
        "breach_id": breach.id,
        "breach_number": breach.number,
        "convenant_id": convenant.id,
        "convenant_title": convenant.title,
        "reporting_party": breach.reporting_party_id,
        "reporting_party_name": party_name(convenant, breach.reporting_party_id),
        "state": breach.state,
        "detected_at": breach.detected_at.isoformat(),
        "detected_at_local": local_text(breach.detected_at),
        "deadline": breach.notify_deadline.isoformat(),
        "deadline_local": local_text(breach.notify_deadline),
        "ap_deadline": breach.ap_deadline.isoformat(),
        "ap_deadline_local": local_text(breach.ap_deadline),
        "description": breach.description,
        "suspected_cause": breach.suspected_cause,
        "personal_data_categories": impact.get("personal_data_categories", []),
        "data_subject_categories": impact.get("data_subject_categories", []),
        "data_subjects": impact.get("data_subjects", 0),
        "parties": [
            {"party_id": p.party_id, "name": party_name(convenant, p.party_id), "role": p.role} for p in parties
        ],
        "acknowledge_url": public_url(f"/api/v1/breaches/{breach.id}/acknowledgements"),
        **(extra or {}),
    }


def notify(
    session: Session,
    breach: Breach,
    convenant: Convenant,
    party_id: str,
    topic: str,
    now: dt.datetime,
    extra: dict[str, Any] | None = None,
    *,
    round_id: str = "",
) -> None:
    """Queue a notice to one party: by its webhook, and by e-mail to each of its contact addresses."""
    payload = notice_payload(breach, convenant, parties_of(session, breach), extra)
    key = f"breach:{breach.id}:{topic}:{party_id}:" + (f"{round_id}:" if round_id else "")
    outbox.enqueue(session, party_id=party_id, topic=topic, dedupe_key=key + "webhook", payload=payload, now=now)
    addresses = session.scalars(select(PartyContact.email).where(PartyContact.party_id == party_id)).all()
    for address in addresses:
        outbox.enqueue(
            session,
            party_id=party_id,
            topic=topic,
            dedupe_key=key + "mail:" + _digest(address),
            payload=payload,
            now=now,
            channel="email",
            address=address,
        )


# -- the parties' steps -----------------------------------------------------------------------------


def _open(breach: Breach) -> None:
    if breach.closed_at is not None:
        raise Conflict("Dit datalek is gesloten.")


def acknowledge(
    session: Session, breach: Breach, convenant: Convenant, party_id: str, recorder: Recorder, now: dt.datetime
) -> tuple[BreachParty, bool]:
    """An affected party confirms it has the notice. Returns its row and whether this was the first time."""
    party = party_row(session, breach, party_id)
    if party is None or party.role != AFFECTED:
        raise Forbidden("Uw partij is niet als betrokken partij over dit datalek geïnformeerd.")
    if party.acknowledged_at is not None:
        return party, False
    _open(breach)
    party.acknowledged_at, party.acknowledged_by = now, recorder.actor.id
    if party.notified_at is None:
        party.notified_at, party.notified_via = now, "bevestiging"
    _event(session, breach, recorder, now, "acknowledged", {"party_id": party_id})
    recorder.add(
        "breach.acknowledged",
        breach_activity(),
        root=True,
        parties=[p.party_id for p in parties_of(session, breach)],
        convenant_id=convenant.id,
        attributes={
            "breach_id": breach.id,
            "party": party_id,
            "late": now > breach.notify_deadline,
        },
    )
    refresh(session, breach, convenant, recorder, now)
    return party, True


@dataclass(frozen=True)
class ApDecision:
    reported_to_ap: bool
    ap_reference: str | None = None
    reported_at: dt.datetime | None = None
    reasoning: str | None = None


def decide_ap(
    session: Session,
    breach: Breach,
    convenant: Convenant,
    party_id: str,
    decision: ApDecision,
    recorder: Recorder,
    now: dt.datetime,
) -> BreachParty:
    """Record one controller's decision about reporting to the AP (a later decision replaces it)."""
    _open(breach)
    party = party_row(session, breach, party_id)
    if party is None:
        raise Forbidden("Uw partij is geen verwerkingsverantwoordelijke in dit datalek.")
    errors = []
    if decision.reported_to_ap:
        if not decision.ap_reference:
            errors.append(_error("ap_reference", "required", "Geef het kenmerk van de melding bij de AP."))
        if decision.reported_at is None:
            errors.append(_error("reported_at", "required", "Geef het moment van de melding bij de AP."))
        elif decision.reported_at > now + CLOCK_SKEW:
            errors.append(_error("reported_at", "future_time", "Het moment van melden mag niet in de toekomst liggen."))
    elif not decision.reasoning:
        errors.append(_error("reasoning", "required", "Onderbouw waarom niet aan de AP is gemeld; dat is verplicht."))
    if errors:
        raise ValidationFailed("Het besluit over melding aan de AP is niet compleet.", errors)
    party.ap_reported = decision.reported_to_ap
    party.ap_reference = decision.ap_reference if decision.reported_to_ap else None
    party.ap_reported_at = decision.reported_at if decision.reported_to_ap else None
    party.ap_reasoning = decision.reasoning
    party.ap_decided_at, party.ap_decided_by = now, recorder.actor.id
    detail = {
        "party_id": party_id,
        "reported_to_ap": decision.reported_to_ap,
        "ap_reference": party.ap_reference,
        "late": now > breach.ap_deadline,
    }
    _event(session, breach, recorder, now, "ap_decision", detail)
    recorder.add(
        "breach.ap_decision",
        breach_activity(),
        root=True,
        parties=[party_id],
        convenant_id=convenant.id,
        attributes={"breach_id": breach.id, **detail},
    )
    return party


@dataclass(frozen=True)
class Correction:
    """A reporter's correction of the computed impact; only the fields given change."""

    reason: str
    data_subjects: int | None = None
    data_subject_categories: tuple[tuple[str, int], ...] | None = None
    personal_data_categories: tuple[str, ...] | None = None
    add_parties: tuple[str, ...] = ()


def correct_impact(
    session: Session,
    breach: Breach,
    convenant: Convenant,
    correction: Correction,
    recorder: Recorder,
    now: dt.datetime,
) -> Breach:
    """Overwrite parts of the impact; new parties are added and notified, the others get an update."""
    _open(breach)
    errors = []
    for i, (category, _n) in enumerate(correction.data_subject_categories or ()):
        if category not in convenant.categories:
            errors.append(_error(f"data_subject_categories.{i}.category", "unknown_category", "Onbekende categorie."))
    for i, name in enumerate(correction.personal_data_categories or ()):
        if name not in convenant.fields:
            errors.append(_error(f"personal_data_categories.{i}", "unknown_field", "Dit veld kent het convenant niet."))
    for i, party_id in enumerate(correction.add_parties):
        if convenant.party(party_id) is None:
            errors.append(_error(f"add_parties.{i}", "unknown_party", "Deze partij neemt niet deel aan het convenant."))
    if errors:
        raise ValidationFailed("De correctie klopt niet.", errors)
    impact = dict(breach.impact)
    changed: list[str] = []
    if correction.data_subjects is not None:
        impact["data_subjects"] = correction.data_subjects
        changed.append("data_subjects")
    if correction.data_subject_categories is not None:
        impact["data_subject_categories"] = [
            {"category": c, "label": _category_label(convenant, c), "count": n}
            for c, n in correction.data_subject_categories
        ]
        changed.append("data_subject_categories")
    if correction.personal_data_categories is not None:
        impact["personal_data_categories"] = [
            {"field": n, "label": convenant.fields[n].label} for n in correction.personal_data_categories
        ]
        changed.append("personal_data_categories")
    known = {p.party_id for p in parties_of(session, breach)}
    added = [p for p in dict.fromkeys(correction.add_parties) if p not in known]
    for party_id in added:
        session.add(_party_row(breach, party_id, AFFECTED, now))
    if added:
        changed.append("parties")
    impact["corrections"] = [
        *impact.get("corrections", []),
        {"at": now.isoformat(), "by": recorder.actor.id, "reason": correction.reason, "changed": changed},
    ]
    breach.impact = impact
    session.flush()
    detail = {"changed": changed, "added_parties": added, "reason": correction.reason}
    _event(session, breach, recorder, now, "impact_corrected", detail)
    parties = parties_of(session, breach)
    recorder.add(
        "breach.impact_corrected",
        breach_activity(),
        root=True,
        parties=[p.party_id for p in parties],
        convenant_id=convenant.id,
        attributes={"breach_id": breach.id, "changed": changed, "added_parties": added},
    )
    round_id = str(len(impact["corrections"]))
    for party in parties:
        if party.party_id in added:
            notify(session, breach, convenant, party.party_id, "breach.notified", now)
        elif party.role == AFFECTED:
            notify(
                session,
                breach,
                convenant,
                party.party_id,
                "breach.updated",
                now,
                {"correction_reason": correction.reason},
                round_id=round_id,
            )
    refresh(session, breach, convenant, recorder, now)
    return breach


def close(
    session: Session, breach: Breach, convenant: Convenant, measures: str, recorder: Recorder, now: dt.datetime
) -> Breach:
    """Close a breach: the measures taken and every controller's AP decision are required."""
    _open(breach)
    parties = parties_of(session, breach)
    errors = [
        _error(
            f"parties.{p.party_id}.ap_decision",
            "ap_decision_missing",
            f"{party_name(convenant, p.party_id)} heeft nog niet vastgelegd of het datalek aan de AP is gemeld.",
        )
        for p in parties
        if p.ap_reported is None
    ]
    if not measures.strip():
        errors.insert(0, _error("measures", "required", "Beschrijf de genomen maatregelen."))
    if errors:
        raise Conflict("Het datalek kan nog niet worden gesloten.", errors)
    breach.measures, breach.closed_at, breach.closed_by = measures.strip(), now, recorder.actor.id
    for suspension in active_suspensions(session, breach_id=breach.id):
        _lift(session, breach, suspension, recorder, now)
    _event(session, breach, recorder, now, "closed", {"measures": breach.measures})
    recorder.add(
        "breach.closed",
        breach_activity(),
        root=True,
        parties=[p.party_id for p in parties],
        convenant_id=convenant.id,
        attributes={"breach_id": breach.id, "number": breach.number, "late": is_late(breach, parties, now)},
    )
    refresh(session, breach, convenant, recorder, now)
    extra = {
        "measures": breach.measures,
        "ap_decisions": [
            {
                "party_id": p.party_id,
                "name": party_name(convenant, p.party_id),
                "reported_to_ap": bool(p.ap_reported),
                "ap_reference": p.ap_reference,
                "reasoning": p.ap_reasoning,
            }
            for p in parties
        ],
    }
    for party in parties:
        notify(session, breach, convenant, party.party_id, "breach.closed", now, extra)
    return breach


# -- containment ------------------------------------------------------------------------------------


def active_suspensions(
    session: Session, *, party_id: str | None = None, breach_id: str | None = None
) -> list[PartySuspension]:
    query = select(PartySuspension).where(PartySuspension.lifted_at.is_(None))
    if party_id is not None:
        query = query.where(PartySuspension.party_id == party_id)
    if breach_id is not None:
        query = query.where(PartySuspension.breach_id == breach_id)
    return list(session.scalars(query.order_by(PartySuspension.started_at)))


def suspensions_of(session: Session, breach: Breach) -> list[PartySuspension]:
    return list(
        session.scalars(
            select(PartySuspension).where(PartySuspension.breach_id == breach.id).order_by(PartySuspension.started_at)
        )
    )


def contain(
    session: Session, breach: Breach, convenant: Convenant, party_id: str, recorder: Recorder, now: dt.datetime
) -> PartySuspension:
    """Suspend a party's clients while the breach is open: its tokens stop working, its deliveries wait."""
    _open(breach)
    if party_row(session, breach, party_id) is None:
        raise ValidationFailed(
            "Deze partij is niet bij het datalek betrokken.",
            [_error("party_id", "not_in_breach", "Alleen een partij van dit datalek kan worden opgeschort.")],
        )
    if active_suspensions(session, party_id=party_id, breach_id=breach.id):
        raise Conflict("Deze partij is voor dit datalek al opgeschort.")
    suspension = PartySuspension(
        id=str(uuid.uuid4()),
        party_id=party_id,
        breach_id=breach.id,
        started_at=now,
        started_by=recorder.actor.id,
        lifted_at=None,
        lifted_by=None,
    )
    session.add(suspension)
    _event(session, breach, recorder, now, "contained", {"party_id": party_id})
    recorder.add(
        "breach.party_suspended",
        breach_activity(),
        root=True,
        parties=[party_id],
        convenant_id=convenant.id,
        attributes={"breach_id": breach.id, "party": party_id},
    )
    return suspension


def lift(session: Session, breach: Breach, party_id: str, recorder: Recorder, now: dt.datetime) -> PartySuspension:
    """End a party's suspension for this breach; tokens from before it stay revoked."""
    suspensions = active_suspensions(session, party_id=party_id, breach_id=breach.id)
    if not suspensions:
        raise Conflict("Deze partij is voor dit datalek niet opgeschort.")
    _lift(session, breach, suspensions[0], recorder, now)
    return suspensions[0]


def _lift(session: Session, breach: Breach, suspension: PartySuspension, recorder: Recorder, now: dt.datetime) -> None:
    suspension.lifted_at, suspension.lifted_by = now, recorder.actor.id
    _event(session, breach, recorder, now, "containment_lifted", {"party_id": suspension.party_id})
    recorder.add(
        "breach.party_reinstated",
        breach_activity(),
        parties=[suspension.party_id],
        convenant_id=breach.convenant_id,
        attributes={"breach_id": breach.id, "party": suspension.party_id},
    )


# -- presentation -----------------------------------------------------------------------------------


def events_of(session: Session, breach: Breach) -> list[BreachEvent]:
    return list(
        session.scalars(select(BreachEvent).where(BreachEvent.breach_id == breach.id).order_by(BreachEvent.seq))
    )


@dataclass(frozen=True)
class Notice:
    """One queued notice of a breach and every attempt to deliver it."""

    entry: OutboxEntry
    attempts: list[OutboxAttempt]


def notices_of(session: Session, breach: Breach) -> list[Notice]:
    """The breach's notices (webhooks and e-mails, to parties and officers), oldest first."""
    entries = session.scalars(
        select(OutboxEntry)
        .where(OutboxEntry.dedupe_key.startswith(f"breach:{breach.id}:"))
        .order_by(OutboxEntry.created_at, OutboxEntry.id)
    ).all()
    attempts: dict[str, list[OutboxAttempt]] = defaultdict(list)
    if entries:
        for attempt in session.scalars(
            select(OutboxAttempt)
            .where(OutboxAttempt.entry_id.in_([e.id for e in entries]))
            .order_by(OutboxAttempt.attempted_at)
        ):
            attempts[attempt.entry_id].append(attempt)
    return [Notice(entry, attempts[entry.id]) for entry in entries]


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def view(
    session: Session, breach: Breach, convenant: Convenant, now: dt.datetime, *, with_events: bool = False
) -> dict[str, Any]:
    """A breach as the API shows it; the state is derived as of `now`, so a deadline never waits for a job."""
    parties = parties_of(session, breach)
    state = derive_state(breach, parties, now)
    seconds_left = int((breach.notify_deadline - now).total_seconds())
    shown: dict[str, Any] = {
        "id": breach.id,
        "number": breach.number,
        "convenant_id": breach.convenant_id,
        "reporting_party": breach.reporting_party_id,
        "reported_by": breach.reported_by,
        "reported_at": breach.reported_at.isoformat(),
        "detected_at": breach.detected_at.isoformat(),
        "detected_at_local": local_text(breach.detected_at),
        "deadline": breach.notify_deadline.isoformat(),
        "deadline_local": local_text(breach.notify_deadline),
        "ap_deadline": breach.ap_deadline.isoformat(),
        "ap_deadline_local": local_text(breach.ap_deadline),
        "state": state,
        "late": is_late(breach, parties, now),
        "late_since": _iso(breach.late_since or (breach.notify_deadline if state == TE_LAAT else None)),
        "seconds_left": seconds_left if state not in (BEVESTIGD, GESLOTEN) else None,
        "description": breach.description,
        "suspected_cause": breach.suspected_cause,
        "scope": Scope.from_json(breach.scope).public(),
        "impact": breach.impact,
        "impact_computed": breach.impact_computed,
        "parties": [_party_view(breach, p, convenant, now) for p in parties],
        "containment": [
            {
                "party_id": s.party_id,
                "started_at": s.started_at.isoformat(),
                "started_by": s.started_by,
                "lifted_at": _iso(s.lifted_at),
            }
            for s in suspensions_of(session, breach)
        ],
        "measures": breach.measures,
        "closed_at": _iso(breach.closed_at),
        "closed_by": breach.closed_by,
        "trace_id": breach.trace_id,
    }
    if with_events:
        shown["events"] = [
            {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "detail": e.detail}
            for e in events_of(session, breach)
        ]
    return shown


def _party_view(breach: Breach, party: BreachParty, convenant: Convenant, now: dt.datetime) -> dict[str, Any]:
    decision = None
    if party.ap_reported is not None:
        decision = {
            "reported_to_ap": party.ap_reported,
            "ap_reference": party.ap_reference,
            "reported_at": _iso(party.ap_reported_at),
            "reasoning": party.ap_reasoning,
            "decided_at": _iso(party.ap_decided_at),
            "decided_by": party.ap_decided_by,
        }
    return {
        "party_id": party.party_id,
        "name": party_name(convenant, party.party_id),
        "role": party.role,
        "notified_at": _iso(party.notified_at),
        "notified_via": party.notified_via,
        "acknowledged_at": _iso(party.acknowledged_at),
        "ap_decision": decision,
        "ap_deadline": breach.ap_deadline.isoformat(),
        "ap_overdue": party.ap_reported is None and now >= breach.ap_deadline,
    }


REGISTER_COLUMNS = (
    "nummer",
    "convenant",
    "melder",
    "vastgesteld_op",
    "gemeld_op",
    "uiterste_informeren",
    "status",
    "te_laat",
    "vermeende_oorzaak",
    "omschrijving",
    "categorieen_persoonsgegevens",
    "categorieen_betrokkenen",
    "aantal_betrokkenen",
    "betrokken_partijen",
    "bevestigd_door",
    "besluiten_ap",
    "maatregelen",
    "gesloten_op",
)


def register_rows(
    session: Session, breaches: Iterable[Breach], convenants: dict[str, Convenant], now: dt.datetime
) -> Iterable[dict[str, Any]]:
    """The breach register (AVG art. 33 lid 5): one row per breach, reported to the AP or not."""
    for breach in breaches:
        convenant = convenants.get(breach.convenant_id)
        if convenant is None:
            continue
        parties = parties_of(session, breach)
        impact = breach.impact
        decisions = []
        for p in parties:
            if p.ap_reported is None:
                decisions.append(f"{p.party_id}: geen besluit")
            elif p.ap_reported:
                decisions.append(f"{p.party_id}: gemeld ({p.ap_reference}, {_iso(p.ap_reported_at)})")
            else:
                decisions.append(f"{p.party_id}: niet gemeld: {p.ap_reasoning}")
        yield {
            "nummer": breach.number,
            "convenant": breach.convenant_id,
            "melder": breach.reporting_party_id or BROKER_REPORTER,
            "vastgesteld_op": breach.detected_at.isoformat(),
            "gemeld_op": breach.reported_at.isoformat(),
            "uiterste_informeren": breach.notify_deadline.isoformat(),
            "status": derive_state(breach, parties, now),
            "te_laat": "ja" if is_late(breach, parties, now) else "nee",
            "vermeende_oorzaak": breach.suspected_cause,
            "omschrijving": breach.description,
            "categorieen_persoonsgegevens": ", ".join(c["field"] for c in impact.get("personal_data_categories", [])),
            "categorieen_betrokkenen": ", ".join(
                f"{c['category']}: {c['count']}" for c in impact.get("data_subject_categories", [])
            ),
            "aantal_betrokkenen": impact.get("data_subjects", 0),
            "betrokken_partijen": ", ".join(p.party_id for p in parties if p.role == AFFECTED),
            "bevestigd_door": ", ".join(p.party_id for p in parties if p.acknowledged_at is not None),
            "besluiten_ap": "; ".join(decisions),
            "maatregelen": breach.measures or "",
            "gesloten_op": _iso(breach.closed_at) or "",
        }
