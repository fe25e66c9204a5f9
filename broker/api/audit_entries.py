"""Audit entries for officers and parties: `GET /api/v1/audit/entries`.

Like the Logboek Dataverwerkingen read extension, a query must name a trace, a processing
activity or a data subject: the log is searched, never handed over whole. A party's bearer token
sees the entries its party took part in; a review session sees what its officer may see.
"""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from flask import request
from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from broker.app.answers import Answer, count
from broker.app.errors import BadRequest, Unauthorized
from broker.app.extensions import db
from broker.app.problems import AUDITED_PROBLEMS, BEARER_PROBLEMS, VERSION, problems
from broker.auditing.entries import (
    EntryFilter,
    Viewer,
    conditions,
    count_entries,
    decode,
    log_end,
    page_of_entries,
    record_review,
)
from broker.models import RegisterActivity
from broker.officers.sessions import current_officer, officer_viewer
from broker.parties.oauth import current_caller, require_token

blp = Blueprint(
    "audit_entries", __name__, url_prefix="/api/v1/audit", description="Audit entries for privacy officers"
)

FILTERS = ("trace_id", "processing_activity_id", "data_subject_id")
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 500
# Pages beyond this are refused: their offset would not fit the database's integers, nor the audit
# entry that records the query (RFC 8785 JSON allows integers up to 2**53 only).
MAX_PAGE = 1_000_000
DIGITS = re.compile(r"^[0-9]+$")
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")


@require_token
def _token_viewer() -> Viewer:
    caller = current_caller()
    return Viewer(actor=caller.actor, party=caller.party_id)


def _viewer() -> Viewer:
    """A bearer token if one is sent (and then it must be valid), else the officer's session."""
    if request.headers.get("Authorization"):
        return _token_viewer()
    officer = current_officer()
    if officer is None:
        raise Unauthorized("Stuur een Bearer-toegangstoken of log in als privacy officer.")
    return officer_viewer(officer)


def _positive_int(name: str, default: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    refusal = BadRequest(f"{name} moet een geheel getal zijn.")
    # ASCII digits only: int() also reads "٣", " 3" and "3_0".
    if not DIGITS.match(raw):
        raise refusal
    try:
        value = int(raw)
    except ValueError:  # more digits than Python converts (4300)
        raise refusal from None
    if value < 1 or (maximum is not None and value > maximum):
        limit = f" en hoogstens {maximum}" if maximum else ""
        raise BadRequest(f"{name} moet minstens 1{limit} zijn.")
    return value


def _check_filters(session: Session, values: dict[str, str]) -> None:
    """Refuse malformed filters; none is echoed, and none but a pseudonym reaches the audit log."""
    if values["trace_id"] and not TRACE_ID.match(values["trace_id"]):
        raise BadRequest("trace_id bestaat uit 32 kleine hexadecimale tekens.")
    if values["data_subject_id"] and not PSEUDONYM.match(values["data_subject_id"]):
        raise BadRequest(
            "data_subject_id is het pseudoniem van een betrokkene (64 hexadecimale tekens), nooit een BSN."
        )
    activity = values["processing_activity_id"]
    # A NUL never names an activity, and PostgreSQL refuses to compare a string that holds one.
    if activity and ("\x00" in activity or session.get(RegisterActivity, activity) is None):
        raise BadRequest("processing_activity_id staat niet in het verwerkingsregister (GET /api/v1/register).")


PARAMETERS = [
    # An empty filter counts as not given.
    {"name": "trace_id", "in": "query", "schema": {"type": "string", "pattern": "^([0-9a-f]{32})?$"}},
    {"name": "processing_activity_id", "in": "query", "schema": {"type": "string"},
     "description": "The URI of an activity of the register (GET /api/v1/register)."},
    {"name": "data_subject_id", "in": "query", "schema": {"type": "string", "pattern": "^([0-9a-f]{64})?$"},
     "description": "The subject's pseudonym in a convenant (never a BSN)."},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}},
    {"name": "per_page", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE}},
]


class AuditEntrySchema(Answer):
    """An audit entry as sealed (its keys are the entry's own), with its index in the log."""

    class Meta(Answer.Meta):
        description = "The entry as sealed, with its index in the log."

    index = count(required=True)


class AuditEntryPageSchema(Answer):
    entries = ma.fields.List(ma.fields.Nested(AuditEntrySchema), required=True)
    page = ma.fields.Integer(required=True, metadata={"minimum": 1})
    per_page = ma.fields.Integer(required=True, metadata={"minimum": 1, "maximum": MAX_PER_PAGE})
    total = count(required=True)
    next = ma.fields.Integer(required=True, allow_none=True, metadata={"minimum": 2})


@blp.route("/entries")
@blp.doc(
    # A bearer token, or (no security requirement) the session of a privacy officer of the review UI.
    security=[{"bearerAuth": []}, {}],
    parameters=PARAMETERS,
    responses=problems(*BEARER_PROBLEMS, *AUDITED_PROBLEMS),
)
@blp.response(200, AuditEntryPageSchema, description="A page of entries, newest first", headers=VERSION)
def list_entries() -> dict[str, Any]:
    """List audit entries by trace, processing activity or data subject, newest first."""
    viewer = _viewer()
    values = {name: request.args.get(name, "").strip() for name in FILTERS}
    if not any(values.values()):
        raise BadRequest(
            "Geef minstens één filter: trace_id, processing_activity_id of data_subject_id.",
            errors=[{"record": None, "field": name, "code": "filter_required",
                     "message": "Eén van deze filters is verplicht."} for name in FILTERS],
        )
    session = db.session
    _check_filters(session, values)
    page = _positive_int("page", 1, MAX_PAGE)
    per_page = _positive_int("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    entry_filter = EntryFilter(
        trace_id=values["trace_id"] or None,
        processing_activity_id=values["processing_activity_id"] or None,
        subjects=(values["data_subject_id"],) if values["data_subject_id"] else None,
        before=log_end(session),
    )
    where = conditions(entry_filter, viewer)
    total = count_entries(session, where)
    rows = page_of_entries(session, where, page, per_page)
    entries = [{**decode(row), "index": row.idx} for row in rows]
    record_review(
        session, viewer, "review.entries_queried",
        {**entry_filter.attributes(), "page": page, "per_page": per_page, "total": total},
        {None: values["data_subject_id"]} if values["data_subject_id"] else None,
    )
    return {
        "entries": entries,
        "page": page,
        "per_page": per_page,
        "total": total,
        "next": page + 1 if page * per_page < total else None,
    }
