"""The 24-hour breach workflow: report, impact from the audit log, notify, acknowledge, decide, close.

A breach's clock starts at `detected_at`. The convenant file says how many hours the parties have
to inform each other (`[breach] notify_within_hours`) and to decide about reporting to the
Autoriteit Persoonsgegevens (`ap_within_hours`). Hours are elapsed hours, computed in UTC.

States: gemeld -> genotificeerd (every affected party has the notice) -> bevestigd (every affected
party acknowledged) -> gesloten. A breach whose deadline passes before every acknowledgement is in
is `te laat`; it escalates once, to the parties and the privacy officers.

Every function here adds audit entries to the recorder of the caller's `audited_step`, so a step
and its audit entries are stored together or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from broker import auditing
from broker.audit_log import lock_log
from broker.auditing import Recorder
from broker.errors import Conflict, Forbidden, NotFound, ValidationFailed
from broker.models import (
    Breach,
    BreachEvent,
    BreachParty,
    OutboxEntry,
    PartyContact,
    PartySuspension,
    User,
)
from broker.services import outbox
from broker.services.breach_impact import (  # noqa: F401  (re-exported: the breach API)
    IMPACT_ENTRIES,
    Scope,
    affected_parties,
    category_label,
    check_scope,
    compute_impact,
    field_error,
)
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


def breach_activity() -> str:
    return auditing.broker_activity("breach")


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
            [field_error("detected_at", "future_time", "Het moment van vaststellen mag niet in de toekomst liggen.")],
        )
    if report.reporting_party is not None and convenant.party(report.reporting_party) is None:
        raise Forbidden("Uw partij neemt niet deel aan dit convenant.")
    check_scope(session, convenant, report.scope, report.reporting_party)
    impact, subjects = compute_impact(session, convenant, report.scope, now, report.reporting_party)
    lock_log(session)  # numbers are max+1: the log's lock (taken by the audit append anyway) serialises them
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
    # Per pupil, only the parties of its own flows in scope see that it is concerned (need-to-know).
    concerned: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for subject, flow_parties in subjects.items():
        concerned[tuple(p for p in parties if p in flow_parties or p == report.reporting_party)].append(subject)
    for involved, group in sorted(concerned.items()):
        recorder.add(
            "breach.subject_concerned",
            breach_activity(),
            subjects=sorted(group),
            parties=involved,
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
    lock_log(session)  # see `report`: two steps on one breach at once must not pick the same seq
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

    Returns how many breaches changed state, in the caller's `audited_step`.
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
            .where(OutboxEntry.dedupe_key.startswith(prefix, autoescape=True), OutboxEntry.delivered_at.is_not(None))
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
            errors.append(field_error("ap_reference", "required", "Geef het kenmerk van de melding bij de AP."))
        if decision.reported_at is None:
            errors.append(field_error("reported_at", "required", "Geef het moment van de melding bij de AP."))
        elif decision.reported_at > now + CLOCK_SKEW:
            errors.append(
                field_error("reported_at", "future_time", "Het moment van melden mag niet in de toekomst liggen.")
            )
    elif not decision.reasoning:
        errors.append(
            field_error("reasoning", "required", "Onderbouw waarom niet aan de AP is gemeld; dat is verplicht.")
        )
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

    @classmethod
    def from_input(cls, data: dict[str, Any]) -> Correction:
        """From the loaded correction input (API body or review form); absent fields stay None."""
        categories = data.get("data_subject_categories")
        personal = data.get("personal_data_categories")
        pairs = tuple((c["category"], c["count"]) for c in categories) if categories is not None else None
        return cls(
            reason=data["reason"],
            data_subjects=data.get("data_subjects"),
            data_subject_categories=pairs,
            personal_data_categories=tuple(personal) if personal is not None else None,
            add_parties=tuple(data.get("add_parties", ())),
        )


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
            errors.append(
                field_error(f"data_subject_categories.{i}.category", "unknown_category", "Onbekende categorie.")
            )
    for i, name in enumerate(correction.personal_data_categories or ()):
        if name not in convenant.fields:
            errors.append(
                field_error(f"personal_data_categories.{i}", "unknown_field", "Dit veld kent het convenant niet.")
            )
    for i, party_id in enumerate(correction.add_parties):
        if convenant.party(party_id) is None:
            errors.append(
                field_error(f"add_parties.{i}", "unknown_party", "Deze partij neemt niet deel aan het convenant.")
            )
    if errors:
        raise ValidationFailed("De correctie klopt niet.", errors)
    impact = dict(breach.impact)
    changed: list[str] = []
    if correction.data_subjects is not None:
        impact["data_subjects"] = correction.data_subjects
        changed.append("data_subjects")
    if correction.data_subject_categories is not None:
        impact["data_subject_categories"] = [
            {"category": c, "label": category_label(convenant, c), "count": n}
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
        field_error(
            f"parties.{p.party_id}.ap_decision",
            "ap_decision_missing",
            f"{party_name(convenant, p.party_id)} heeft nog niet vastgelegd of het datalek aan de AP is gemeld.",
        )
        for p in parties
        if p.ap_reported is None
    ]
    if not measures.strip():
        errors.insert(0, field_error("measures", "required", "Beschrijf de genomen maatregelen."))
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
            [field_error("party_id", "not_in_breach", "Alleen een partij van dit datalek kan worden opgeschort.")],
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
