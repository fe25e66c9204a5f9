"""What a breach request body may contain. Every error carries a field, a rule code and a Dutch message.

Free texts are screened for BSNs (a description must not become a copy of the data), and BSNs
given to scope a breach are pseudonymised at once; no message ever repeats one. The API reads these
schemas through `@blp.arguments`; the review forms through `load`.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from broker.app.errors import ValidationFailed
from broker.app.inputs import BodySchema, Count, Flag, Identifier, Items, Moment, free_text, violations
from schemas.fields import Bsn, Coded, Object

LONG_TEXT = 4000
SHORT_TEXT = 200


class WindowSchema(BodySchema):
    from_ = Moment(required=True, data_key="from")
    to = Moment(required=True)

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["from_"] > data["to"]:
            raise ma.ValidationError(Coded("date_order", "`to` moet na `from` liggen."), "to")


class ScopeSchema(BodySchema):
    submissions = Items(Identifier(), max_items=1000)
    deliveries = Items(Identifier(), max_items=1000)
    window = Object(WindowSchema)
    subjects = Items(Bsn(), max_items=100_000)

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not any(data.get(k) for k in ("submissions", "deliveries", "window", "subjects")):
            raise ma.ValidationError(
                Coded("empty_scope", "Noem inzendingen, leveringen, een tijdvak of betrokkenen (BSN's)."), "_schema"
            )


class ReportSchema(BodySchema):
    convenant_id = free_text(SHORT_TEXT)
    detected_at = Moment(required=True)
    description = free_text(LONG_TEXT, required=True)
    suspected_cause = free_text(LONG_TEXT, required=True)
    scope = Object(ScopeSchema, required=True)


class CategoryCountSchema(BodySchema):
    category = free_text(SHORT_TEXT, required=True)
    count = Count(required=True)


class CorrectionSchema(BodySchema):
    reason = free_text(LONG_TEXT, required=True)
    data_subjects = Count()
    data_subject_categories = Items(Object(CategoryCountSchema), max_items=100)
    personal_data_categories = Items(free_text(SHORT_TEXT), max_items=100)
    add_parties = Items(free_text(SHORT_TEXT), max_items=100)


class AcknowledgementSchema(BodySchema):
    comment = free_text(LONG_TEXT)


class ApDecisionSchema(BodySchema):
    reported_to_ap = Flag(required=True)
    ap_reference = free_text(SHORT_TEXT)
    reported_at = Moment()
    reasoning = free_text(LONG_TEXT)


class CloseSchema(BodySchema):
    measures = free_text(LONG_TEXT, required=True)


def load(schema: ma.Schema, body: Any) -> dict[str, Any]:
    """Validate a body read elsewhere (a review form), or refuse it with every error at once (422)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BodySchema.not_an_object()
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ma.ValidationError as e:
        raise ValidationFailed("Het verzoek voldoet niet.", list(violations(e.messages, body))) from None
    return loaded
