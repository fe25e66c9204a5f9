"""What the broker routed to the caller's party."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from broker.app import runtime
from broker.app.csvio import csv_response, render_records
from broker.app.errors import BadRequest
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
from broker.parties.oauth import current_caller, require_token

blp = Blueprint("deliveries", __name__, url_prefix="/api/v1/deliveries", description="Fetch and acknowledge deliveries")

STATUSES = ("all", "open")
MOMENT = {"type": "string", "format": "date-time"}
SUMMARY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "format": "uuid"},
    "delivery_id": {"type": "string", "format": "uuid"},
    "convenant_id": {"type": "string"},
    "kind": {"type": "string"},
    "sender": {"type": "string"},
    "recipient": {"type": "string"},
    "records": {"type": "integer", "minimum": 0},
    "created_at": MOMENT,
    "fetched_at": {**MOMENT, "nullable": True},
    "acked_at": {**MOMENT, "nullable": True},
    "summary": {"type": "object", "nullable": True, "description": "What a match delivery is about (counts)."},
}
SUMMARY_REQUIRED = list(SUMMARY_PROPERTIES)
DELIVERY_SUMMARY = component(
    "DeliverySummary", {"type": "object", "required": SUMMARY_REQUIRED, "properties": SUMMARY_PROPERTIES}
)
DELIVERY_LIST = component(
    "DeliveryList",
    {
        "type": "object",
        "required": ["deliveries"],
        "properties": {"deliveries": {"type": "array", "items": DELIVERY_SUMMARY}},
    },
)
DELIVERY = component(
    "Delivery",
    {
        "type": "object",
        "required": SUMMARY_REQUIRED,
        "properties": {
            **SUMMARY_PROPERTIES,
            "records": {"type": "array", "items": {"type": "object"}, "description": "The decrypted records."},
        },
    },
)


@blp.route("")
@blp.doc(
    security=SECURITY,
    parameters=[
        {"name": "convenant", "in": "query", "schema": {"type": "string"}},
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES), "default": "all"}},
    ],
    responses=responses({200: json_response(DELIVERY_LIST, "The deliveries, newest first")}, *BEARER_PROBLEMS),
)
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
    responses=responses(
        {
            200: content_response(
                {"application/json": DELIVERY, "text/csv": {"type": "string"}},
                "The delivery with its records; as CSV on `Accept: text/csv`",
            )
        },
        *BEARER_PROBLEMS, *AUDITED_PROBLEMS, 404,
    ),
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
    responses=responses(
        {200: json_response(DELIVERY_SUMMARY, "Acknowledged (again: nothing changes)")},
        *BEARER_PROBLEMS, *AUDITED_PROBLEMS, 404,
    ),
)
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
