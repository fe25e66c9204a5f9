"""Compare the quarterly lists of each pair of parties and give each party its own view.

A pair is a party of one role and a party of the role the convenant routes it to (RBL x each SWV),
limited to the gemeenten both work in. Lists are matched by convenant pseudonym only, never by BSN.
Each party gets a delivery of kind "match": the counts of every group and the other party's
records it lacks. One runner per quarter: a database lock, and the unique result version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from audit.entry import Actor
from broker.auditing.step import Recorder, activity, audited_step
from broker.exchange.restrictions import Restrictions, active_restrictions
from broker.matching.quarters import deadline_at, latest_lists, match_runs, required_parties
from broker.models import Delivery, DeliveryRecord, MatchRun, table
from schemas.convenant import Convenant, Party

log = structlog.get_logger("broker.matching")

ACTOR = Actor(type="system", id="broker:quarterly-match")
STEP = "match"


@dataclass
class Side:
    """One party's list within a pair's werkgebied: its pseudonyms per category."""

    party: Party
    submission_id: str
    by_category: dict[str, set[str]]
    _pseudonyms: list[str] = field(default_factory=list, repr=False)
    _seq_text: str = field(default="", repr=False)

    def __len__(self) -> int:
        return sum(len(records) for records in self.by_category.values())

    def seqs(self, groups: dict[str, set[str]]) -> list[int]:
        """The record seqs of the given pseudonyms (only a run's deliveries need them)."""
        seq_of = dict(zip(self._pseudonyms, map(int, self._seq_text.split(",")), strict=True))
        return [seq_of[p] for ps in groups.values() for p in ps]


def _total(groups: dict[Any, set[str]]) -> int:
    return sum(len(g) for g in groups.values())


def _all(groups: dict[Any, set[str]]) -> list[str]:
    return [p for g in groups.values() for p in g]


@dataclass
class PairResult:
    """The four groups of one pair, as sets of pseudonyms; `a` and `b` name the sides."""

    a: Side
    b: Side
    same: dict[str, set[str]] = field(default_factory=dict)
    different: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    only_a: dict[str, set[str]] = field(default_factory=dict)
    only_b: dict[str, set[str]] = field(default_factory=dict)


def pairs(convenant: Convenant, parties: tuple[Party, ...]) -> list[tuple[Party, Party, tuple[str, ...]]]:
    """Every pair the routing rules connect, with the gemeenten both parties work in."""
    seen: set[frozenset[str]] = set()
    result = []
    for rule in convenant.routing:
        for a in (p for p in parties if p.role == rule.from_role):
            for b in (p for p in parties if p.role == rule.to_role and p.id != a.id):
                key = frozenset((a.id, b.id))
                shared = tuple(g for g in a.werkgebied if g in b.werkgebied)
                if key in seen or not shared:
                    continue
                seen.add(key)
                result.append((a, b, shared))
    return result


AGGREGATE = {
    "postgresql": "string_agg(pseudonym, ','), string_agg(seq::text, ','), string_agg(category, ',')",
    "sqlite": "group_concat(pseudonym, ','), group_concat(seq, ','), group_concat(category, ',')",
}


def load_side(session: Session, party: Party, submission_id: str, gemeenten: tuple[str, ...]) -> Side:
    """Read one list's pseudonyms per category in the given gemeenten (no payload is opened).

    The database joins each column into one string, which Python splits: at a million records,
    one Python object per row (ORM, Row, even a DBAPI tuple) costs more than the comparison.
    Pseudonyms are hex and categories are ids, so a comma cannot occur in them.
    """
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    # Only placeholders and a constant are formatted in; the values travel as parameters.
    sql = "SELECT {} FROM records WHERE submission_id = {} AND gemeente IN ({})".format(  # noqa: S608
        AGGREGATE[connection.dialect.name], mark, ", ".join([mark] * len(gemeenten))
    )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, (submission_id, *gemeenten))
        pseudonym_text, seq_text, category_text = cursor.fetchone() or ("", "", "")
    finally:
        cursor.close()
    if not pseudonym_text:
        return Side(party, submission_id, {})
    pseudonyms = pseudonym_text.split(",")
    categories = category_text.split(",")
    distinct = set(categories)
    if len(distinct) == 1:
        by_category = {distinct.pop(): set(pseudonyms)}
    else:
        by_category = {c: set() for c in distinct}
        for pseudonym, category in zip(pseudonyms, categories, strict=True):
            by_category[category].add(pseudonym)
    return Side(party, submission_id, by_category, pseudonyms, seq_text)


def compare(a: Side, b: Side) -> PairResult:
    """Split two lists into known to both (same or different category), only at a, only at b.

    Set operations per pair of categories: a handful of C-level set operations, no per-pupil loop.
    """
    result = PairResult(a, b)
    for category_a, records_a in a.by_category.items():
        rest_a = records_a
        for category_b, records_b in b.by_category.items():
            common = rest_a & records_b
            if not common:
                continue
            rest_a = rest_a - common
            if category_a == category_b:
                result.same[category_a] = common
            else:
                result.different[(category_a, category_b)] = common
        if rest_a:
            result.only_a[category_a] = rest_a
    for category_b, records_b in b.by_category.items():
        rest_b = records_b
        for records_a in a.by_category.values():
            rest_b = rest_b - records_a
        if rest_b:
            result.only_b[category_b] = rest_b
    return result


