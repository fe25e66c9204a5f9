"""Breaches for parties: report one, read those that concern you, acknowledge, record the AP decision, close.

A suspended party (containment) can still use these endpoints: it must be able to acknowledge.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from broker import runtime
from broker.api import breach_input as inputs
from broker.auditing import commit_audited, request_recorder
from broker.auth import allow_suspended, current_caller, require_token
from broker.csvio import csv_download
from broker.errors import BadRequest, Forbidden, NotFound
from broker.extensions import db
from broker.models import Breach
from broker.services import breach_views as views
from broker.services import breaches as service
from schemas.convenant import Convenant

blp = Blueprint("breaches", __name__, url_prefix="/api/v1/breaches", description="The 24-hour breach workflow")

SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


MOMENT = {"type": "string", "description": "ISO 8601; without an offset it is read as Europe/Amsterdam time."}
TEXT = {"type": "string", "minLength": 1, "maxLength": inputs.LONG_TEXT}
REPORT_BODY = _body(
    {
        "type": "object",
        "required": ["detected_at", "description", "suspected_cause", "scope"],
        "additionalProperties": False,
        "properties": {
            "convenant_id": {"type": "string"},
            "detected_at": MOMENT,
            "description": TEXT,
            "suspected_cause": TEXT,
            "scope": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "submissions": {"type": "array", "items": {"type": "string"}},
                    "deliveries": {"type": "array", "items": {"type": "string"}},
                    "window": {
                        "type": "object",
                        "required": ["from", "to"],
                        "properties": {"from": MOMENT, "to": MOMENT},
                    },
                    "subjects": {"type": "array", "items": {"type": "string", "description": "BSN"}},
                },
            },
        },
    }
)
ACK_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"type": "object", "properties": {"comment": TEXT}}}},
}
AP_BODY = _body(
    {
        "type": "object",
        "required": ["reported_to_ap"],
        "properties": {
            "reported_to_ap": {"type": "boolean"},
            "ap_reference": {"type": "string"},
            "reported_at": MOMENT,
            "reasoning": TEXT,
        },
    }
)
CORRECTION_BODY = _body(
    {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "reason": TEXT,
            "data_subjects": {"type": "integer", "minimum": 0},
            "data_subject_categories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["category", "count"],
                    "properties": {"category": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
                },
            },
            "personal_data_categories": {"type": "array", "items": {"type": "string"}},
            "add_parties": {"type": "array", "items": {"type": "string"}},
        },
    }
)
CLOSE_BODY = _body({"type": "object", "required": ["measures"], "properties": {"measures": TEXT}})


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
@blp.doc(security=SECURITY, requestBody=REPORT_BODY, responses={"201": {"description": "The breach as stored"}})
@require_token
@allow_suspended
def report_breach() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Report a (suspected) breach; the broker computes its impact and notifies the affected parties."""
    session = db.session
    caller = current_caller()
    data = inputs.load(inputs.ReportSchema(), request.get_json(silent=True))
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
    now = runtime.now()
    recorder = request_recorder(caller.actor)
    breach = service.report(session, report, recorder, now)
    commit_audited(session, recorder)
    return (
        views.view(session, breach, convenant, now, with_events=True),
        201,
        {"Location": f"/api/v1/breaches/{breach.id}"},
    )


