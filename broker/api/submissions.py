"""Submissions of cases and quarterly lists."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request

from broker.api.field_docs import Passed
from broker.api.record_schemas import Records
from broker.app import runtime
from broker.app.answers import Answer, count, moment, uuid
from broker.app.body_parser import ApiBlueprint, Body
from broker.app.csvio import parse_records
from broker.app.errors import BadRequest, BrokerError
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
from broker.auditing.step import Recorder, Step, audited_step
from broker.auditing.store import receipt_for
from broker.exchange import idempotency
from broker.exchange.recording import activity_for, audit_acceptance, audit_rejection
from broker.exchange.submission import KINDS, QUARTER, member_party, submit
from broker.matching.match import run_after_list
from broker.parties.oauth import current_caller, require_token
from schemas.convenant import Convenant

blp = ApiBlueprint(
    "submissions", __name__, url_prefix="/api/v1/convenants", description="Submit cases and quarterly lists"
)

class SubmissionSchema(EnvelopeSchema):
    """A submission as JSON: what it is, the quarter of a quarterly list, and its records.

    Only its keys are checked here. `kind` and `quarter` are checked by `check_envelope`, the records
    by the convenant's `RecordValidator`, in the audited step, as for a CSV (whose kind and quarter
    come from the query): one rule for both, and a refusal is audited as one.
    """

    UNKNOWN_DETAIL = "Onbekende velden in de aanlevering."
    UNSUPPORTED = "Lever aan als application/json of text/csv."

    kind = Passed(metadata={"service_required": True, "type": "string", "enum": list(KINDS)})
    quarter = Passed(
        metadata={"type": "string", "pattern": QUARTER.pattern, "description": "The quarter of a quarterly list."}
    )
    records = Records()


# A CSV body cannot go through a JSON schema: it is read by broker/app/csvio.py against the convenant.
CSV_BODY = {"content": {"text/csv": {"schema": {"type": "string", "description": "One record a row (csvio)."}}}}
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


class ReceiptSchema(Answer):
    """Proof that the audit entry of the step is in the log signed by `checkpoint`."""

    index = count(required=True)
    leaf_hash = ma.fields.String(required=True, metadata={"pattern": "^[0-9a-f]{64}$"})
    tree_size = ma.fields.Integer(required=True, metadata={"minimum": 1})
    checkpoint = ma.fields.String(
        required=True, metadata={"description": "The signed checkpoint note (C2SP tlog-checkpoint)."}
    )
    inclusion_proof = ma.fields.List(ma.fields.String(metadata={"pattern": "^[0-9a-f]{64}$"}), required=True)


class DeliveredSchema(Answer):
    delivery_id = uuid(required=True)
    recipient = ma.fields.String(required=True)
    records = count(required=True)


class DuplicateSchema(Answer):
    record = count(required=True)
    recipient = ma.fields.String(required=True)


class SubmissionAcceptedSchema(Answer):
    submission_id = uuid(required=True)
    convenant_id = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    quarter = ma.fields.String(required=True, allow_none=True)
    accepted = count(required=True, metadata={"description": "The number of records stored."})
    received_at = moment(required=True)
    deliveries = ma.fields.List(ma.fields.Nested(DeliveredSchema), required=True)
    restricted = count(
        required=True, metadata={"description": "Records your own restriction keeps at the broker: stored, not routed."}
    )
    duplicates = ma.fields.List(
        ma.fields.Nested(DuplicateSchema),
        required=True,
        metadata={"description": "Records not delivered again: unchanged since they last went to that recipient."},
    )
    receipt = ma.fields.Nested(ReceiptSchema, required=True)


def _read_body(body: Body, convenant: Convenant) -> tuple[Any, Any, Any, list[int] | None]:
    if request.mimetype == "text/csv":
        try:
            text = request.get_data(cache=False).decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRequest("CSV moet in UTF-8 zijn gecodeerd.") from e
        records, lines = parse_records(text, convenant)
        return request.args.get("kind"), request.args.get("quarter"), records, lines
    data = body.load()
    return data.get("kind"), data.get("quarter"), data.get("records"), None


@blp.route("/<convenant_id>/submissions", methods=["POST"])
@blp.doc(
    security=SECURITY,
    requestBody=CSV_BODY,
    parameters=CSV_PARAMETERS,
    responses=problems(*BEARER_PROBLEMS, *BODY_PROBLEMS, *AUDITED_PROBLEMS, 404, 409, 422),
)
@blp.response(
    201,
    SubmissionAcceptedSchema,
    description="Stored whole and routed (a repeated key: the first answer)",
    headers={**VERSION, **REPLAY},
)
@require_token
@blp.arguments(SubmissionSchema, deferred=True)
def create_submission(
    body: Body, convenant_id: str
) -> tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]:
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
        kind, quarter, records, lines = _read_body(body, convenant)
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
    answer = accepted.as_dict()
    answer["receipt"] = receipt_for(session, committed.sealed[summary], committed.checkpoint)
    idempotency.remember(session, claim, answer, 201)
    if accepted.submission.kind == "quarterly_list":
        run_after_list(session, convenant, accepted.submission.quarter)
    return answer, 201


def record_replay(step: Step, convenant: Convenant, stored: idempotency.Replay) -> None:
    """A repeat is answered with the first answer: audited, and nothing stored again."""
    step.record(
        "submission.replayed",
        activity_for(convenant, stored.body.get("kind")),
        root=True,
        convenant_id=convenant.id,
        attributes={"submission_id": stored.body.get("submission_id"), "http_status": stored.status},
    )
