"""Submissions of cases and quarterly lists."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from broker import idempotency, runtime
from broker.api_base import (
    AUDITED_PROBLEMS,
    BEARER_PROBLEMS,
    BODY_PROBLEMS,
    SECURITY,
    component,
    json_body,
    json_response,
    responses,
)
from broker.audit_log import receipt_for
from broker.auditing import Recorder, Step, audited_step
from broker.auth import current_caller, require_token
from broker.csvio import parse_records
from broker.errors import BadRequest, BrokerError, UnsupportedMediaType
from broker.extensions import db
from broker.services.matching import run_after_list
from broker.services.submission import activity_for, audit_acceptance, audit_rejection, member_party, submit
from schemas.convenant import Convenant
from schemas.validation import reported_name

blp = Blueprint(
    "submissions", __name__, url_prefix="/api/v1/convenants", description="Submit cases and quarterly lists"
)

SUBMISSION_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["kind", "records"],
                "additionalProperties": False,
                "properties": {
                    "kind": {"type": "string", "enum": ["case", "quarterly_list"]},
                    "quarter": {"type": "string", "pattern": "^[0-9]{4}-Q[1-4]$"},
                    "records": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    },
}
IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "A key of your own (1-255 ASCII characters) for this submission: a repeat with the same key and body "
        "gets the first answer (with `Idempotent-Replayed: true`) and stores nothing again; the same key with "
        "another body is 422. Kept for 24 hours."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 257},
}
REPLAY = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
CSV_PARAMETERS = [
    IDEMPOTENCY_PARAMETER,
    {
        "name": "kind",
        "in": "query",
        "description": "With a text/csv body: what the CSV is. A JSON body names it in the body.",
        "schema": {"type": "string", "enum": ["case", "quarterly_list"]},
    },
    {
        "name": "quarter",
        "in": "query",
        "description": "With a text/csv body: the quarter of a quarterly list.",
        "schema": {"type": "string", "pattern": "^[0-9]{4}-Q[1-4]$"},
    },
]
RECEIPT = component(
    "Receipt",
    {
        "type": "object",
        "description": "Proof that the audit entry of the step is in the log signed by `checkpoint`.",
        "required": ["index", "leaf_hash", "tree_size", "checkpoint", "inclusion_proof"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "leaf_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "tree_size": {"type": "integer", "minimum": 1},
            "checkpoint": {"type": "string", "description": "The signed checkpoint note (C2SP tlog-checkpoint)."},
            "inclusion_proof": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        },
    },
)
ACCEPTED = component(
    "SubmissionAccepted",
    {
        "type": "object",
        "required": [
            "submission_id", "convenant_id", "kind", "quarter", "accepted", "received_at", "deliveries",
            "restricted", "duplicates", "receipt",
        ],
        "properties": {
            "submission_id": {"type": "string", "format": "uuid"},
            "convenant_id": {"type": "string"},
            "kind": {"type": "string"},
            "quarter": {"type": "string", "nullable": True},
            "accepted": {"type": "integer", "minimum": 0, "description": "The number of records stored."},
            "received_at": {"type": "string", "format": "date-time"},
            "deliveries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["delivery_id", "recipient", "records"],
                    "properties": {
                        "delivery_id": {"type": "string", "format": "uuid"},
                        "recipient": {"type": "string"},
                        "records": {"type": "integer", "minimum": 0},
                    },
                },
            },
            "restricted": {
                "type": "integer",
                "minimum": 0,
                "description": "Records your own restriction keeps at the broker: stored, not routed.",
            },
            "duplicates": {
                "type": "array",
                "description": "Records not delivered again: unchanged since they last went to that recipient.",
                "items": {
                    "type": "object",
                    "required": ["record", "recipient"],
                    "properties": {"record": {"type": "integer", "minimum": 0}, "recipient": {"type": "string"}},
                },
            },
            "receipt": RECEIPT,
        },
    },
)


def _read_body(convenant: Any) -> tuple[Any, Any, Any, list[int] | None]:
    mimetype = request.mimetype
    if mimetype == "text/csv":
        try:
            text = request.get_data(cache=False).decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRequest("CSV moet in UTF-8 zijn gecodeerd.") from e
        records, lines = parse_records(text, convenant)
        return request.args.get("kind"), request.args.get("quarter"), records, lines
    if mimetype == "application/json" or mimetype.endswith("+json"):
        body = json_body()
        if not isinstance(body, dict):
            raise BadRequest("De body is geen geldig JSON-object.")
        unknown = [(n, key) for n, key in enumerate(body, 1) if key not in {"kind", "quarter", "records"}]
        if unknown:
            raise BadRequest(
                "Onbekende velden in de aanlevering.",
                errors=[
                    {"record": None, "field": reported_name(key, n), "code": "not_allowed", "message": "Onbekend veld."}
                    for n, key in unknown
                ],
            )
        return body.get("kind"), body.get("quarter"), body.get("records"), None
    raise UnsupportedMediaType("Lever aan als application/json of text/csv.")


@blp.route("/<convenant_id>/submissions", methods=["POST"])
@blp.doc(
    security=SECURITY,
    requestBody=SUBMISSION_BODY,
    parameters=CSV_PARAMETERS,
    responses=responses(
        {201: json_response(ACCEPTED, "Stored whole and routed (a repeated key: the first answer)", REPLAY)},
        *BEARER_PROBLEMS, *BODY_PROBLEMS, *AUDITED_PROBLEMS, 404, 409, 422,
    ),
)
@require_token
def create_submission(convenant_id: str) -> tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]:
    """Submit cases or a quarterly list; validated whole, stored whole, routed."""
    caller = current_caller()
    convenant = runtime.get_convenant(convenant_id)
    session = db.session
    kind = None

    def refused(recorder: Recorder, refusal: BrokerError) -> None:
        audit_rejection(recorder, convenant, kind, refusal)

    with audited_step(session, caller.actor, on_refusal=refused) as step:
        member_party(convenant, caller.party_id)
        claim = idempotency.lookup(session, caller.party_id, step.now)
        if isinstance(claim, idempotency.Replay):
            record_replay(step, convenant, claim)
            return claim.response()
        kind, quarter, records, lines = _read_body(convenant)
        accepted = submit(
            session,
            runtime.keyring(),
            convenant,
            runtime.validator(convenant),
            party_id=caller.party_id,
            client_id=caller.client_id,
            kind=kind,
            quarter=quarter,
            records=records,
            now=step.now,
            today=runtime.today(),
            lines=lines,
        )
        idempotency.reserve(session, claim, accepted.submission.id, step.now)
        summary = audit_acceptance(step.recorder, convenant, accepted)
    committed = step.committed
    assert committed is not None
    body = accepted.as_dict()
    body["receipt"] = receipt_for(session, committed.sealed[summary], committed.checkpoint)
    idempotency.remember(session, claim, body, 201)
    if accepted.submission.kind == "quarterly_list":
        run_after_list(session, convenant, accepted.submission.quarter)
    return body, 201


def record_replay(step: Step, convenant: Convenant, stored: idempotency.Replay) -> None:
    """A repeat is answered with the first answer: audited, and nothing stored again."""
    step.record(
        "submission.replayed",
        activity_for(convenant, stored.body.get("kind")),
        root=True,
        convenant_id=convenant.id,
        attributes={"submission_id": stored.body.get("submission_id"), "http_status": stored.status},
    )
