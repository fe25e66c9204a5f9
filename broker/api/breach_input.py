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
from flask import request

from broker.api_base import json_body
from broker.errors import UnsupportedMediaType, ValidationFailed
from broker.timefmt import AmbiguousLocalTime, from_local
from schemas.screening import Lexicon, load_default_lexicon
from schemas.validation import MESSAGES, Bsn, Coded, CodedField, Object, Text, key_position, reported_name

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LONG_TEXT = 4000
SHORT_TEXT = 200


@cache
def _lexicon() -> Lexicon:
    return load_default_lexicon()


class FreeText(Text):
    """Free text as it can be stored: a NUL is refused (PostgreSQL's text cannot hold one)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ma.ValidationError(Coded("invalid_character", "Een tekst mag geen NUL-teken bevatten."))
        return text


def free_text(max_length: int, **kwargs: Any) -> FreeText:
    """Free text, screened for BSNs: a description must not become a copy of the data."""
    return FreeText(max_length=max_length, screen="bsn", lexicon=_lexicon(), **kwargs)



# The moments a request may name. Outside, a deadline computed from one would not fit the calendar.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2999, 12, 31, tzinfo=dt.UTC)


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
        try:
            moment = from_local(moment) if moment.tzinfo is None else moment.astimezone(dt.UTC)
        except AmbiguousLocalTime as e:
            raise ma.ValidationError(Coded("ambiguous_time", str(e))) from None
        except OverflowError:  # year 1 or 9999, moved past the calendar by its offset
            moment = EARLIEST - dt.timedelta(days=1)
        if not EARLIEST <= moment <= LATEST:
            raise ma.ValidationError(
                Coded("out_of_range", f"Een tijdstip ligt tussen {EARLIEST.year} en {LATEST.year}.")
            )
        return moment


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
    convenant_id = free_text(SHORT_TEXT)
    detected_at = Moment(required=True)
    description = free_text(LONG_TEXT, required=True)
    suspected_cause = free_text(LONG_TEXT, required=True)
    scope = Object(ScopeSchema, required=True)


class CategoryCountSchema(_Strict):
    category = free_text(SHORT_TEXT, required=True)
    count = Count(required=True)


class CorrectionSchema(_Strict):
    reason = free_text(LONG_TEXT, required=True)
    data_subjects = Count()
    data_subject_categories = Items(Object(CategoryCountSchema), max_items=100)
    personal_data_categories = Items(free_text(SHORT_TEXT), max_items=100)
    add_parties = Items(free_text(SHORT_TEXT), max_items=100)


class AcknowledgementSchema(_Strict):
    comment = free_text(LONG_TEXT)


class ApDecisionSchema(_Strict):
    reported_to_ap = Flag(required=True)
    ap_reference = free_text(SHORT_TEXT)
    reported_at = Moment()
    reasoning = free_text(LONG_TEXT)


class CloseSchema(_Strict):
    measures = free_text(LONG_TEXT, required=True)


UNKNOWN = ["Unknown field."]  # marshmallow's message for a key the schema does not have


def _child(data: Any, key: Any) -> Any:
    if isinstance(data, Mapping):
        return data.get(key)
    if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
        return data[key]
    return None


def _violations(messages: Any, data: Any = None, prefix: str = "") -> Iterable[dict[str, Any]]:
    """The errors in marshmallow's `messages` about the body (part) `data`; a key the caller made up
    is named by its position unless it is a plain identifier (`reported_name`)."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                yield from _violations(value, data, prefix)
                continue
            name = "from" if key == "from_" else str(key)
            if value == UNKNOWN:
                name = reported_name(key, key_position(data, key))
            yield from _violations(value, _child(data, key), f"{prefix}.{name}" if prefix else name)
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from _violations(message, data, prefix)
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


NOT_AN_OBJECT = {"record": None, "field": None, "code": "invalid_type", "message": "Verwacht een JSON-object."}


def request_json() -> dict[str, Any]:
    """The request's JSON object; {} when the request has no body.

    A body in another media type is refused (415), one that is no JSON (400), and JSON that is no
    object (422): never read as if nothing had been sent.
    """
    if not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise UnsupportedMediaType("Stuur het verzoek als application/json.")
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationFailed("Stuur een JSON-object.", [NOT_AN_OBJECT])
    return body


def load(schema: ma.Schema, body: Any) -> dict[str, Any]:
    """Validate a JSON body, or refuse it with every error at once (422 problem+json)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationFailed("Stuur een JSON-object.", [NOT_AN_OBJECT])
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ma.ValidationError as e:
        raise ValidationFailed("Het verzoek voldoet niet.", list(_violations(e.messages, body))) from None
    return loaded
