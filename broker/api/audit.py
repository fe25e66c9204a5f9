"""The audit log's public face: checkpoints, verifier key, proofs; entries for officers."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask_smorest import Blueprint
from sqlalchemy import select

from audit.checkpoint import open_note
from broker.app.answers import Answer, count, moment
from broker.app.errors import BadRequest, NotFound
from broker.app.extensions import db
from broker.app.problems import TEXT_ANSWER, VERSION, problems
from broker.auditing import step as auditing
from broker.auditing.store import consistency_proof, inclusion_proof, latest_checkpoint, log_size
from broker.models import AuditEntryRow

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="Tamper-evident audit log")
register_blp = Blueprint("register", __name__, url_prefix="/api/v1/register", description="AVG art. 30 register")


INTEGER = re.compile(r"^-?[0-9]+$")
F = ma.fields


def _hash(**kwargs: Any) -> ma.fields.String:
    """A SHA-256 hash as lowercase hex."""
    return F.String(metadata={"pattern": "^[0-9a-f]{64}$"}, **kwargs)


def _size(**kwargs: Any) -> ma.fields.Integer:
    """A size of the log's tree (a tree has at least one entry)."""
    return F.Integer(metadata={"minimum": 1}, **kwargs)


class CheckpointSchema(Answer):
    origin = F.String(required=True)
    tree_size = _size(required=True)
    root_hash = _hash(required=True)
    note = F.String(required=True, metadata={"description": "The signed note (C2SP tlog-checkpoint)."})
    signed_at = moment(required=True)


class VerifierKeySchema(Answer):
    origin = F.String(required=True)
    verifier_key = F.String(required=True)


class InclusionProofSchema(Answer):
    index = count(required=True)
    tree_size = _size(required=True)
    leaf_hash = _hash(required=True)
    proof = F.List(_hash(), required=True)


class ConsistencyProofSchema(Answer):
    # `from` is a Python keyword: the key is named apart from the attribute.
    old_size = _size(required=True, data_key="from", attribute="from")
    to = _size(required=True)
    proof = F.List(_hash(), required=True)


class ProcessingActivitySchema(Answer):
    id = F.String(required=True, metadata={"description": "The activity's URI, as audit entries name it."})
    scope = F.String(required=True)
    activity = F.String(required=True)
    version = F.String(required=True)
    digest = F.String(required=True)


class RegisterSchema(Answer):
    activities = F.List(F.Nested(ProcessingActivitySchema), required=True)


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
@blp.doc(responses={**problems(404), 200: TEXT_ANSWER})
@blp.response(
    200, CheckpointSchema, description="The latest checkpoint; JSON on `Accept: application/json`", headers=VERSION
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
@blp.doc(responses={200: TEXT_ANSWER})
@blp.response(
    200, VerifierKeySchema, description="The verifier key; JSON on `Accept: application/json`", headers=VERSION
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
    responses=problems(400, 404),
)
@blp.response(200, InclusionProofSchema, description="The inclusion proof", headers=VERSION)
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
    responses=problems(400, 404),
)
@blp.response(200, ConsistencyProofSchema, description="The consistency proof", headers=VERSION)
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
@register_blp.response(200, RegisterSchema, description="The processing activities", headers=VERSION)
def get_register() -> dict[str, Any]:
    """Return the register of processing activities (AVG art. 30) the audit log refers to."""
    return {"activities": [a.as_dict() for a in auditing.register().activities]}
