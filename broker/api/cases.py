"""After a case was sent: end it, or correct its records."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from broker.api.field_docs import Passed
from broker.api.record_schemas import Records
from broker.api.submissions import IDEMPOTENCY_PARAMETER, SubmissionAcceptedSchema, record_replay
from broker.app import runtime
from broker.app.answers import Answer, count, moment, uuid
from broker.app.body_parser import ApiBlueprint, Body
from broker.app.errors import BrokerError
from broker.app.extensions import db
from broker.app.inputs import EnvelopeSchema
from broker.app.problems import (
    AUDITED_PROBLEMS,
    BEARER_PROBLEMS,
    BODY_PROBLEMS,
    SECURITY,
    VERSION,
    problems,
)
from broker.auditing.step import Recorder, audited_step
from broker.auditing.store import receipt_for
from broker.exchange import idempotency
from broker.exchange.recording import audit_rejection
from broker.exchange.submission import member_party
from broker.parties.oauth import current_caller, require_token
from broker.rights import corrections, endings

blp = ApiBlueprint("cases", __name__, url_prefix="/api/v1/convenants", description="End cases and correct records")

class EndingSchema(EnvelopeSchema):
    """A request to end a case: the pupil's BSN and an ending reason of the convenant.

    Only its keys are checked here; the BSN and the reason by `endings.end_case` in the audited
    step (a wrong one is a 422 there, and audited as a refused ending).
    """

    bsn = Passed(metadata={"service_required": True, "type": "string", "pattern": "^[0-9]{9}$"})
    reason = Passed(
        metadata={
            "service_required": True,
            "type": "string",
            "description": "The id or code letter of a convenant ending reason.",
        }
    )


class RecordCorrectionSchema(EnvelopeSchema):
    """Corrected records; the convenant's `RecordValidator` checks them in the audited step."""

    records = Records()


# Both endpoints: the token checks, the convenant (404), the JSON body, its validation, the audit write.
PROBLEMS = (*BEARER_PROBLEMS, *BODY_PROBLEMS, *AUDITED_PROBLEMS, 404, 422)


class CaseEndedSchema(Answer):
    ending_id = uuid(required=True)
    convenant_id = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)
    reason_code = ma.fields.String(required=True)
    reason_text = ma.fields.String(required=True)
    ended_at = moment(required=True)
    notified = ma.fields.List(
        ma.fields.String(), required=True, metadata={"description": "The parties given notice."}
    )
    purged = count(required=True)


class CorrectionAcceptedSchema(SubmissionAcceptedSchema):
    corrects = ma.fields.List(
        ma.fields.String(),
        required=True,
        metadata={"description": "Per record, the version it replaces (`<submission_id>/<seq>`)."},
    )


@blp.route("/<convenant_id>/endings", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=problems(*PROBLEMS),
)
@blp.response(201, CaseEndedSchema, description="Ended; the other parties get an end notice", headers=VERSION)
@require_token
@blp.arguments(EndingSchema, deferred=True)
def create_ending(request: Body, convenant_id: str) -> tuple[dict[str, Any], int]:
    """End the caller's case about a pupil: the other parties get an end notice, the broker forgets the pupil."""
    caller = current_caller()
    convenant = runtime.get_convenant(convenant_id)
    session = db.session
    keyring = runtime.keyring()

    def refused(recorder: Recorder, refusal: BrokerError) -> None:
        endings.audit_end_rejection(recorder, convenant, refusal)

    with audited_step(session, caller.actor, on_refusal=refused) as step:
        member_party(convenant, caller.party_id)
        body = request.load()
        ended = endings.end_case(
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
    parameters=[IDEMPOTENCY_PARAMETER],
    responses=problems(*PROBLEMS, 409),
)
@blp.response(
    201, CorrectionAcceptedSchema, description="Stored and delivered to earlier recipients", headers=VERSION
)
@require_token
@blp.arguments(RecordCorrectionSchema, deferred=True)
def create_correction(
    request: Body, convenant_id: str
) -> tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]:
    """Correct records the caller's party sent; every recipient of an earlier version gets the correction."""
    caller = current_caller()
    convenant = runtime.get_convenant(convenant_id)
    session = db.session

    def refused(recorder: Recorder, refusal: BrokerError) -> None:
        audit_rejection(recorder, convenant, corrections.CORRECTION, refusal)

    with audited_step(session, caller.actor, on_refusal=refused) as step:
        member_party(convenant, caller.party_id)
        claim = idempotency.lookup(session, caller.party_id, step.now)
        if isinstance(claim, idempotency.Replay):
            record_replay(step, convenant, claim)
            return claim.response()
        body = request.load()
        corrected = corrections.correct(
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
        summary = corrections.audit_correction(step.recorder, convenant, corrected)
    committed = step.committed
    assert committed is not None
    response = corrected.as_dict()
    response["receipt"] = receipt_for(session, committed.sealed[summary], committed.checkpoint)
    idempotency.remember(session, claim, response, 201)
    return response, 201
