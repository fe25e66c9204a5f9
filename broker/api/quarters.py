"""The quarterly cycle as parties see it: status, their own match view, counts for the Inspectie."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask_smorest import Blueprint
from sqlalchemy import func, select

from broker.app import runtime
from broker.app.answers import Answer, count, day, moment, uuid
from broker.app.csvio import csv_response, render_records
from broker.app.errors import NotFound
from broker.app.extensions import db
from broker.app.problems import AUDITED_PROBLEMS, BEARER_PROBLEMS, CSV_ANSWER, SECURITY, VERSION, problems
from broker.auditing.step import audited_step
from broker.exchange import delivery as deliveries
from broker.exchange.submission import member_party
from broker.matching.quarters import latest_lists, match_runs, quarter_dates, quarter_status
from broker.models import Delivery, Record
from broker.parties.oauth import current_caller, require_token

blp = Blueprint(
    "quarters", __name__, url_prefix="/api/v1/convenants", description="Quarterly lists and their match"
)


QUARTER_PARAMETER = {
    "name": "quarter",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]{4}-Q[1-4]$"},
    "description": "A quarter of the convenant's calendar, e.g. 2026-Q4.",
}
F = ma.fields


def _parties(**kwargs: Any) -> ma.fields.List:
    """Ids of parties of the convenant."""
    return F.List(F.String(), **kwargs)


def _version(**kwargs: Any) -> ma.fields.Integer:
    """The version of a quarterly list or of a match run, 1 for the first."""
    return F.Integer(metadata={"minimum": 1}, **kwargs)


def _supersedes() -> ma.fields.String:
    return F.String(required=True, allow_none=True, metadata={"description": "The id of the run this one replaces."})


class QuarterListSchema(Answer):
    """A version of a party's quarterly list."""

    party = F.String(required=True)
    version = _version(required=True)
    submission_id = uuid(required=True)
    received_at = moment(required=True)


class MatchRunSchema(Answer):
    version = _version(required=True)
    supersedes = _supersedes()
    trigger = F.String(required=True)
    ran_at = moment(required=True)
    missing = _parties(required=True)


class QuarterStatusSchema(Answer):
    convenant_id = F.String(required=True)
    quarter = F.String(required=True)
    peildatum = day(required=True)
    deadline = day(required=True)
    deadline_at = moment(required=True)
    required = _parties(required=True)
    missing = _parties(required=True)
    lists = F.List(F.Nested(QuarterListSchema), required=True)
    runs = F.List(F.Nested(MatchRunSchema), required=True)


class MatchDeliverySchema(Answer):
    """The caller's delivery of a match: what it is about (counts) and the records."""

    delivery_id = uuid(required=True)
    records = F.List(F.Dict(), required=True)


class MatchViewSchema(Answer):
    convenant_id = F.String(required=True)
    quarter = F.String(required=True)
    version = _version(required=True)
    supersedes = _supersedes()
    ran_at = moment(required=True)
    trigger = F.String(required=True)
    missing = _parties(required=True)
    views = F.List(F.Nested(MatchDeliverySchema), required=True)


class QuarterCountSchema(Answer):
    category = F.String(required=True)
    gemeente = F.String(required=True)
    count = F.Integer(required=True, metadata={"minimum": 1})


class QuarterCountsSchema(Answer):
    convenant_id = F.String(required=True)
    quarter = F.String(required=True)
    peildatum = day(required=True)
    party = F.String(required=True)
    list_version = F.Integer(required=True, allow_none=True)
    total = count(required=True)
    counts = F.List(F.Nested(QuarterCountSchema), required=True)


@blp.route("/<convenant_id>/quarters/<quarter>")
@blp.doc(
    security=SECURITY,
    parameters=[QUARTER_PARAMETER],
    responses=problems(*BEARER_PROBLEMS, 404),
)
@blp.response(200, QuarterStatusSchema, description="The quarter's status", headers=VERSION)
@require_token
def get_quarter(convenant_id: str, quarter: str) -> dict[str, Any]:
    """Return a quarter's status: deadline, who sent which list versions, who is missing, the runs."""
    convenant = runtime.get_convenant(convenant_id)
    member_party(convenant, current_caller().party_id)
    return quarter_status(db.session, convenant, quarter)


