"""Data subjects' rights for parties: forward a request, restrict processing, erase (AVG art. 15-18).

A BSN arrives in the JSON body only, is pseudonymised at once and is never echoed in an answer or
an error. Each step is one `audited_step`: its changes and audit entries commit together.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from broker.app import runtime
from broker.app.answers import Answer, count, moment, uuid
from broker.app.body_parser import ApiBlueprint, Body
from broker.app.extensions import db
from broker.app.inputs import BodySchema, Moment, free_text
from broker.app.problems import (
    AUDITED_PROBLEMS,
    BEARER_PROBLEMS,
    BODY_PROBLEMS,
    SECURITY,
    VERSION,
    problems,
)
from broker.auditing.step import audited_step
from broker.exchange.submission import member_party
from broker.models import SubjectRestriction
from broker.parties.oauth import current_caller, require_token
from broker.rights import subjects as rights
from schemas.convenant import Convenant
from schemas.fields import Bsn, Choice

blp = ApiBlueprint(
    "rights", __name__, url_prefix="/api/v1/convenants", description="Data subjects' rights: forward, restrict, erase"
)

LONG_TEXT = 4000


# Every endpoint here: the token checks, the convenant must exist (404), the audit write; those
# with a body besides its size and its validation.
PROBLEMS = (*BEARER_PROBLEMS, *AUDITED_PROBLEMS, 404)
BODY_STEP_PROBLEMS = (*PROBLEMS, *BODY_PROBLEMS, 422)


class SubjectRequestRegisteredSchema(Answer):
    """The same answer whoever holds data about the pupil: the requester is not told who does."""

    request_id = uuid(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": list(rights.REQUEST_KINDS)})
    received_at = moment(required=True)
    registered_at = moment(required=True)
    detail = ma.fields.String(required=True)


class RestrictionSchema(Answer):
    restriction_id = uuid(required=True)
    started_at = moment(required=True)
    lifted_at = moment(required=True, allow_none=True)


class ErasureSchema(Answer):
    purged = count(required=True, metadata={"description": "Records the broker no longer holds."})


REGISTERED = (
    "Het verzoek is geregistreerd. De broker stuurt het door naar de andere verwerkingsverantwoordelijken die "
    "via de broker gegevens over deze leerling met uw partij uitwisselden; wie dat zijn, zegt de broker niet."
)
class SubjectRequestSchema(BodySchema):
    bsn = Bsn(required=True)
    kind = Choice(choices=rights.REQUEST_KINDS, required=True)
    received_at = Moment(required=True)
    note = free_text(LONG_TEXT)


class SubjectSchema(BodySchema):
    bsn = Bsn(required=True)
    reason = free_text(LONG_TEXT, required=True)


def _member(convenant_id: str) -> tuple[Convenant, str]:
    convenant = runtime.get_convenant(convenant_id)
    party = member_party(convenant, current_caller().party_id)
    return convenant, party.id


def _pseudonym(convenant: Convenant, bsn: str) -> str:
    return runtime.keyring().pseudonymiser(convenant.id).pseudonymise_bsn(bsn)


@blp.route("/<convenant_id>/subject-requests", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=problems(*BODY_STEP_PROBLEMS),
)
@blp.response(
    201,
    SubjectRequestRegisteredSchema,
    description="Registered (and forwarded to the controllers that hold data)",
    headers=VERSION,
)
@require_token
@blp.arguments(SubjectRequestSchema, deferred=True)
def forward_subject_request(body: Body, convenant_id: str) -> tuple[dict[str, Any], int]:
    """Register a data subject's request and forward it to the controllers that hold data about the pupil.

    The answer does not say whether or to whom it was forwarded.
    """
    session = db.session
    caller = current_caller()
    convenant, party_id = _member(convenant_id)
    data = body.load()  # after the membership check (403 before 422), as the body was always read
    with audited_step(session, caller.actor) as step:
        forwarded = rights.forward_request(
            session,
            runtime.keyring(),
            convenant,
            bsn=data["bsn"],
            kind=data["kind"],
            received_by=party_id,
            client_id=caller.client_id,
            received_at=data["received_at"],
            note=data.get("note"),
            recorder=step.recorder,
            now=step.now,
        )
    request = forwarded.request
    return {
        "request_id": request.id,
        "kind": request.kind,
        "received_at": request.received_at.isoformat(),
        "registered_at": request.registered_at.isoformat(),
        "detail": REGISTERED,
    }, 201


@blp.route("/<convenant_id>/restrictions", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=problems(*BODY_STEP_PROBLEMS),
)
@blp.response(201, RestrictionSchema, description="Restricted", headers=VERSION)
@blp.alt_response(200, schema=RestrictionSchema, description="Your party had already restricted it", headers=VERSION)
@require_token
@blp.arguments(SubjectSchema, deferred=True)
def restrict_subject(body: Body, convenant_id: str) -> tuple[dict[str, Any], int]:
    """Restrict processing (AVG art. 18): nothing about the pupil is routed to or from your party until it lifts it."""
    session = db.session
    convenant, party_id = _member(convenant_id)
    data = body.load()
    with audited_step(session, current_caller().actor) as step:
        restriction, created = rights.restrict(
            session,
            convenant,
            _pseudonym(convenant, data["bsn"]),
            requested_by=party_id,
            reason=data["reason"],
            recorder=step.recorder,
            now=step.now,
        )
    return _restriction_view(restriction), 201 if created else 200


@blp.route("/<convenant_id>/restrictions/<restriction_id>", methods=["DELETE"])
@blp.doc(security=SECURITY, responses=problems(*PROBLEMS, 409))
@blp.response(200, RestrictionSchema, description="Lifted", headers=VERSION)
@require_token
def lift_restriction(convenant_id: str, restriction_id: str) -> dict[str, Any]:
    """Lift a restriction your party requested; routing about the pupil resumes."""
    session = db.session
    convenant, party_id = _member(convenant_id)
    restriction = rights.own_restriction(session, restriction_id, party_id, {convenant.id})
    with audited_step(session, current_caller().actor) as step:
        rights.lift_restriction(session, restriction, lifted_by=party_id, recorder=step.recorder, now=step.now)
    return _restriction_view(restriction)


def _restriction_view(restriction: SubjectRestriction) -> dict[str, Any]:
    return {
        "restriction_id": restriction.id,
        "started_at": restriction.started_at.isoformat(),
        "lifted_at": restriction.lifted_at.isoformat() if restriction.lifted_at else None,
    }


@blp.route("/<convenant_id>/erasures", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=problems(*BODY_STEP_PROBLEMS),
)
@blp.response(
    201, ErasureSchema, description="Purged: the number of records the broker no longer holds", headers=VERSION
)
@require_token
@blp.arguments(SubjectSchema, deferred=True)
def erase_subject(body: Body, convenant_id: str) -> tuple[dict[str, Any], int]:
    """Erase what the broker holds about the pupil in your party's flows (AVG art. 17).

    That is what your party sent about the pupil and what is on its way to your party.
    """
    session = db.session
    convenant, party_id = _member(convenant_id)
    data = body.load()
    pseudonym = _pseudonym(convenant, data["bsn"])
    keyring = runtime.keyring()
    with audited_step(session, current_caller().actor) as step:
        purged = rights.erase(
            session,
            keyring,
            convenant,
            pseudonym,
            requested_by=party_id,
            reason=data["reason"],
            recorder=step.recorder,
            now=step.now,
        )
    keyring.sweep_vault()  # the destroyed keys' shares go once the purge is committed
    return {"purged": purged}, 201
