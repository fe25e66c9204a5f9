"""The quarterly cycle as parties see it: status, their own match view, counts for the Inspectie."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint
from sqlalchemy import func, select

from broker.app import runtime
from broker.app.csvio import csv_response, render_records
from broker.app.errors import NotFound
from broker.app.extensions import db
from broker.app.problems import (
    AUDITED_PROBLEMS,
    BEARER_PROBLEMS,
    SECURITY,
    component,
    content_response,
    json_response,
    responses,
)
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
DATE = {"type": "string", "format": "date"}
MOMENT = {"type": "string", "format": "date-time"}
PARTIES = {"type": "array", "items": {"type": "string"}}
SUPERSEDES = {"type": "string", "nullable": True, "description": "The id of the run this one replaces."}
QUARTER_STATUS = component(
    "QuarterStatus",
    {
        "type": "object",
        "required": ["convenant_id", "quarter", "peildatum", "deadline", "deadline_at", "required", "missing",
                     "lists", "runs"],
        "properties": {
            "convenant_id": {"type": "string"},
            "quarter": {"type": "string"},
            "peildatum": DATE,
            "deadline": DATE,
            "deadline_at": MOMENT,
            "required": PARTIES,
            "missing": PARTIES,
            "lists": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["party", "version", "submission_id", "received_at"],
                    "properties": {
                        "party": {"type": "string"},
                        "version": {"type": "integer", "minimum": 1},
                        "submission_id": {"type": "string", "format": "uuid"},
                        "received_at": MOMENT,
                    },
                },
            },
            "runs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["version", "supersedes", "trigger", "ran_at", "missing"],
                    "properties": {
                        "version": {"type": "integer", "minimum": 1},
                        "supersedes": SUPERSEDES,
                        "trigger": {"type": "string"},
                        "ran_at": MOMENT,
                        "missing": PARTIES,
                    },
                },
            },
        },
    },
)
MATCH_VIEW = component(
    "MatchView",
    {
        "type": "object",
        "required": ["convenant_id", "quarter", "version", "supersedes", "ran_at", "trigger", "missing", "views"],
        "properties": {
            "convenant_id": {"type": "string"},
            "quarter": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "supersedes": SUPERSEDES,
            "ran_at": MOMENT,
            "trigger": {"type": "string"},
            "missing": PARTIES,
            "views": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["delivery_id", "records"],
                    "properties": {
                        "delivery_id": {"type": "string", "format": "uuid"},
                        "records": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    },
)
QUARTER_COUNTS = component(
    "QuarterCounts",
    {
        "type": "object",
        "required": ["convenant_id", "quarter", "peildatum", "party", "list_version", "total", "counts"],
        "properties": {
            "convenant_id": {"type": "string"},
            "quarter": {"type": "string"},
            "peildatum": DATE,
            "party": {"type": "string"},
            "list_version": {"type": "integer", "nullable": True},
            "total": {"type": "integer", "minimum": 0},
            "counts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["category", "gemeente", "count"],
                    "properties": {
                        "category": {"type": "string"},
                        "gemeente": {"type": "string"},
                        "count": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
)


@blp.route("/<convenant_id>/quarters/<quarter>")
@blp.doc(
    security=SECURITY,
    parameters=[QUARTER_PARAMETER],
    responses=responses({200: json_response(QUARTER_STATUS, "The quarter's status")}, *BEARER_PROBLEMS, 404),
)
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
    responses=responses(
        {
            200: content_response(
                {"application/json": MATCH_VIEW, "text/csv": {"type": "string"}},
                "The caller's view of the latest match; its records as CSV on `Accept: text/csv`",
            )
        },
        *BEARER_PROBLEMS, *AUDITED_PROBLEMS, 404,
    ),
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
    responses=responses(
        {200: json_response(QUARTER_COUNTS, "Counts of the caller's latest list")}, *BEARER_PROBLEMS, 404
    ),
)
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