@blp.route("/<convenant_id>/quarters/<quarter>/match")
@blp.doc(
    security=SECURITY,
    parameters=[QUARTER_PARAMETER],
    responses={**problems(*BEARER_PROBLEMS, *AUDITED_PROBLEMS, 404), 200: CSV_ANSWER},
)
@blp.response(
    200,
    MatchViewSchema,
    description="The caller's view of the latest match; its records as CSV on `Accept: text/csv`",
    headers=VERSION,
)
@require_token
def get_match(convenant_id: str, quarter: str) -> Any:
    """Return the caller's view of the latest match: counts per pair and the records it lacks."""
    session = db.session
    caller = current_caller()
    convenant = runtime.get_convenant(convenant_id)
    member_party(convenant, caller.party_id)
    quarter_dates(convenant, quarter)
    runs = match_runs(session, convenant.id, quarter)
    if not runs:
        raise NotFound("Voor dit kwartaal is nog geen vergelijking gemaakt.")
    run = runs[-1]
    mine = ((run.report or {}).get("deliveries") or {}).get(caller.party_id, {})
    views = []
    all_records: list[dict[str, Any]] = []
    keyring = runtime.keyring()
    with audited_step(session, caller.actor) as step:
        for delivery_id in mine.values():
            delivery = session.get(Delivery, delivery_id)
            assert delivery is not None and delivery.recipient_party_id == caller.party_id
            records = deliveries.fetch_for_recipient(session, keyring, delivery, step.recorder, step.now)
            views.append({**(delivery.summary or {}), "delivery_id": delivery.id, "records": records})
            all_records.extend(records)
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"], default="application/json")
    if best == "text/csv":
        return csv_response(
            render_records(all_records, convenant),
            f"vergelijking-{quarter}-v{run.version}.csv",
            headers={"X-Match-Version": str(run.version)},
        )
    return {
        "convenant_id": convenant.id,
        "quarter": quarter,
        "version": run.version,
        "supersedes": run.supersedes,
        "ran_at": run.ran_at.isoformat(),
        "trigger": run.trigger,
        "missing": run.missing,
        "views": views,
    }


@blp.route("/<convenant_id>/quarters/<quarter>/counts")
@blp.doc(
    security=SECURITY,
    parameters=[QUARTER_PARAMETER],
    responses=problems(*BEARER_PROBLEMS, 404),
)
@blp.response(200, QuarterCountsSchema, description="Counts of the caller's latest list", headers=VERSION)
@require_token
def get_counts(convenant_id: str, quarter: str) -> dict[str, Any]:
    """Count the caller's own latest list per category and gemeente (counts only, for the Inspectie)."""
    session = db.session
    caller = current_caller()
    convenant = runtime.get_convenant(convenant_id)
    member_party(convenant, caller.party_id)
    dates = quarter_dates(convenant, quarter)
    latest = latest_lists(session, convenant.id, quarter).get(caller.party_id)
    counts: list[dict[str, Any]] = []
    if latest is not None:
        rows = session.execute(
            select(Record.category, Record.gemeente, func.count())
            .where(Record.submission_id == latest.submission_id)
            .group_by(Record.category, Record.gemeente)
            .order_by(Record.category, Record.gemeente)
        ).all()
        counts = [{"category": c, "gemeente": g, "count": n} for c, g, n in rows]
    return {
        "convenant_id": convenant.id,
        "quarter": quarter,
        "peildatum": dates.peildatum.isoformat(),
        "party": caller.party_id,
        "list_version": latest.version if latest else None,
        "total": sum(c["count"] for c in counts),
        "counts": counts,
    }
