"""What the broker routed to the caller's party."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from broker import runtime
from broker.auditing import commit_audited, request_recorder
from broker.auth import current_caller, require_token
from broker.csvio import render_records
from broker.extensions import db
from broker.services import delivery as deliveries

blp = Blueprint("deliveries", __name__, url_prefix="/api/v1/deliveries", description="Fetch and acknowledge deliveries")


@blp.route("")
@blp.doc(
    security=[{"bearerAuth": []}],
    parameters=[
        {"name": "convenant", "in": "query", "schema": {"type": "string"}},
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["all", "open"]}},
    ],
)
@require_token
def list_deliveries() -> dict[str, Any]:
    """List the deliveries addressed to the caller's party, newest first."""
    convenant_id = request.args.get("convenant")
    if convenant_id is not None and convenant_id not in runtime.convenants():
        return {"deliveries": []}
    rows = deliveries.list_deliveries(
        db.session,
        current_caller().party_id,
        convenant_id=convenant_id,
        unacked_only=request.args.get("status") == "open",
    )
    return {"deliveries": [deliveries.delivery_summary(d) for d in rows]}


@blp.route("/<delivery_id>")
@blp.doc(
    security=[{"bearerAuth": []}],
    responses={"200": {"content": {"application/json": {}, "text/csv": {}}}},
)
@require_token
def get_delivery(delivery_id: str) -> Any:
    """Return a delivery with its decrypted records, as JSON or (Accept: text/csv) CSV."""
    session = db.session
    caller = current_caller()
    delivery = deliveries.get_own_delivery(session, caller.party_id, delivery_id)
    recorder = request_recorder(caller.actor)
    records = deliveries.fetch_for_recipient(session, runtime.keyring(), delivery, recorder, runtime.now())
    commit_audited(session, recorder)
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"], default="application/json")
    if best == "text/csv":
        convenant = runtime.get_convenant(delivery.convenant_id)
        return Response(
            "".join(render_records(records, convenant)),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="levering-{delivery.id}.csv"'},
        )
    return {**deliveries.delivery_summary(delivery), "records": records}


@blp.route("/<delivery_id>/ack", methods=["POST"])
@blp.doc(security=[{"bearerAuth": []}])
@require_token
def ack_delivery(delivery_id: str) -> dict[str, Any]:
    """Acknowledge that the caller's party has received a delivery."""
    session = db.session
    caller = current_caller()
    delivery = deliveries.get_own_delivery(session, caller.party_id, delivery_id)
    first = deliveries.acknowledge(delivery, runtime.now())
    recorder = request_recorder(caller.actor)
    recorder.add(
        "delivery.acked",
        deliveries.delivery_activity(delivery),
        root=True,
        parties=[delivery.sender_party_id],
        convenant_id=delivery.convenant_id,
        attributes={"delivery_id": delivery.id, "first_ack": first},
    )
    commit_audited(session, recorder)
    return deliveries.delivery_summary(delivery)