def _lock(session: Session, convenant_id: str, quarter: str, wait: bool) -> bool:
    """Take the quarter's lock for this transaction (PostgreSQL); False when another runner has it.

    `wait` blocks instead: a runner woken by a new list must see what the runner before it did.

    SQLite has no advisory locks: there the unique (convenant, quarter, version) row, inserted
    before any work, lets only one runner through.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    digest = hashlib.sha256(f"match:{convenant_id}:{quarter}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    if wait:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}))


def _trigger(last: MatchRun | None, inputs: dict[str, str], complete: bool, deadline_passed: bool) -> str | None:
    """Why the quarter must be (re)matched now, or None when it need not be."""
    if not inputs:
        return None
    if last is not None:
        return "new_list" if last.inputs != inputs else None
    if complete:
        return "complete"
    return "deadline" if deadline_passed else None


def run_if_due(
    session: Session, convenant: Convenant, quarter: str, now: dt.datetime, *, wait: bool = False
) -> MatchRun | None:
    """Match the quarter when all lists are in, the deadline passed, or a list changed since the last run.

    Runs in its own transaction and commits; returns the new run, or None when nothing was due
    or another runner has the quarter.
    """
    dates = convenant.quarterly.dates(quarter) if convenant.quarterly else None
    if dates is None:
        return None
    try:
        if not _lock(session, convenant.id, quarter, wait):
            session.rollback()
            return None
        required = required_parties(convenant)
        lists = latest_lists(session, convenant.id, quarter)
        inputs = {p.id: lists[p.id].submission_id for p in required if p.id in lists}
        runs = match_runs(session, convenant.id, quarter)
        last = runs[-1] if runs else None
        trigger = _trigger(last, inputs, len(inputs) == len(required), now >= deadline_at(dates))
        if trigger is None:
            session.rollback()
            return None
        run = MatchRun(
            id=str(uuid.uuid4()),
            convenant_id=convenant.id,
            quarter=quarter,
            version=(last.version + 1) if last else 1,
            supersedes=last.id if last else None,
            trigger=trigger,
            inputs=inputs,
            missing=[p.id for p in required if p.id not in inputs],
            report=None,
            ran_at=now,
        )
        session.add(run)
        session.flush()
    except (IntegrityError, OperationalError):
        # Another runner inserted this version first (or holds SQLite's write lock): it does the work.
        session.rollback()
        log.info("match already running elsewhere", convenant=convenant.id, quarter=quarter)
        return None
    _match(session, convenant, run, last, tuple(p for p in required if p.id in inputs), now)
    return run


# Kept for callers that think in the words: run as soon as every list is in.
run_if_complete = run_if_due


def run_due(session: Session, convenants: dict[str, Convenant], now: dt.datetime) -> list[MatchRun]:
    """Run every quarter that is due, in every convenant with a calendar (idempotent, for cron)."""
    runs = []
    for convenant in convenants.values():
        if convenant.quarterly is None:
            continue
        for dates in convenant.quarterly.calendar:
            run = run_if_due(session, convenant, dates.quarter, now)
            if run is not None:
                runs.append(run)
    return runs


def _leave_out(result: PairResult, restrictions: Restrictions) -> None:
    """A pupil restricted (AVG art. 18) by either party of the pair or by the broker is neither
    compared nor disclosed within the pair."""
    a, b = result.a.party.id, result.b.party.id
    every: tuple[dict[Any, set[str]], ...] = (result.same, result.different, result.only_a, result.only_b)
    for groups in every:
        for key in list(groups):
            groups[key] = {p for p in groups[key] if not restrictions.blocks(p, a, b)}
            if not groups[key]:
                del groups[key]


def _match(
    session: Session,
    convenant: Convenant,
    run: MatchRun,
    last: MatchRun | None,
    present: tuple[Party, ...],
    now: dt.datetime,
) -> None:
    """Compare, deliver and audit the run as one step, committed with the run's row."""
    with audited_step(session, ACTOR, now=now) as step:
        _compare_and_deliver(session, convenant, run, last, present, now, step.recorder)
    log.info("quarter matched", convenant=convenant.id, quarter=run.quarter, version=run.version)


