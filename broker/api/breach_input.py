"""What a breach request body may contain. Every error carries a field, a rule code and a Dutch message.

Free texts are screened for BSNs (a description must not become a copy of the data), and BSNs
given to scope a breach are pseudonymised at once; no message ever repeats one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import marshmallow as ma

from broker.errors import ValidationFailed
from broker.timefmt import AmbiguousLocalTime, from_local
from schemas.screening import Lexicon, load_default_lexicon
from schemas.validation import MESSAGES, Bsn, Coded, CodedField, Object, Text

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LONG_TEXT = 4000
SHORT_TEXT = 200


@cache
def _lexicon() -> Lexicon:
    return load_default_lexicon()


def _text(max_length: int, **kwargs: Any) -> Text:
    return Text(max_length=max_length, screen="bsn", lexicon=_lexicon(), **kwargs)


class Moment(CodedField):
    """An ISO 8601 time; with an offset it is exact, without one it is read as Amsterdam time."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        if not isinstance(value, str):
            raise ma.ValidationError(Coded("invalid_datetime", "Verwacht een tijdstip als tekst (ISO 8601)."))
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ma.ValidationError(
                Coded("invalid_datetime", "Geen geldig tijdstip; gebruik bijvoorbeeld 2026-11-24T09:30:00+01:00.")
            ) from None
        if moment.tzinfo is None:
            try:
                return from_local(moment)
            except AmbiguousLocalTime as e:
                raise ma.ValidationError(Coded("ambiguous_time", str(e))) from None
        return moment.astimezone(dt.UTC)


class Identifier(CodedField):
    """An id the broker issued (a UUID). Not screened for BSNs: a UUID's digit groups can pass the elfproef."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not UUID.match(value.strip().lower()):
            raise ma.ValidationError(Coded("invalid_id", "Geen geldig id; een id van de broker is een UUID."))
        return value.strip().lower()


class Flag(CodedField):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ma.ValidationError(Coded("invalid_type", "Verwacht true of false."))
        return value


class Count(CodedField):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ma.ValidationError(Coded("invalid_count", "Verwacht een geheel getal van 0 of meer."))
        return value


class Items(CodedField, ma.fields.List):
    """A list whose own errors are coded too."""

    def __init__(self, inner: ma.fields.Field, *, max_items: int = 10_000, **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ma.ValidationError(Coded("invalid_type", "Verwacht een lijst."))
        if len(value) > self.max_items:
            raise ma.ValidationError(Coded("too_many", f"Hoogstens {self.max_items} items."))
        result: list[Any] = super()._deserialize(value, attr, data, **kwargs)
        return result


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class WindowSchema(_Strict):
    from_ = Moment(required=True, data_key="from")
    to = Moment(required=True)

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["from_"] > data["to"]:
            raise ma.ValidationError(Coded("date_order", "`to` moet na `from` liggen."), "to")


class ScopeSchema(_Strict):
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


class ReportSchema(_Strict):
    convenant_id = _text(SHORT_TEXT)
    detected_at = Moment(required=True)
    description = _text(LONG_TEXT, required=True)
    suspected_cause = _text(LONG_TEXT, required=True)
    scope = Object(ScopeSchema, required=True)


class CategoryCountSchema(_Strict):
    category = _text(SHORT_TEXT, required=True)
    count = Count(required=True)


class CorrectionSchema(_Strict):
    reason = _text(LONG_TEXT, required=True)
    data_subjects = Count()
    data_subject_categories = Items(Object(CategoryCountSchema), max_items=100)
    personal_data_categories = Items(_text(SHORT_TEXT), max_items=100)
    add_parties = Items(_text(SHORT_TEXT), max_items=100)


class AcknowledgementSchema(_Strict):
    comment = _text(LONG_TEXT)


class ApDecisionSchema(_Strict):
    reported_to_ap = Flag(required=True)
    ap_reference = _text(SHORT_TEXT)
    reported_at = Moment()
    reasoning = _text(LONG_TEXT)


class CloseSchema(_Strict):
    measures = _text(LONG_TEXT, required=True)


def _violations(messages: Any, prefix: str = "") -> Iterable[dict[str, Any]]:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = "from" if key == "from_" else str(key)
            yield from _violations(value, prefix if key == "_schema" else (f"{prefix}.{name}" if prefix else name))
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from _violations(message, prefix)
    else:
        code = getattr(messages, "code", None)
        text = str(messages)
        if code is None:
            code, text = (
                ("not_allowed", "Dit veld is niet toegestaan.")
                if text == "Unknown field."
                else ("invalid", MESSAGES["invalid"])
            )
        yield {"record": None, "field": prefix or None, "code": code, "message": text}


def load(schema: ma.Schema, body: Any) -> dict[str, Any]:
    """Validate a JSON body, or refuse it with every error at once (422 problem+json)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationFailed(
            "Stuur een JSON-object.",
            [{"record": None, "field": None, "code": "invalid_type", "message": "Verwacht een JSON-object."}],
        )
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ma.ValidationError as e:
        raise ValidationFailed("Het verzoek voldoet niet.", list(_violations(e.messages))) from None
    return loaded
