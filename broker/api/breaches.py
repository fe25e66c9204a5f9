"""Breaches for parties: report one, read those that concern you, acknowledge, record the AP decision, close.

A suspended party (containment) can still use these endpoints: it must be able to acknowledge.
"""

from __future__ import annotations

from typing import Any

from flask import request

from broker import runtime
from broker.api import breach_input as inputs
from broker.api.body_parser import ApiBlueprint
from broker.api_base import (
    AUDITED_PROBLEMS,
    BEARER_PROBLEMS_SUSPENDED_TOO,
    BODY_PROBLEMS,
    SECURITY,
    component,
    content_response,
    json_response,
    responses,
)
from broker.auditing import audited_step
from broker.auth import allow_suspended, current_caller, require_token
from broker.csvio import csv_download
from broker.errors import BadRequest, Forbidden, NotFound
from broker.extensions import db
from broker.models import Breach
from broker.services import breach_views as views
from broker.services import breaches as service
from schemas.convenant import Convenant

blp = ApiBlueprint("breaches", __name__, url_prefix="/api/v1/breaches", description="The 24-hour breach workflow")

# Every breach endpoint: the token checks (a suspended party is let through) and the audit write.
PROBLEMS = (*BEARER_PROBLEMS_SUSPENDED_TOO, *AUDITED_PROBLEMS)
# Every step on one breach besides: it must exist for the caller, the body must be valid, the
# caller's party must have a part in it (403), and the breach must still be open (409).
STEP_PROBLEMS = (*PROBLEMS, *BODY_PROBLEMS, 403, 404, 409, 422)


LOCATION = {"description": "The URL of the new breach.", "required": True, "schema": {"type": "string"}}
MOMENT_OUT = {"type": "string", "format": "date-time"}
NULLABLE_MOMENT = {**MOMENT_OUT, "nullable": True}
BREACH_PARTY = component(
    "BreachParty",
    {
        "type": "object",
        "required": ["party_id", "name", "role", "notified_at", "acknowledged_at", "ap_decision", "ap_overdue"],
        "properties": {
            "party_id": {"type": "string"},
            "name": {"type": "string"},
            "role": {"type": "string"},
            "notified_at": NULLABLE_MOMENT,
            "notified_via": {"type": "string", "nullable": True},
            "acknowledged_at": NULLABLE_MOMENT,
            "ap_decision": {
                "type": "object",
                "nullable": True,
                "required": ["reported_to_ap"],
                "properties": {
                    "reported_to_ap": {"type": "boolean"},
                    "ap_reference": {"type": "string", "nullable": True},
                    "reported_at": NULLABLE_MOMENT,
                    "reasoning": {"type": "string", "nullable": True},
                    "decided_at": NULLABLE_MOMENT,
                    "decided_by": {"type": "string", "nullable": True},
                },
            },
            "ap_deadline": MOMENT_OUT,
            "ap_overdue": {"type": "boolean"},
        },
    },
)
BREACH = component(
    "Breach",
    {
        "type": "object",
        "required": [
            "id", "number", "convenant_id", "reporting_party", "reported_at", "detected_at", "deadline",
            "ap_deadline", "state", "late", "seconds_left", "description", "suspected_cause", "scope", "impact",
            "parties", "containment", "closed_at",
        ],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "number": {"type": "integer", "minimum": 1},
            "convenant_id": {"type": "string"},
            "reporting_party": {"type": "string", "nullable": True, "description": "None: the broker itself."},
            "reported_by": {"type": "string"},
            "reported_at": MOMENT_OUT,
            "detected_at": MOMENT_OUT,
            "deadline": MOMENT_OUT,
            "ap_deadline": MOMENT_OUT,
            "state": {"type": "string", "enum": list(service.STATES)},
            "late": {"type": "boolean"},
            "late_since": NULLABLE_MOMENT,
            "seconds_left": {"type": "integer", "nullable": True},
            "description": {"type": "string"},
            "suspected_cause": {"type": "string"},
            "scope": {"type": "object", "description": "Submissions, deliveries, a window; subjects only counted."},
            "impact": {"type": "object"},
            "impact_computed": {"type": "object"},
            "parties": {"type": "array", "items": BREACH_PARTY},
            "containment": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["party_id", "started_at", "lifted_at"],
                    "properties": {
                        "party_id": {"type": "string"},
                        "started_at": MOMENT_OUT,
                        "started_by": {"type": "string"},
                        "lifted_at": NULLABLE_MOMENT,
                    },
                },
            },
            "measures": {"type": "string", "nullable": True},
            "closed_at": NULLABLE_MOMENT,
            "closed_by": {"type": "string", "nullable": True},
            "trace_id": {"type": "string"},
            "events": {
                "type": "array",
                "description": "The breach's history (not in lists).",
                "items": {
                    "type": "object",
                    "required": ["at", "actor", "kind", "detail"],
                    "properties": {
                        "at": MOMENT_OUT,
                        "actor": {"type": "string"},
                        "kind": {"type": "string"},
                        "detail": {"type": "object"},
                    },
                },
            },
        },
    },
)
BREACH_LIST = component(
    "BreachList",
    {"type": "object", "required": ["breaches"], "properties": {"breaches": {"type": "array", "items": BREACH}}},
)
ACKNOWLEDGEMENT = component(
    "BreachAcknowledgement",
    {
        "type": "object",
        "required": ["breach_id", "party_id", "acknowledged_at", "late", "state"],
        "properties": {
            "breach_id": {"type": "string", "format": "uuid"},
            "party_id": {"type": "string"},
            "acknowledged_at": MOMENT_OUT,
            "late": {"type": "boolean"},
            "state": {"type": "string", "enum": list(service.STATES)},
        },
    },
)
AP_DECISION = component(
    "BreachApDecision",
    {
        "allOf": [
            BREACH_PARTY,
            {
                "type": "object",
                "required": ["breach_id"],
                "properties": {"breach_id": {"type": "string", "format": "uuid"}},
            },
        ]
    },
)


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
    breach = service.get_breach(session, breach_id, lock=lock)
    if service.party_row(session, breach, current_caller().party_id) is None:
        raise NotFound("Dit datalek bestaat niet.")
    return breach, runtime.get_convenant(breach.convenant_id)