def _compare_and_deliver(
    session: Session,
    convenant: Convenant,
    run: MatchRun,
    last: MatchRun | None,
    present: tuple[Party, ...],
    now: dt.datetime,
    recorder: Recorder,
) -> None:
    uri = activity(convenant.id, STEP)
    about = {"run_id": run.id, "quarter": run.quarter, "version": run.version}
    previous = (last.report or {}).get("deliveries", {}) if last else {}
    deliveries: dict[str, dict[str, str]] = {}
    pair_reports = []
    restrictions = active_restrictions(session, convenant.id)
    for a, b, gemeenten in pairs(convenant, present):
        result = compare(
            load_side(session, a, run.inputs[a.id], gemeenten), load_side(session, b, run.inputs[b.id], gemeenten)
        )
        if restrictions:
            _leave_out(result, restrictions)
        for mine, theirs, lacking in ((a, b, result.only_b), (b, a, result.only_a)):
            delivery = _deliver(session, convenant, run, result, mine, theirs, lacking, previous, now)
            deliveries.setdefault(mine.id, {})[theirs.id] = delivery.id
        pair_reports.append({"parties": [a.id, b.id], "gemeenten": list(gemeenten), **_counts(result)})
        _audit_pair(recorder, uri, convenant.id, about, result)
    run.report = {"pairs": pair_reports, "deliveries": deliveries}
    recorder.add(
        "match.completed",
        uri,
        root=True,
        parties=[p.id for p in present],
        convenant_id=convenant.id,
        attributes={**about, "trigger": run.trigger, "missing": run.missing, "pairs": len(pair_reports)},
    )


def _counts(result: PairResult) -> dict[str, Any]:
    return {
        "known_to_both": _total(result.same),
        "different_category": _total(result.different),
        "only_at": {result.a.party.id: _total(result.only_a), result.b.party.id: _total(result.only_b)},
    }


def _deliver(
    session: Session,
    convenant: Convenant,
    run: MatchRun,
    result: PairResult,
    mine: Party,
    theirs: Party,
    lacking: dict[str, set[str]],
    previous: dict[str, dict[str, str]],
    now: dt.datetime,
) -> Delivery:
    """Make `mine`'s view: the counts, and `theirs`'s records that `mine` lacks."""
    mine_is_a = mine.id == result.a.party.id
    own, other = (result.a, result.b) if mine_is_a else (result.b, result.a)
    differences = {
        ((cat_a, cat_b) if mine_is_a else (cat_b, cat_a)): len(ps) for (cat_a, cat_b), ps in result.different.items()
    }
    both, differ, missing = _total(result.same), _total(result.different), _total(lacking)
    summary = {
        "quarter": run.quarter,
        "version": run.version,
        "run_id": run.id,
        "supersedes": previous.get(mine.id, {}).get(theirs.id),
        "you": mine.id,
        "other": theirs.id,
        "known_to_both": both,
        "different_category": differ,
        "category_differences": [
            {"yours": yours, "theirs": their, "count": n} for (yours, their), n in sorted(differences.items())
        ],
        "only_at_you": len(own) - both - differ,
        "only_at_other": missing,
    }
    delivery = Delivery(
        id=str(uuid.uuid4()),
        convenant_id=convenant.id,
        kind=STEP,
        submission_id=other.submission_id,
        sender_party_id=theirs.id,
        recipient_party_id=mine.id,
        record_count=missing,
        created_at=now,
        fetched_at=None,
        acked_at=None,
        summary=summary,
    )
    session.add(delivery)
    session.flush()
    if lacking:
        links = [
            {"delivery_id": delivery.id, "submission_id": other.submission_id, "seq": seq}
            for seq in sorted(other.seqs(lacking))
        ]
        session.connection().execute(insert(table(DeliveryRecord)), links)
    return delivery


def _audit_pair(recorder: Recorder, uri: str, convenant_id: str, about: dict[str, Any], result: PairResult) -> None:
    """Per pupil: which party learned what about whom, and in which category (for breach impact)."""
    a, b = result.a.party.id, result.b.party.id
    groups: list[tuple[str, dict[Any, set[str]], list[str], dict[str, Any]]] = [
        ("match.known_to_both", result.same, [a, b], {"parties": [a, b], "learned": "known_to_both"}),
        ("match.different_category", result.different, [a, b], {"parties": [a, b], "learned": "different_category"}),
        ("match.record_disclosed", result.only_a, [a, b], {"from": a, "to": b, "learned": "only_at_other"}),
        ("match.record_disclosed", result.only_b, [b, a], {"from": b, "to": a, "learned": "only_at_other"}),
    ]
    for name, by_category, parties, attributes in groups:
        for category, subjects in sorted(by_category.items()):
            if subjects:  # an empty list would make Recorder write one entry about nobody
                # A different-category pair is keyed (category at a, category at b).
                label = category[0] if isinstance(category, tuple) else category
                recorder.add(
                    name, uri, subjects=sorted(subjects), parties=parties, convenant_id=convenant_id,
                    attributes={**about, **attributes, "category": label},
                )


def run_after_list(session: Session, convenant: Convenant, quarter: str | None) -> MatchRun | None:
    """After a list is stored (and committed): match at once if that made the quarter due.

    The list is already accepted; a failed match is logged and left to `broker match run-due`.
    """
    from broker.app import runtime
    from broker.app.errors import BrokerError

    if quarter is None:
        return None
    try:
        return run_if_due(session, convenant, quarter, runtime.now(), wait=True)
    except (BrokerError, SQLAlchemyError):
        session.rollback()
        log.exception("match after a new list failed; run-due will retry", convenant=convenant.id, quarter=quarter)
        return None
