"""Breaches for parties: report one, read those that concern you, acknowledge, record the AP decision, close.

A suspended party (containment) can still use these endpoints: it must be able to acknowledge.
"""

from __future__ import annotations

from typing import Any

from flask import request

from broker.api import breach_answers as answers
from broker.app import runtime
from broker.app.body_parser import ApiBlueprint
from broker.app.csvio import csv_download
from broker.app.errors import BadRequest, Forbidden, NotFound
from broker.app.extensions import db
from broker.app.problems import (
    AUDITED_PROBLEMS,
    BEARER_PROBLEMS_SUSPENDED_TOO,
    BODY_PROBLEMS,
    CSV_ANSWER,
    SECURITY,
    VERSION,
    problems,
)
from broker.auditing.step import audited_step
from broker.breaches import escalation, impact, reporting, steps, views
from broker.breaches import schemas as inputs
from broker.breaches import state as breach_state
from broker.models import Breach
from broker.parties.oauth import allow_suspended, current_caller, require_token
from schemas.convenant import Convenant

blp = ApiBlueprint("breaches", __name__, url_prefix="/api/v1/breaches", description="The 24-hour breach workflow")

# Every breach endpoint: the token checks (a suspended party is let through) and the audit write.
PROBLEMS = (*BEARER_PROBLEMS_SUSPENDED_TOO, *AUDITED_PROBLEMS)
# Every step on one breach besides: it must exist for the caller, the body must be valid, the
# caller's party must have a part in it (403), and the breach must still be open (409).
STEP_PROBLEMS = (*PROBLEMS, *BODY_PROBLEMS, 403, 404, 409, 422)


LOCATION = {"description": "The URL of the new breach.", "required": True, "schema": {"type": "string"}}

def _convenant_for_report(convenant_id: str | None, party_id: str) -> Convenant:
    if convenant_id:
        return runtime.get_convenant(convenant_id)
    mine = [c for c in runtime.convenants().values() if c.party(party_id)]
    if len(mine) != 1:
        raise BadRequest("Uw partij neemt aan meer convenanten deel; noem `convenant_id`.")
    return mine[0]


def _visible(breach_id: str, *, lock: bool = True) -> tuple[Breach, Convenant]:
    """The breach, if the caller's party reported it or is affected; otherwise it does not exist for them."""
    session = db.session
    breach = breach_state.get_breach(session, breach_id, lock=lock)
    if breach_state.party_row(session, breach, current_caller().party_id) is None:
        raise NotFound("Dit datalek bestaat niet.")
    return breach, runtime.get_convenant(breach.convenant_id)


def _own_report(breach: Breach) -> None:
    if breach.reporting_party_id != current_caller().party_id:
        raise Forbidden("Alleen de partij die het datalek meldde kan dit doen.")


