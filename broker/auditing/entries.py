"""Find audit entries for an officer or a party, and record that they were looked at.

Used by the review pages, their CSV export and `GET /api/v1/audit/entries` alike, so the three
apply one set of filters and one scoping rule: a party sees the entries its party took part in.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from audit.entry import Actor
from broker.app.timefmt import AMSTERDAM
from broker.auditing.step import SUBJECT_ID_TYPE, audited_step, broker_activity
from broker.exchange import need_to_know
from broker.models import AuditEntryRow


@dataclass(frozen=True)
class Viewer:
    """Who looks (for the audit entry) and which party's entries they may see (None: all)."""

    actor: Actor
    party: str | None


@dataclass(frozen=True)
class EntryFilter:
    """What to look for; every field left None does not filter."""

    start: dt.datetime | None = None  # inclusive, aware
    end: dt.datetime | None = None  # exclusive, aware
    party: str | None = None
    convenant_id: str | None = None
    action: str | None = None
    trace_id: str | None = None
    processing_activity_id: str | None = None
    subjects: tuple[str, ...] | None = None  # data_subject_id is one of these
    before: int | None = None  # only entries with a lower index: the log as it was when asked

    def attributes(self) -> dict[str, Any]:
        """The filter as audit attributes (subjects are recorded as the entries' subjects)."""
        values = {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "party": self.party,
            "convenant": self.convenant_id,
            "action": self.action,
            "trace_id": self.trace_id,
            "processing_activity_id": self.processing_activity_id,
            "subject_filter": self.subjects is not None,
        }
        return {k: v for k, v in values.items() if v not in (None, False)}


def _utc(moment: dt.datetime) -> dt.datetime:
    # SQLite hands DateTime(timezone=True) back naive; the broker always stores UTC.
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _has_party(party: str) -> ColumnElement[bool]:
    return AuditEntryRow.parties.contains(f",{party},", autoescape=True)


def conditions(entry_filter: EntryFilter, viewer: Viewer) -> list[ColumnElement[bool]]:
    """The WHERE clauses for `entry_filter`, within what `viewer` may see."""
    f, row = entry_filter, AuditEntryRow
    where: list[ColumnElement[bool]] = []
    if viewer.party is not None:
        where.append(_has_party(viewer.party))
    if f.party:
        where.append(_has_party(f.party))
    if f.start is not None:
        where.append(row.start_time >= _utc(f.start))
    if f.end is not None:
        where.append(row.start_time < _utc(f.end))
    if f.convenant_id:
        where.append(row.convenant_id == f.convenant_id)
    if f.action:
        where.append(row.name == f.action)
    if f.trace_id:
        where.append(row.trace_id == f.trace_id)
    if f.processing_activity_id:
        where.append(row.processing_activity_id == f.processing_activity_id)
    if f.subjects is not None:
        where.append(row.data_subject_id.in_(f.subjects))
    if f.before is not None:
        where.append(row.idx < f.before)
    return where


def count_entries(session: Session, where: Sequence[ColumnElement[bool]]) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntryRow).where(*where)) or 0


def page_of_entries(
    session: Session, where: Sequence[ColumnElement[bool]], page: int, per_page: int
) -> list[AuditEntryRow]:
    """One page of the matching entries, newest first (pages count from 1)."""
    query = (
        select(AuditEntryRow).where(*where).order_by(AuditEntryRow.idx.desc())
        .limit(per_page).offset((page - 1) * per_page)
    )
    return list(session.scalars(query))


def stream_entries(session: Session, where: Sequence[ColumnElement[bool]]) -> Iterator[AuditEntryRow]:
    """Every matching entry, newest first, fetched in batches so memory stays flat."""
    query = (
        select(AuditEntryRow).where(*where).order_by(AuditEntryRow.idx.desc())
        .execution_options(yield_per=2000)
    )
    result = session.scalars(query)
    try:
        yield from result
    finally:
        # A download broken off midway must not leave a server-side cursor open (PostgreSQL).
        result.close()


def log_end(session: Session) -> int:
    """The index the next entry will get: a query with `before` this ignores its own audit entry."""
    last = session.scalar(select(func.max(AuditEntryRow.idx)))
    return 0 if last is None else last + 1


# A loose index scan: one index seek per distinct name, instead of reading the whole index.
_DISTINCT_NAMES = text(
    "WITH RECURSIVE names(name) AS ("
    " SELECT MIN(name) FROM audit_entries"
    " UNION ALL"
    " SELECT (SELECT MIN(name) FROM audit_entries WHERE name > names.name) FROM names"
    " WHERE names.name IS NOT NULL)"
    " SELECT name FROM names WHERE name IS NOT NULL"
)


def action_names(session: Session) -> list[str]:
    """Every entry name in the log, for the action filter."""
    return [name for (name,) in session.execute(_DISTINCT_NAMES)]


def decode(row: AuditEntryRow) -> dict[str, Any]:
    """The full entry as sealed, from its canonical bytes."""
    record: dict[str, Any] = json.loads(bytes(row.canonical))
    return record


@dataclass(frozen=True)
class EntryLine:
    """One entry as a row of the review table or the CSV export."""

    index: int
    time: dt.datetime  # Europe/Amsterdam
    name: str
    actor: str  # type:id (party)
    actor_type: str
    actor_id: str
    actor_party: str | None
    parties: tuple[str, ...]
    convenant_id: str | None
    processing_activity_id: str
    data_subject_id: str | None
    trace_id: str
    status: str


def entry_line(row: AuditEntryRow) -> EntryLine:
    actor = f"{row.actor_type}:{row.actor_id}" + (f" ({row.actor_party})" if row.actor_party else "")
    try:
        status = str(decode(row).get("status", ""))
    except ValueError:
        status = "?"
    return EntryLine(
        index=row.idx,
        time=_utc(row.start_time).astimezone(AMSTERDAM),
        name=row.name,
        actor=actor,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        actor_party=row.actor_party,
        parties=tuple(p for p in row.parties.split(",") if p),
        convenant_id=row.convenant_id,
        processing_activity_id=row.processing_activity_id,
        data_subject_id=row.data_subject_id,
        trace_id=row.trace_id,
        status=status,
    )


def record_review(
    session: Session,
    viewer: Viewer,
    name: str,
    attributes: Mapping[str, Any],
    subjects: Mapping[str, str] | Mapping[None, str] | None = None,
) -> None:
    """Audit one review query, with one entry per data subject looked up (fail closed).

    `subjects` maps a convenant id (None if unknown) to the subject's pseudonym in it. Only the
    subjects the viewer may name are recorded (need-to-know): a pseudonym typed for any other
    child never reaches the log, just as one that names nobody.
    """
    activity = broker_activity("review")
    with audited_step(session, viewer.actor) as step:
        step.record(name, activity, root=True, attributes=dict(attributes))
        for convenant_id, pseudonym in need_to_know.nameable(session, viewer.party, subjects or {}).items():
            step.record(
                "review.subject_looked_up", activity, subjects=[pseudonym], subject_type=SUBJECT_ID_TYPE,
                convenant_id=convenant_id, attributes={"query": name},
            )
