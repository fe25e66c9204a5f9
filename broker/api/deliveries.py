"""What the broker routed to the caller's party."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask_smorest import Blueprint

from broker.app import runtime
from broker.app.answers import Answer, count, moment, uuid
from broker.app.csvio import csv_response, render_records
from broker.app.errors import BadRequest
from broker.app.extensions import db
from broker.app.problems import AUDITED_PROBLEMS, BEARER_PROBLEMS, CSV_ANSWER, SECURITY, VERSION, problems
from broker.auditing.step import audited_step
from broker.exchange import delivery as deliveries
from broker.parties.oauth import current_caller, require_token

blp = Blueprint("deliveries", __name__, url_prefix="/api/v1/deliveries", description="Fetch and acknowledge deliveries")

STATUSES = ("all", "open")
F = ma.fields


class _DeliveryFacts(Answer):
    """What a delivery's summary and the delivery itself both say (`delivery.delivery_summary`)."""

    id = uuid(required=True)
    delivery_id = uuid(required=True)
    convenant_id = F.String(required=True)
    kind = F.String(required=True)
    sender = F.String(required=True)
    recipient = F.String(required=True)
    created_at = moment(required=True)
    fetched_at = moment(required=True, allow_none=True)
    acked_at = moment(required=True, allow_none=True)
    summary = F.Dict(
        required=True, allow_none=True, metadata={"description": "What a match delivery is about (counts)."}
    )


class DeliverySummarySchema(_DeliveryFacts):
    records = count(required=True)


class DeliveryListSchema(Answer):
    deliveries = F.List(F.Nested(DeliverySummarySchema), required=True)


class DeliverySchema(_DeliveryFacts):
    records = F.List(F.Dict(), required=True, metadata={"description": "The decrypted records."})


@blp.route("")
@blp.doc(
    security=SECURITY,
    parameters=[
        {"name": "convenant", "in": "query", "schema": {"type": "string"}},
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES), "default": "all"}},
    ],
    responses=problems(*BEARER_PROBLEMS),
)
@blp.response(200, DeliveryListSchema, description="The deliveries, newest first", headers=VERSION)
@require_token
def list_deliveries() -> dict[str, Any]:
    """List the deliveries addressed to the caller's party, newest first."""
    status = request.args.get("status", "all")
    if status not in STATUSES:
        raise BadRequest(
            "status moet all of open zijn.",
            errors=[{"record": None, "field": "status", "code": "invalid_choice", "message": "Kies all of open."}],
        )
    convenant_id = request.args.get("convenant")
    if convenant_id is not None and convenant_id not in runtime.convenants():
        return {"deliveries": []}
    rows = deliveries.list_deliveries(
        db.session,
        current_caller().party_id,
        convenant_id=convenant_id,
        unacked_only=status == "open",
    )
    return {"deliveries": [deliveries.delivery_summary(d) for d in rows]}


@blp.route("/<delivery_id>")
@blp.doc(
    security=SECURITY,
    responses={**problems(*BEARER_PROBLEMS, *AUDITED_PROBLEMS, 404), 200: CSV_ANSWER},
)
@blp.response(
    200, DeliverySchema, description="The delivery with its records; as CSV on `Accept: text/csv`", headers=VERSION
)
@require_token
def get_delivery(delivery_id: str) -> Any:
    """Return a delivery with its decrypted records, as JSON or (Accept: text/csv) CSV."""
    session = db.session
    caller = current_caller()
    delivery = deliveries.get_own_delivery(session, caller.party_id, delivery_id)
    with audited_step(session, caller.actor) as step:
        records = deliveries.fetch_for_recipient(session, runtime.keyring(), delivery, step.recorder, step.now)
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"], default="application/json")
    if best == "text/csv":
        convenant = runtime.get_convenant(delivery.convenant_id)
        return csv_response(render_records(records, convenant), f"levering-{delivery.id}.csv")
    return {**deliveries.delivery_summary(delivery), "records": records}


@blp.route("/<delivery_id>/ack", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=problems(*BEARER_PROBLEMS, *AUDITED_PROBLEMS, 404),
)
@blp.response(200, DeliverySummarySchema, description="Acknowledged (again: nothing changes)", headers=VERSION)
@require_token
def ack_delivery(delivery_id: str) -> dict[str, Any]:
    """Acknowledge that the caller's party has received a delivery."""
    session = db.session
    caller = current_caller()
    delivery = deliveries.get_own_delivery(session, caller.party_id, delivery_id)
    with audited_step(session, caller.actor) as step:
        first = deliveries.acknowledge(delivery, step.now)
        step.record(
            "delivery.acked",
            deliveries.delivery_activity(delivery),
            root=True,
            parties=[delivery.sender_party_id],
            convenant_id=delivery.convenant_id,
            attributes={"delivery_id": delivery.id, "first_ack": first},
        )
    return deliveries.delivery_summary(delivery)
