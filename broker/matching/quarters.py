"""The quarterly calendar: which quarters exist, who must send a list, versions, deadlines, reminders."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.app.errors import NotFound, ValidationFailed
from broker.app.timefmt import AMSTERDAM
from broker.auditing.store import lock_log
from broker.models import MatchRun, QuarterList, Submission
from broker.parties import outbox
from schemas.convenant import Convenant, Party, QuarterDates

REMINDER_TOPIC = "quarterly_list.reminder"


def check_quarter(convenant: Convenant, quarter: str) -> None:
    """Refuse a quarterly list for a quarter the convenant's calendar does not know."""
    if convenant.quarterly is None or convenant.quarterly.dates(quarter) is not None:
        return
    known = ", ".join(q.quarter for q in convenant.quarterly.calendar)
    raise ValidationFailed(
        f"Kwartaal {quarter} staat niet in de kwartaalkalender van dit convenant.",
        errors=[
            {
                "record": None,
                "field": "quarter",
                "code": "unknown_quarter",
                "message": f"Kies een kwartaal uit de kalender: {known}.",
            }
        ],
    )


def quarter_dates(convenant: Convenant, quarter: str) -> QuarterDates:
    """Return the calendar entry of `quarter`, or 404."""
    dates = convenant.quarterly.dates(quarter) if convenant.quarterly else None
    if dates is None:
        raise NotFound("Dit kwartaal staat niet in de kwartaalkalender van dit convenant.")
    return dates


def deadline_at(dates: QuarterDates) -> dt.datetime:
    """The moment the deadline passes: the end of the deadline day in the Netherlands."""
    next_day = dates.deadline + dt.timedelta(days=1)
    return dt.datetime.combine(next_day, dt.time(), AMSTERDAM).astimezone(dt.UTC)


def required_parties(convenant: Convenant) -> tuple[Party, ...]:
    """The parties that must send a list each quarter (the roles the convenant names)."""
    roles = set(convenant.quarterly.required_roles) if convenant.quarterly else set()
    return tuple(p for p in convenant.parties if p.role in roles)


def record_list(session: Session, submission: Submission) -> QuarterList:
    """Number a stored quarterly list as the next version of its party's list for the quarter."""
    lock_log(session)  # two lists of one party at once: the second waits, and becomes the next version
    last = session.scalar(
        select(func.max(QuarterList.version)).where(
            QuarterList.convenant_id == submission.convenant_id,
            QuarterList.quarter == submission.quarter,
            QuarterList.party_id == submission.party_id,
        )
    )
    row = QuarterList(
        submission_id=submission.id,
        convenant_id=submission.convenant_id,
        quarter=submission.quarter,
        party_id=submission.party_id,
        version=(last or 0) + 1,
        received_at=submission.received_at,
    )
    session.add(row)
    session.flush()
    return row


def list_versions(session: Session, convenant_id: str, quarter: str) -> list[QuarterList]:
    """Every version of every party's list for the quarter, oldest first."""
    return list(
        session.scalars(
            select(QuarterList)
            .where(QuarterList.convenant_id == convenant_id, QuarterList.quarter == quarter)
            .order_by(QuarterList.party_id, QuarterList.version)
        )
    )


def latest_lists(session: Session, convenant_id: str, quarter: str) -> dict[str, QuarterList]:
    """The list that counts per party: its latest version replaces the earlier ones."""
    latest: dict[str, QuarterList] = {}
    for row in list_versions(session, convenant_id, quarter):
        latest[row.party_id] = row
    return latest


def match_runs(session: Session, convenant_id: str, quarter: str) -> list[MatchRun]:
    return list(
        session.scalars(
            select(MatchRun)
            .where(MatchRun.convenant_id == convenant_id, MatchRun.quarter == quarter)
            .order_by(MatchRun.version)
        )
    )


def quarter_status(session: Session, convenant: Convenant, quarter: str) -> dict[str, Any]:
    """Who sent which versions, what is still missing, the deadline and the match runs."""
    dates = quarter_dates(convenant, quarter)
    versions = list_versions(session, convenant.id, quarter)
    submitted = {row.party_id for row in versions}
    return {
        "convenant_id": convenant.id,
        "quarter": quarter,
        "peildatum": dates.peildatum.isoformat(),
        "deadline": dates.deadline.isoformat(),
        "deadline_at": deadline_at(dates).isoformat(),
        "required": [p.id for p in required_parties(convenant)],
        "missing": [p.id for p in required_parties(convenant) if p.id not in submitted],
        "lists": [
            {
                "party": row.party_id,
                "version": row.version,
                "submission_id": row.submission_id,
                "received_at": row.received_at.isoformat(),
            }
            for row in versions
        ],
        "runs": [
            {
                "version": run.version,
                "supersedes": run.supersedes,
                "trigger": run.trigger,
                "ran_at": run.ran_at.isoformat(),
                "missing": run.missing,
            }
            for run in match_runs(session, convenant.id, quarter)
        ],
    }


def queue_reminders(session: Session, convenant: Convenant, now: dt.datetime) -> int:
    """Queue one reminder per party whose list is missing once a deadline is near; return how many."""
    quarterly = convenant.quarterly
    if quarterly is None:
        return 0
    queued = 0
    for dates in quarterly.calendar:
        deadline = deadline_at(dates)
        if not deadline - dt.timedelta(days=quarterly.reminder_days_before) <= now < deadline:
            continue
        submitted = latest_lists(session, convenant.id, dates.quarter)
        for party in required_parties(convenant):
            if party.id in submitted:
                continue
            queued += outbox.enqueue(
                session,
                party_id=party.id,
                topic=REMINDER_TOPIC,
                dedupe_key=f"{REMINDER_TOPIC}:{convenant.id}:{dates.quarter}:{party.id}",
                payload={
                    "type": REMINDER_TOPIC,
                    "convenant_id": convenant.id,
                    "quarter": dates.quarter,
                    "peildatum": dates.peildatum.isoformat(),
                    "deadline": dates.deadline.isoformat(),
                    "message": f"Uw kwartaallijst voor {dates.quarter} is nog niet ontvangen.",
                },
                now=now,
            )
    return queued
