"""The audit log's public face: checkpoints, verifier key, proofs; entries for officers."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, request
from flask_smorest import Blueprint
from sqlalchemy import select

from audit.checkpoint import open_note
from broker.app.errors import BadRequest, NotFound
from broker.app.extensions import db
from broker.app.problems import component, content_response, json_response, responses
from broker.auditing import step as auditing
from broker.auditing.store import consistency_proof, inclusion_proof, latest_checkpoint, log_size
from broker.models import AuditEntryRow

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="Tamper-evident audit log")
register_blp = Blueprint("register", __name__, url_prefix="/api/v1/register", description="AVG art. 30 register")


INTEGER = re.compile(r"^-?[0-9]+$")
HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
CHECKPOINT = component(
    "Checkpoint",
    {
        "type": "object",
        "required": ["origin", "tree_size", "root_hash", "note", "signed_at"],
        "properties": {
            "origin": {"type": "string"},
            "tree_size": {"type": "integer", "minimum": 1},
            "root_hash": HASH,
            "note": {"type": "string", "description": "The signed note (C2SP tlog-checkpoint)."},
            "signed_at": {"type": "string", "format": "date-time"},
        },
    },
)
VERIFIER_KEY = component(
    "VerifierKey",
    {
        "type": "object",
        "required": ["origin", "verifier_key"],
        "properties": {"origin": {"type": "string"}, "verifier_key": {"type": "string"}},
    },
)
INCLUSION_PROOF = component(
    "InclusionProof",
    {
        "type": "object",
        "required": ["index", "tree_size", "leaf_hash", "proof"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "tree_size": {"type": "integer", "minimum": 1},
            "leaf_hash": HASH,
            "proof": {"type": "array", "items": HASH},
        },
    },
)
CONSISTENCY_PROOF = component(
    "ConsistencyProof",
    {
        "type": "object",
        "required": ["from", "to", "proof"],
        "properties": {
            "from": {"type": "integer", "minimum": 1},
            "to": {"type": "integer", "minimum": 1},
            "proof": {"type": "array", "items": HASH},
        },
    },
)
REGISTER = component(
    "Register",
    {
        "type": "object",
        "required": ["activities"],
        "properties": {
            "activities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "scope", "activity", "version", "digest"],
                    "properties": {
                        "id": {"type": "string", "description": "The activity's URI, as audit entries name it."},
                        "scope": {"type": "string"},
                        "activity": {"type": "string"},
                        "version": {"type": "string"},
                        "digest": {"type": "string"},
                    },
                },
            }
        },
    },
)


def _wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/plain", "application/json"]) == "application/json"


def _int_arg(name: str, default: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None and default is not None:
        return default
    refusal = BadRequest(f"{name} moet een geheel getal zijn.")
    # ASCII digits only: int() also reads "٣", " 3" and "3_0".
    if raw is None or not INTEGER.match(raw):
        raise refusal
    try:
        value = int(raw)
    except ValueError:  # more digits than Python converts (4300)
        raise refusal from None
    if value < 0:
        raise BadRequest(f"{name} mag niet negatief zijn.")
    return value


@blp.route("/checkpoint")
@blp.doc(
    responses=responses(
        {
            200: content_response(
                {"text/plain": {"type": "string"}, "application/json": CHECKPOINT},
                "The latest checkpoint; JSON on `Accept: application/json`",
            )
        },
        404,
    )
)
def get_checkpoint() -> Any:
    """Return the latest signed checkpoint (C2SP tlog-checkpoint note; JSON on request)."""
    checkpoint = latest_checkpoint(db.session)
    if checkpoint is None:
        raise NotFound("Er is nog geen checkpoint getekend.")
    if _wants_json():
        parsed = open_note(checkpoint.note, auditing.checkpoint_signer().verifier_key)
        return {
            "origin": parsed.origin,
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash.hex(),
            "note": checkpoint.note,
            "signed_at": checkpoint.signed_at.isoformat(),
        }
    return Response(checkpoint.note, mimetype="text/plain")


@blp.route("/key")
@blp.doc(
    responses=responses(
        {
            200: content_response(
                {"text/plain": {"type": "string"}, "application/json": VERIFIER_KEY},
                "The verifier key; JSON on `Accept: application/json`",
            )
        }
    )
)
def get_key() -> Any:
    """Return the checkpoint verifier key (C2SP signed-note verifier key; JSON on request)."""
    signer = auditing.checkpoint_signer()
    if _wants_json():
        return {"origin": signer.origin, "verifier_key": signer.verifier_key}
    return Response(signer.verifier_key + "\n", mimetype="text/plain")


@blp.route("/entries/<int:index>/proof")
@blp.doc(
    parameters=[{"name": "tree_size", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
    responses=responses({200: json_response(INCLUSION_PROOF, "The inclusion proof")}, 400, 404),
)
def get_inclusion_proof(index: int) -> dict[str, Any]:
    """Return the inclusion proof of entry `index` in the tree of the latest (or given) size."""
    session = db.session
    latest = latest_checkpoint(session)
    size = _int_arg("tree_size", latest.tree_size if latest else log_size(session))
    if size > log_size(session) or not 0 <= index < size:
        raise NotFound("Dit entry valt niet binnen een boom van deze grootte.")
    leaf = session.scalar(select(AuditEntryRow.leaf_hash).where(AuditEntryRow.idx == index))
    assert leaf is not None
    proof = inclusion_proof(session, index, size)
    return {"index": index, "tree_size": size, "leaf_hash": leaf.hex(), "proof": [p.hex() for p in proof]}


@blp.route("/consistency")
@blp.doc(
    parameters=[
        {"name": "from", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}},
        {"name": "to", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}},
    ],
    responses=responses({200: json_response(CONSISTENCY_PROOF, "The consistency proof")}, 400, 404),
)
def get_consistency_proof() -> dict[str, Any]:
    """Return the consistency proof between two tree sizes (RFC 9162 §2.1.4)."""
    old, new = _int_arg("from"), _int_arg("to")
    if not 0 < old <= new:
        raise BadRequest("Vraag een bewijs tussen 0 < from <= to.")
    if new > log_size(db.session):
        raise NotFound("Het logboek is kleiner dan `to`.")
    proof = consistency_proof(db.session, old, new)
    return {"from": old, "to": new, "proof": [p.hex() for p in proof]}


@register_blp.route("")
@register_blp.doc(responses=responses({200: json_response(REGISTER, "The processing activities")}))
def get_register() -> dict[str, Any]:
    """Return the register of processing activities (AVG art. 30) the audit log refers to."""
    return {"activities": [a.as_dict() for a in auditing.register().activities]}
