"""Reporting a breach: stored with its impact from the audit log, its parties, and their notices queued."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.app.errors import Forbidden, ValidationFailed
from broker.auditing.step import Recorder
from broker.auditing.store import lock_log
from broker.breaches.escalation import refresh
from broker.breaches.impact import Scope, affected_parties, check_scope, compute_impact, field_error
from broker.breaches.notices import notify
from broker.breaches.state import (
    AFFECTED,
    CLOCK_SKEW,
    GEMELD,
    REPORTER,
    add_event,
    breach_activity,
    new_party,
    rules_of,
)
from broker.models import Breach
from schemas.convenant import Convenant


@dataclass(frozen=True)
class Report:
    convenant: Convenant
    reporting_party: str | None  # None: the breach happened at the broker itself
    detected_at: dt.datetime
    description: str
    suspected_cause: str
    scope: Scope


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
        session.add(new_party(breach, report.reporting_party, REPORTER, now))
    affected = affected_parties(impact, report.reporting_party)
    for party_id in affected:
        session.add(new_party(breach, party_id, AFFECTED, now))
    session.flush()
    detail = {"affected": affected, "data_subjects": impact["data_subjects"]}
    add_event(session, breach, recorder, now, "reported", detail)
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
