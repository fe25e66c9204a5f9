"""What the breach endpoints answer: the breach with its parties, acknowledgements and AP decisions."""

from __future__ import annotations

import marshmallow as ma

from broker.app.answers import Answer, moment, uuid
from broker.breaches import state as breach_state

F = ma.fields


class BreachPartyApDecisionSchema(Answer):
    reported_to_ap = F.Boolean(required=True)
    ap_reference = F.String(allow_none=True)
    reported_at = moment(allow_none=True)
    reasoning = F.String(allow_none=True)
    decided_at = moment(allow_none=True)
    decided_by = F.String(allow_none=True)


class BreachPartySchema(Answer):
    party_id = F.String(required=True)
    name = F.String(required=True)
    role = F.String(required=True)
    notified_at = moment(required=True, allow_none=True)
    notified_via = F.String(allow_none=True)
    acknowledged_at = moment(required=True, allow_none=True)
    ap_decision = F.Nested(BreachPartyApDecisionSchema, required=True, allow_none=True)
    ap_deadline = moment()
    ap_overdue = F.Boolean(required=True)


class BreachContainmentSchema(Answer):
    party_id = F.String(required=True)
    started_at = moment(required=True)
    started_by = F.String()
    lifted_at = moment(required=True, allow_none=True)


class BreachEventSchema(Answer):
    at = moment(required=True)
    actor = F.String(required=True)
    kind = F.String(required=True)
    detail = F.Dict(required=True)


class BreachSchema(Answer):
    id = uuid(required=True)
    number = F.Integer(required=True, metadata={"minimum": 1})
    convenant_id = F.String(required=True)
    reporting_party = F.String(required=True, allow_none=True, metadata={"description": "None: the broker itself."})
    reported_by = F.String()
    reported_at = moment(required=True)
    detected_at = moment(required=True)
    deadline = moment(required=True)
    ap_deadline = moment(required=True)
    state = F.String(required=True, metadata={"enum": list(breach_state.STATES)})
    late = F.Boolean(required=True)
    late_since = moment(allow_none=True)
    seconds_left = F.Integer(required=True, allow_none=True)
    description = F.String(required=True)
    suspected_cause = F.String(required=True)
    scope = F.Dict(required=True, metadata={"description": "Submissions, deliveries, a window; subjects only counted."})
    impact = F.Dict(required=True)
    impact_computed = F.Dict()
    parties = F.List(F.Nested(BreachPartySchema), required=True)
    containment = F.List(F.Nested(BreachContainmentSchema), required=True)
    measures = F.String(allow_none=True)
    closed_at = moment(required=True, allow_none=True)
    closed_by = F.String(allow_none=True)
    trace_id = F.String()
    events = F.List(F.Nested(BreachEventSchema), metadata={"description": "The breach's history (not in lists)."})


class BreachListSchema(Answer):
    breaches = F.List(F.Nested(BreachSchema), required=True)


class BreachAcknowledgementSchema(Answer):
    breach_id = uuid(required=True)
    party_id = F.String(required=True)
    acknowledged_at = moment(required=True)
    late = F.Boolean(required=True)
    state = F.String(required=True, metadata={"enum": list(breach_state.STATES)})


class BreachApDecisionSchema(BreachPartySchema):
    breach_id = uuid(required=True)


