"""Retention: what the broker holds, until when, and the job that purges what is due.

The rules come from the convenant file's `[retention]` section:
- a record routed to parties is due when every delivery holding it is due: `delivery_days_after_ack`
  days after its recipient acknowledged it, and `delivery_max_days` after it was made at the latest;
- a record routed to nobody is due `delivery_max_days` after it arrived;
- a quarterly list is due once a match of a later quarter is done ("until the next quarter's match");
- anything about a pupil whose case was ended before it arrived is due at once.

`run_retention` purges what is due in batches, each batch in its own audited transaction, and
deletes the vault shares of the destroyed data keys (crypto-shredding).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.entry import Actor
from broker.app.keyring import Keyring
from broker.auditing.step import audited_step
from broker.exchange import idempotency
from broker.models import CaseEnding, Delivery, DeliveryRecord, MatchRun, Record, Submission
from broker.rights.purge import RecordKey, purge_records
from schemas.convenant import Convenant

LIST_KIND = "quarterly_list"
MATCH_KIND = "match"
BATCH = 5000

# reason -> Dutch label, for the report
REASONS = {
    "retention.delivered": "geleverd en bewaartermijn verstreken",
    "retention.not_routed": "aan niemand gerouteerd, maximale termijn verstreken",
    "retention.quarterly_list": "kwartaallijst, volgende kwartaalvergelijking gedaan",
    "retention.case_ended": "casus beëindigd",
}


@dataclass
class Holding:
    """One record the broker holds, when it must go and why."""

    key: RecordKey
    kind: str
    received_at: dt.datetime
    due_at: dt.datetime | None  # None: not due until an event (the next quarter's match)
    reason: str


def _delivery_due(
    created: dt.datetime, acked: dt.datetime | None, after_ack: dt.timedelta, longest: dt.timedelta
) -> dt.datetime:
    latest = created + longest
    return min(acked + after_ack, latest) if acked is not None else latest


def holdings(session: Session, convenant: Convenant, now: dt.datetime) -> list[Holding]:
    """Every record of the convenant the broker holds, with the moment its retention ends."""
    rules = convenant.retention
    if rules is None:
        return []
    records = session.execute(
        select(
            Record.submission_id,
            Record.seq,
            Record.pseudonym,
            Submission.kind,
            Submission.quarter,
            Submission.received_at,
        )
        .join(Submission, Submission.id == Record.submission_id)
        .where(Submission.convenant_id == convenant.id)
    ).all()
    delivered: dict[RecordKey, list[dt.datetime]] = defaultdict(list)
    for submission_id, seq, created, acked in session.execute(
        select(DeliveryRecord.submission_id, DeliveryRecord.seq, Delivery.created_at, Delivery.acked_at)
        .join(Delivery, Delivery.id == DeliveryRecord.delivery_id)
        .where(Delivery.convenant_id == convenant.id, Delivery.kind != MATCH_KIND)
    ):
        delivered[(submission_id, seq)].append(
            _delivery_due(created, acked, rules.delivery_after_ack, rules.delivery_max)
        )
    list_done = _lists_done(session, convenant)
    ended = {
        pseudonym: ended_at
        for pseudonym, ended_at in session.execute(
            select(CaseEnding.pseudonym, func.max(CaseEnding.ended_at))
            .where(CaseEnding.convenant_id == convenant.id)
            .group_by(CaseEnding.pseudonym)
        )
    }
    result = []
    for submission_id, seq, pseudonym, kind, quarter, received_at in records:
        key = (submission_id, seq)
        ended_at = ended.get(pseudonym)
        if ended_at is not None and received_at <= ended_at and kind not in ("end_notice",):
            result.append(Holding(key, kind, received_at, ended_at, "retention.case_ended"))
        elif kind == LIST_KIND:
            result.append(Holding(key, kind, received_at, list_done.get(quarter or ""), "retention.quarterly_list"))
        elif key in delivered:
            result.append(Holding(key, kind, received_at, max(delivered[key]), "retention.delivered"))
        else:
            result.append(Holding(key, kind, received_at, received_at + rules.delivery_max, "retention.not_routed"))
    return result


def _lists_done(session: Session, convenant: Convenant) -> dict[str, dt.datetime]:
    """Per quarter with lists: when a match of a later quarter was first done (its lists may go then)."""
    runs = session.execute(
        select(MatchRun.quarter, func.min(MatchRun.ran_at))
        .where(MatchRun.convenant_id == convenant.id)
        .group_by(MatchRun.quarter)
    ).all()
    quarters = session.scalars(
        select(Submission.quarter)
        .where(Submission.convenant_id == convenant.id, Submission.kind == LIST_KIND)
        .distinct()
    ).all()
    done = {}
    for quarter in quarters:
        later = [ran_at for q, ran_at in runs if quarter and q > quarter]  # "2026-Q4" < "2027-Q1"
        if quarter and later:
            done[quarter] = min(later)
    return done


@dataclass
class RetentionRun:
    purged: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    keys_destroyed: int = 0
    shares_deleted: int = 0

    @property
    def total(self) -> int:
        return sum(self.purged.values())


Progress = Callable[[int, int], None]


def run_retention(
    session: Session,
    keyring: Keyring,
    convenants: dict[str, Convenant],
    now: dt.datetime,
    *,
    actor: Actor | None = None,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> RetentionRun:
    """Purge every record past its retention, in audited batches; report progress as (done, total)."""
    result = RetentionRun()
    due: list[Holding] = []
    for convenant in convenants.values():
        due.extend(h for h in holdings(session, convenant, now) if h.due_at is not None and h.due_at <= now)
    session.rollback()  # end the read transaction before the batches lock anything
    total, done = len(due), 0
    if progress:
        progress(0, total)
    # A submission's due records stay in one batch, so it is re-sealed once.
    by_submission: dict[str, list[Holding]] = defaultdict(list)
    for holding in due:
        by_submission[holding.key[0]].append(holding)
    pending: list[Holding] = []
    groups = list(by_submission.values())
    for i, group in enumerate(groups):
        pending.extend(group)
        if len(pending) >= batch or i == len(groups) - 1:
            _purge_batch(session, keyring, pending, actor, now, result)
            done += len(pending)
            pending = []
            if progress:
                progress(done, total)
    result.shares_deleted += keyring.sweep_vault()
    # Idempotency-Key answers past their time (ids and counts, no personal data) go too.
    idempotency.forget_expired(session, now)
    session.commit()
    return result


def _purge_batch(
    session: Session,
    keyring: Keyring,
    batch: list[Holding],
    actor: Actor | None,
    now: dt.datetime,
    result: RetentionRun,
) -> None:
    by_reason: dict[str, list[RecordKey]] = defaultdict(list)
    for holding in batch:
        by_reason[holding.reason].append(holding.key)
    with audited_step(session, actor or Actor(type="system", id="retention"), now=now) as step:
        for reason, keys in sorted(by_reason.items()):
            outcome = purge_records(session, keyring, keys, step.recorder, now, reason=reason)
            result.purged[reason] += outcome.records
            result.keys_destroyed += outcome.keys_destroyed
    keyring.sweep_vault()  # the destroyed keys' shares go once the batch is committed


@dataclass(frozen=True)
class ReportLine:
    convenant_id: str
    kind: str
    reason: str
    records: int
    oldest: dt.datetime
    next_due: dt.datetime | None
    overdue: int
    overdue_since: dt.datetime | None


def report(session: Session, convenants: dict[str, Convenant], now: dt.datetime) -> list[ReportLine]:
    """What the broker holds per convenant and kind, its age, and how much of it is past retention."""
    lines = []
    for convenant in convenants.values():
        groups: dict[tuple[str, str], list[Holding]] = defaultdict(list)
        for holding in holdings(session, convenant, now):
            groups[(holding.kind, holding.reason)].append(holding)
        for (kind, reason), items in sorted(groups.items()):
            overdue = [h for h in items if h.due_at is not None and h.due_at <= now]
            upcoming = [h.due_at for h in items if h.due_at is not None and h.due_at > now]
            lines.append(
                ReportLine(
                    convenant_id=convenant.id,
                    kind=kind,
                    reason=reason,
                    records=len(items),
                    oldest=min(h.received_at for h in items),
                    next_due=min(upcoming) if upcoming else None,
                    overdue=len(overdue),
                    overdue_since=min(h.due_at for h in overdue if h.due_at is not None) if overdue else None,
                )
            )
    return lines