def _own_report(breach: Breach) -> None:
    if breach.reporting_party_id != current_caller().party_id:
        raise Forbidden("Alleen de partij die het datalek meldde kan dit doen.")


@blp.route("", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=responses(
        {201: json_response(BREACH, "The breach as stored", {"Location": LOCATION})},
        *PROBLEMS, *BODY_PROBLEMS, 403, 404, 409, 422,
    ),
)
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
    scope = service.Scope(
        submissions=tuple(scope_data.get("submissions", ())),
        deliveries=tuple(scope_data.get("deliveries", ())),
        window=(window["from_"], window["to"]) if window else None,
        subjects=tuple(dict.fromkeys(pseudonymiser.pseudonymise_bsn(b) for b in scope_data.get("subjects", ()))),
    )
    report = service.Report(
        convenant=convenant,
        reporting_party=caller.party_id,
        detected_at=data["detected_at"],
        description=data["description"],
        suspected_cause=data["suspected_cause"],
        scope=scope,
    )
    with audited_step(session, caller.actor) as step:
        breach = service.report(session, report, step.recorder, step.now)
    return (
        views.view(session, breach, convenant, step.now, with_events=True),
        201,
        {"Location": f"/api/v1/breaches/{breach.id}"},
    )


@blp.route("", methods=["GET"])
@blp.doc(
    security=SECURITY,
    parameters=[{"name": "state", "in": "query", "schema": {"type": "string", "enum": list(service.STATES)}}],
    responses=responses(
        {
            200: content_response(
                {"application/json": BREACH_LIST, "text/csv": {"type": "string"}},
                "The breaches; as CSV on `Accept: text/csv` your party's breach register",
            )
        },
        *PROBLEMS,
    ),
)
@require_token
@allow_suspended
def list_breaches() -> Any:
    """List the breaches your party reported or is affected by; as CSV (Accept: text/csv) it is your register."""
    session = db.session
    now = runtime.now()
    convenants = runtime.convenants()
    rows = [b for b in service.visible_to_party(session, current_caller().party_id) if b.convenant_id in convenants]
    wanted = request.args.get("state")
    if wanted is not None and wanted not in service.STATES:
        raise BadRequest(
            "Onbekende state.",
            errors=[
                {
                    "record": None,
                    "field": "state",
                    "code": "invalid_choice",
                    "message": "Kies " + ", ".join(service.STATES) + ".",
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
@blp.doc(
    security=SECURITY,
    responses=responses({200: json_response(BREACH, "The breach with its history")}, *PROBLEMS, 404),
)
@require_token
@allow_suspended
def get_breach(breach_id: str) -> dict[str, Any]:
    """Return one breach with its parties, impact and history. Reading it counts as being notified."""
    session = db.session
    breach, convenant = _visible(breach_id)
    caller = current_caller()
    now = runtime.now()
    party = service.party_row(session, breach, caller.party_id)
    if party is not None and party.notified_at is None:
        with audited_step(session, caller.actor) as step:
            service.mark_notified(session, breach, party, "api", step.now, step.recorder)
            service.refresh(session, breach, convenant, step.recorder, step.now)
    return views.view(session, breach, convenant, now, with_events=True)


@blp.route("/<breach_id>/acknowledgements", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=responses(
        {
            201: json_response(ACKNOWLEDGEMENT, "Acknowledged"),
            200: json_response(ACKNOWLEDGEMENT, "Your party had acknowledged it before; nothing changed"),
        },
        *STEP_PROBLEMS,
    ),
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
        party, first = service.acknowledge(session, breach, convenant, caller.party_id, step.recorder, step.now)
    now = step.now
    assert party.acknowledged_at is not None
    body = {
        "breach_id": breach.id,
        "party_id": party.party_id,
        "acknowledged_at": party.acknowledged_at.isoformat(),
        "late": party.acknowledged_at > breach.notify_deadline,
        "state": service.derive_state(breach, service.parties_of(session, breach), now),
    }
    return body, 201 if first else 200


@blp.route("/<breach_id>/ap-decisions", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=responses({201: json_response(AP_DECISION, "Decision recorded")}, *STEP_PROBLEMS),
)
@require_token
@allow_suspended
@blp.arguments(inputs.ApDecisionSchema)
def decide_ap(data: dict[str, Any], breach_id: str) -> tuple[dict[str, Any], int]:
    """Record your party's decision about reporting to the Autoriteit Persoonsgegevens (AVG art. 33)."""
    session = db.session
    breach, convenant = _visible(breach_id)
    caller = current_caller()
    decision = service.ApDecision(
        reported_to_ap=data["reported_to_ap"],
        ap_reference=data.get("ap_reference"),
        reported_at=data.get("reported_at"),
        reasoning=data.get("reasoning"),
    )
    with audited_step(session, caller.actor) as step:
        party = service.decide_ap(session, breach, convenant, caller.party_id, decision, step.recorder, step.now)
    shown = next(
        p for p in views.view(session, breach, convenant, step.now)["parties"] if p["party_id"] == party.party_id
    )
    return {"breach_id": breach.id, **shown}, 201


@blp.route("/<breach_id>/impact", methods=["PATCH"])
@blp.doc(
    security=SECURITY,
    responses=responses({200: json_response(BREACH, "The breach with the corrected impact")}, *STEP_PROBLEMS),
)
@require_token
@allow_suspended
@blp.arguments(inputs.CorrectionSchema)
def correct_impact(data: dict[str, Any], breach_id: str) -> dict[str, Any]:
    """Correct the computed impact (reporter only); the reason is required and every correction is audited."""
    session = db.session
    breach, convenant = _visible(breach_id)
    _own_report(breach)
    correction = service.Correction.from_input(data)
    with audited_step(session, current_caller().actor) as step:
        service.correct_impact(session, breach, convenant, correction, step.recorder, step.now)
    return views.view(session, breach, convenant, step.now, with_events=True)


@blp.route("/<breach_id>/close", methods=["POST"])
@blp.doc(
    security=SECURITY,
    responses=responses({200: json_response(BREACH, "The closed breach")}, *STEP_PROBLEMS),
)
@require_token
@allow_suspended
@blp.arguments(inputs.CloseSchema)
def close_breach(data: dict[str, Any], breach_id: str) -> dict[str, Any]:
    """Close the breach (reporter only): needs the measures taken and every controller's AP decision."""
    session = db.session
    breach, convenant = _visible(breach_id)
    _own_report(breach)
    with audited_step(session, current_caller().actor) as step:
        service.close(session, breach, convenant, data["measures"], step.recorder, step.now)
    return views.view(session, breach, convenant, step.now, with_events=True)
