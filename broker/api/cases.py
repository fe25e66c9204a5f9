"""After a case was sent: end it, or correct its records."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from broker import idempotency, runtime
from broker.api.submissions import ACCEPTED, IDEMPOTENCY_PARAMETER, record_replay
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
from broker.auditing import Recorder, audited_step
from broker.auth import current_caller, require_token
from broker.errors import BadRequest, BrokerError, UnsupportedMediaType
from broker.extensions import db
from broker.services import lifecycle
from broker.services.submission import audit_rejection, member_party
from schemas.validation import reported_name

blp = Blueprint("cases", __name__, url_prefix="/api/v1/convenants", description="End cases and correct records")

ENDING_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["bsn", "reason"],
                "additionalProperties": False,
                "properties": {
                    "bsn": {"type": "string", "pattern": "^[0-9]{9}$"},
                    "reason": {"type": "string", "description": "The id or code letter of a convenant ending reason."},
                },
            }
        }
    },
}

CORRECTION_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["records"],
                "additionalProperties": False,
                "properties": {"records": {"type": "array", "items": {"type": "object"}}},
            }
        }
    },
}

# Both endpoints: the token checks, the convenant (404), the JSON body, its validation, the audit write.
PROBLEMS = (*BEARER_PROBLEMS, *BODY_PROBLEMS, *AUDITED_PROBLEMS, 404, 422)
ENDED = component(
    "CaseEnded",
    {
        "type": "object",
        "required": ["ending_id", "convenant_id", "reason", "reason_code", "reason_text", "ended_at", "notified",
                     "purged"],
        "properties": {
            "ending_id": {"type": "string", "format": "uuid"},
            "convenant_id": {"type": "string"},
            "reason": {"type": "string"},
            "reason_code": {"type": "string"},
            "reason_text": {"type": "string"},
            "ended_at": {"type": "string", "format": "date-time"},
            "notified": {"type": "array", "items": {"type": "string"}, "description": "The parties given notice."},
            "purged": {"type": "integer", "minimum": 0},
        },
    },
)
CORRECTED = component(
    "CorrectionAccepted",
    {
        "allOf": [
            ACCEPTED,
            {
                "type": "object",
                "required": ["corrects"],
                "properties": {
                    "corrects": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Per record, the version it replaces (`<submission_id>/<seq>`).",
                    }
                },
            },
        ]
    },
)


def _json_body(allowed: set[str]) -> dict[str, Any]:
    mimetype = request.mimetype
    if not (mimetype == "application/json" or mimetype.endswith("+json")):
        raise UnsupportedMediaType("Stuur het verzoek als application/json.")
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("De body is geen geldig JSON-object.")
    unknown = [(n, key) for n, key in enumerate(body, 1) if key not in allowed]
    if unknown:
        raise BadRequest(
            "Onbekende velden in het verzoek.",
            errors=[
                {"record": None, "field": reported_name(key, n), "code": "not_allowed", "message": "Onbekend veld."}
                for n, key in unknown
            ],
        )
    return body


@blp.route("/<convenant_id>/endings", methods=["POST"])
@blp.doc(
    security=SECURITY,
    requestBody=ENDING_BODY,
    responses=responses({201: json_response(ENDED, "Ended; the other parties get an end notice")}, *PROBLEMS),
)
@require_token
def create_ending(convenant_id: str) -> tuple[dict[str, Any], int]:
    """End the caller's case about a pupil: the other parties get an end notice, the broker forgets the pupil."""
    caller = current_caller()
    convenant = runtime.get_convenant(convenant_id)
    session = db.session
    keyring = runtime.keyring()

    def refused(recorder: Recorder, refusal: BrokerError) -> None:
        lifecycle.audit_end_rejection(recorder, convenant, refusal)

    with audited_step(session, caller.actor, on_refusal=refused) as step:
        member_party(convenant, caller.party_id)
        body = _json_body({"bsn", "reason"})
        ended = lifecycle.end_case(
            session,
            keyring,
            convenant,
            step.recorder,
            party_id=caller.party_id,
            client_id=caller.client_id,
            bsn=body.get("bsn"),
            reason=body.get("reason"),
            now=step.now,
        )
    keyring.sweep_vault()  # the purged keys' shares go once the purge is committed
    return ended.as_dict(), 201


@blp.route("/<convenant_id>/corrections", methods=["POST"])
@blp.doc(
    security=SECURITY,
    requestBody=CORRECTION_BODY,
    parameters=[IDEMPOTENCY_PARAMETER],
    responses=responses({201: json_response(CORRECTED, "Stored and delivered to earlier recipients")}, *PROBLEMS, 409),
)
@require_token
def create_correction(convenant_id: str) -> tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]:
    """Correct records the caller's party sent; every recipient of an earlier version gets the correction."""
    caller = current_caller()
    convenant = runtime.get_convenant(convenant_id)
    session = db.session

    def refused(recorder: Recorder, refusal: BrokerError) -> None:
        audit_rejection(recorder, convenant, lifecycle.CORRECTION, refusal)

    with audited_step(session, caller.actor, on_refusal=refused) as step:
        member_party(convenant, caller.party_id)
        claim = idempotency.lookup(session, caller.party_id, step.now)
        if isinstance(claim, idempotency.Replay):
            record_replay(step, convenant, claim)
            return claim.response()
        body = _json_body({"records"})
        corrected = lifecycle.correct(
            session,
            runtime.keyring(),
            convenant,
            runtime.validator(convenant),
            party_id=caller.party_id,
            client_id=caller.client_id,
            records=body.get("records"),
            now=step.now,
            today=runtime.today(),
        )
        idempotency.reserve(session, claim, corrected.accepted.submission.id, step.now)
        summary = lifecycle.audit_correction(step.recorder, convenant, corrected)
    committed = step.committed
    assert committed is not None
    response = corrected.as_dict()
    response["receipt"] = receipt_for(session, committed.sealed[summary], committed.checkpoint)
    idempotency.remember(session, claim, response, 201)
    return response, 201