@blp.route("", methods=["POST"])
@blp.doc(security=SECURITY, responses=problems(*PROBLEMS, *BODY_PROBLEMS, 403, 404, 409, 422))
@blp.response(201, answers.BreachSchema, description="The breach as stored", headers={**VERSION, "Location": LOCATION})
@require_token
@allow_suspended
@blp.arguments(inputs.ReportSchema)
def report_breach(data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Report a (suspected) breach; the broker computes its impact and notifies the affected parties."""
    session = db.session
    caller = current_caller()
    convenant = _convenant_for_report(data.get("convenant_id"), caller.party_id)
    scope_data = data["scope"]
    pseudonymiser = runtime.keyring().pseudonymiser(convenant.id)
    window = scope_data.get("window")
    scope = impact.Scope(
        submissions=tuple(scope_data.get("submissions", ())),
        deliveries=tuple(scope_data.get("deliveries", ())),
        window=(window["from_"], window["to"]) if window else None,
        subjects=tuple(dict.fromkeys(pseudonymiser.pseudonymise_bsn(b) for b in scope_data.get("subjects", ()))),
    )
    report = reporting.Report(
        convenant=convenant,
        reporting_party=caller.party_id,
        detected_at=data["detected_at"],
        description=data["description"],
        suspected_cause=data["suspected_cause"],
        scope=scope,
    )
    with audited_step(session, caller.actor) as step:
        breach = reporting.report(session, report, step.recorder, step.now)
    return (
        views.view(session, breach, convenant, step.now, with_events=True),
        201,
        {"Location": f"/api/v1/breaches/{breach.id}"},
    )


@blp.route("", methods=["GET"])
@blp.doc(
    security=SECURITY,
    parameters=[{"name": "state", "in": "query", "schema": {"type": "string", "enum": list(breach_state.STATES)}}],
    responses={**problems(*PROBLEMS), 200: CSV_ANSWER},
)
@blp.response(
    200,
    answers.BreachListSchema,
    description="The breaches; as CSV on `Accept: text/csv` your party's breach register",
    headers=VERSION,
)
@require_token
@allow_suspended
def list_breaches() -> Any:
    """List the breaches your party reported or is affected by; as CSV (Accept: text/csv) it is your register."""
    session = db.session
    now = runtime.now()
    convenants = runtime.convenants()
    visible = breach_state.visible_to_party(session, current_caller().party_id)
    rows = [b for b in visible if b.convenant_id in convenants]
    wanted = request.args.get("state")
    if wanted is not None and wanted not in breach_state.STATES:
        raise BadRequest(
            "Onbekende state.",
            errors=[
                {
                    "record": None,
                    "field": "state",
                    "code": "invalid_choice",
                    "message": "Kies " + ", ".join(breach_state.STATES) + ".",
                }
            ],
        )
    shown = [views.view(session, b, convenants[b.convenant_id], now) for b in rows]
    if wanted is not None:
        shown = [v for v in shown if v["state"] == wanted]
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"], default="application/json")
    if best == "text/csv":
        ids = {v["id"] for v in shown}
        register = views.register_rows(session, [b for b in rows if b.id in ids], convenants, now)
        return csv_download(register, views.REGISTER_COLUMNS, "datalekkenregister.csv")
    return {"breaches": shown}


@blp.route("/<breach_id>", methods=["GET"])
@blp.doc(security=SECURITY, responses=problems(*PROBLEMS, 404))
@blp.response(200, answers.BreachSchema, description="The breach with its history", headers=VERSION)
@require_token
@allow_suspended
def get_breach(breach_id: str) -> dict[str, Any]:
    """Return one breach with its parties, impact and history. Reading it counts as being notified."""
    session = db.session
    breach, convenant = _visible(breach_id)
    caller = current_caller()
    now = runtime.now()
    party = breach_state.party_row(session, breach, caller.party_id)
    if party is not None and party.notified_at is None:
        with audited_step(session, caller.actor) as step:
            escalation.mark_notified(session, breach, party, "api", step.now, step.recorder)
            escalation.refresh(session, breach, convenant, step.recorder, step.now)
    return views.view(session, breach, convenant, now, with_events=True)


@blp.route("/<breach_id>/acknowledgements", methods=["POST"])
@blp.doc(security=SECURITY, responses=problems(*STEP_PROBLEMS))
@blp.response(201, answers.BreachAcknowledgementSchema, description="Acknowledged", headers=VERSION)
@blp.alt_response(
    200,
    schema=answers.BreachAcknowledgementSchema,
    description="Your party had acknowledged it before; nothing changed",
    headers=VERSION,
)
@require_token
@allow_suspended
@blp.arguments(inputs.AcknowledgementSchema, required=False)
def acknowledge(data: dict[str, Any], breach_id: str) -> tuple[dict[str, Any], int]:
    """Acknowledge, as an affected party, that you have the notice (again: 200, nothing changes)."""
    session = db.session
    breach, convenant = _visible(breach_id)
    caller = current_caller()
    with audited_step(session, caller.actor) as step:
        party, first = steps.acknowledge(session, breach, convenant, caller.party_id, step.recorder, step.now)
    now = step.now
    assert party.acknowledged_at is not None
    body = {
        "breach_id": breach.id,
        "party_id": party.party_id,
        "acknowledged_at": party.acknowledged_at.isoformat(),
        "late": party.acknowledged_at > breach.notify_deadline,
        "state": breach_state.derive_state(breach, breach_state.parties_of(session, breach), now),
    }
    return body, 201 if first else 200


@blp.route("/<breach_id>/ap-decisions", methods=["POST"])
@blp.doc(security=SECURITY, responses=problems(*STEP_PROBLEMS))
@blp.response(201, answers.BreachApDecisionSchema, description="Decision recorded", headers=VERSION)
@require_token
@allow_suspended
@blp.arguments(inputs.ApDecisionSchema)
def decide_ap(data: dict[str, Any], breach_id: str) -> tuple[dict[str, Any], int]:
    """Record your party's decision about reporting to the Autoriteit Persoonsgegevens (AVG art. 33)."""
    session = db.session
    breach, convenant = _visible(breach_id)
    caller = current_caller()
    decision = steps.ApDecision(
        reported_to_ap=data["reported_to_ap"],
        ap_reference=data.get("ap_reference"),
        reported_at=data.get("reported_at"),
        reasoning=data.get("reasoning"),
    )
    with audited_step(session, caller.actor) as step:
        party = steps.decide_ap(session, breach, convenant, caller.party_id, decision, step.recorder, step.now)
    shown = next(
        p for p in views.view(session, breach, convenant, step.now)["parties"] if p["party_id"] == party.party_id
    )
    return {"breach_id": breach.id, **shown}, 201


@blp.route("/<breach_id>/impact", methods=["PATCH"])
@blp.doc(security=SECURITY, responses=problems(*STEP_PROBLEMS))
@blp.response(200, answers.BreachSchema, description="The breach with the corrected impact", headers=VERSION)
@require_token
@allow_suspended
@blp.arguments(inputs.CorrectionSchema)
def correct_impact(data: dict[str, Any], breach_id: str) -> dict[str, Any]:
    """Correct the computed impact (reporter only); the reason is required and every correction is audited."""
    session = db.session
    breach, convenant = _visible(breach_id)
    _own_report(breach)
    correction = steps.Correction.from_input(data)
    with audited_step(session, current_caller().actor) as step:
        steps.correct_impact(session, breach, convenant, correction, step.recorder, step.now)
    return views.view(session, breach, convenant, step.now, with_events=True)


@blp.route("/<breach_id>/close", methods=["POST"])
@blp.doc(security=SECURITY, responses=problems(*STEP_PROBLEMS))
@blp.response(200, answers.BreachSchema, description="The closed breach", headers=VERSION)
@require_token
@allow_suspended
@blp.arguments(inputs.CloseSchema)
def close_breach(data: dict[str, Any], breach_id: str) -> dict[str, Any]:
    """Close the breach (reporter only): needs the measures taken and every controller's AP decision."""
    session = db.session
    breach, convenant = _visible(breach_id)
    _own_report(breach)
    with audited_step(session, current_caller().actor) as step:
        steps.close(session, breach, convenant, data["measures"], step.recorder, step.now)
    return views.view(session, breach, convenant, step.now, with_events=True)