@blp.route("", methods=["GET"])
@blp.doc(
    security=SECURITY,
    parameters=[{"name": "state", "in": "query", "schema": {"type": "string", "enum": list(service.STATES)}}],
    responses={"200": {"content": {"application/json": {}, "text/csv": {}}}},
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
    shown = [views.view(session, b, convenants[b.convenant_id], now) for b in rows]
    if wanted:
        shown = [v for v in shown if v["state"] == wanted]
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"], default="application/json")
    if best == "text/csv":
        ids = {v["id"] for v in shown}
        register = views.register_rows(session, [b for b in rows if b.id in ids], convenants, now)
        return csv_download(register, views.REGISTER_COLUMNS, "datalekkenregister.csv")
    return {"breaches": shown}


@blp.route("/<breach_id>", methods=["GET"])
@blp.doc(security=SECURITY)
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
        recorder = request_recorder(caller.actor)
        service.mark_notified(session, breach, party, "api", now, recorder)
        service.refresh(session, breach, convenant, recorder, now)
        commit_audited(session, recorder)
    return views.view(session, breach, convenant, now, with_events=True)


@blp.route("/<breach_id>/acknowledgements", methods=["POST"])
@blp.doc(security=SECURITY, requestBody=ACK_BODY, responses={"201": {"description": "Acknowledged"}})
@require_token
@allow_suspended
def acknowledge(breach_id: str) -> tuple[dict[str, Any], int]:
    """Acknowledge, as an affected party, that you have the notice (again: 200, nothing changes)."""
    session = db.session
    inputs.load(inputs.AcknowledgementSchema(), request.get_json(silent=True))
    breach, convenant = _visible(breach_id)
    caller = current_caller()
    now = runtime.now()
    recorder = request_recorder(caller.actor)
    party, first = service.acknowledge(session, breach, convenant, caller.party_id, recorder, now)
    if first:
        commit_audited(session, recorder)
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
@blp.doc(security=SECURITY, requestBody=AP_BODY, responses={"201": {"description": "Decision recorded"}})
@require_token
@allow_suspended
def decide_ap(breach_id: str) -> tuple[dict[str, Any], int]:
    """Record your party's decision about reporting to the Autoriteit Persoonsgegevens (AVG art. 33)."""
    session = db.session
    data = inputs.load(inputs.ApDecisionSchema(), request.get_json(silent=True))
    breach, convenant = _visible(breach_id)
    caller = current_caller()
    now = runtime.now()
    recorder = request_recorder(caller.actor)
    decision = service.ApDecision(
        reported_to_ap=data["reported_to_ap"],
        ap_reference=data.get("ap_reference"),
        reported_at=data.get("reported_at"),
        reasoning=data.get("reasoning"),
    )
    party = service.decide_ap(session, breach, convenant, caller.party_id, decision, recorder, now)
    commit_audited(session, recorder)
    shown = next(p for p in views.view(session, breach, convenant, now)["parties"] if p["party_id"] == party.party_id)
    return {"breach_id": breach.id, **shown}, 201


@blp.route("/<breach_id>/impact", methods=["PATCH"])
@blp.doc(security=SECURITY, requestBody=CORRECTION_BODY)
@require_token
@allow_suspended
def correct_impact(breach_id: str) -> dict[str, Any]:
    """Correct the computed impact (reporter only); the reason is required and every correction is audited."""
    session = db.session
    data = inputs.load(inputs.CorrectionSchema(), request.get_json(silent=True))
    breach, convenant = _visible(breach_id)
    _own_report(breach)
    correction = service.Correction(
        reason=data["reason"],
        data_subjects=data.get("data_subjects"),
        data_subject_categories=tuple((c["category"], c["count"]) for c in data["data_subject_categories"])
        if "data_subject_categories" in data
        else None,
        personal_data_categories=tuple(data["personal_data_categories"])
        if "personal_data_categories" in data
        else None,
        add_parties=tuple(data.get("add_parties", ())),
    )
    now = runtime.now()
    recorder = request_recorder(current_caller().actor)
    service.correct_impact(session, breach, convenant, correction, recorder, now)
    commit_audited(session, recorder)
    return views.view(session, breach, convenant, now, with_events=True)


@blp.route("/<breach_id>/close", methods=["POST"])
@blp.doc(security=SECURITY, requestBody=CLOSE_BODY)
@require_token
@allow_suspended
def close_breach(breach_id: str) -> dict[str, Any]:
    """Close the breach (reporter only): needs the measures taken and every controller's AP decision."""
    session = db.session
    data = inputs.load(inputs.CloseSchema(), request.get_json(silent=True))
    breach, convenant = _visible(breach_id)
    _own_report(breach)
    now = runtime.now()
    recorder = request_recorder(current_caller().actor)
    service.close(session, breach, convenant, data["measures"], recorder, now)
    commit_audited(session, recorder)
    return views.view(session, breach, convenant, now, with_events=True)
