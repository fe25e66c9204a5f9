"""Input schemas' building blocks, shared by the API's bodies and the review's forms.

The fields every error of which carries a rule code and a Dutch message, the body schemas
(`BodySchema`, `EnvelopeSchema`: how a refusal is worded) and `violations`, which turns
marshmallow's errors into problem+json `errors[]`.

Free texts are screened for BSNs (a description must not become a copy of the data); no message
ever repeats one. Each field also says what it looks like in /openapi.json (`broker.api.field_docs`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, ClassVar

import marshmallow as ma

from broker.app.errors import BadRequest, BrokerError, ValidationFailed
from broker.app.timefmt import AmbiguousLocalTime, from_local
from schemas.fields import MESSAGES, Coded, CodedField, Text, key_position, reported_name
from schemas.screening import Lexicon, load_default_lexicon

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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


# -- bodies: a schema's refusal, and marshmallow's errors as problem+json errors -----------------


UNKNOWN = ["Unknown field."]  # marshmallow's message for a key the schema does not have


class BodySchema(ma.Schema):
    """A JSON request body: unknown keys refused, every error a 422 naming field and rule.

    No body at all is read as `{}` (its required fields then say what is missing).
    """

    class Meta:
        unknown = ma.RAISE

    EMPTY_IS_OBJECT: ClassVar[bool] = True
    UNSUPPORTED: ClassVar[str] = "Stuur het verzoek als application/json."
    UNKNOWN_MESSAGE: ClassVar[str] = "Dit veld is niet toegestaan."

    @classmethod
    def refusal(cls, errors: list[dict[str, Any]]) -> BrokerError:
        """The error for a body that does not fit."""
        return ValidationFailed("Het verzoek voldoet niet.", errors)

    @classmethod
    def not_an_object(cls) -> BrokerError:
        """The error for JSON that is no object."""
        return ValidationFailed(
            "Stuur een JSON-object.",
            [{"record": None, "field": None, "code": "invalid_type", "message": "Verwacht een JSON-object."}],
        )


class EnvelopeSchema(BodySchema):
    """The envelope of records (a submission, a correction, an ending) whose contents a service
    checks in its audited step: here only its keys are, and a wrong body is a 400."""

    EMPTY_IS_OBJECT = False
    UNKNOWN_MESSAGE = "Onbekend veld."
    UNKNOWN_DETAIL: ClassVar[str] = "Onbekende velden in het verzoek."

    @classmethod
    def refusal(cls, errors: list[dict[str, Any]]) -> BrokerError:
        return BadRequest(cls.UNKNOWN_DETAIL, errors)

    @classmethod
    def not_an_object(cls) -> BrokerError:
        return BadRequest("De body is geen geldig JSON-object.")


def _child(data: Any, key: Any) -> Any:
    if isinstance(data, Mapping):
        return data.get(key)
    if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
        return data[key]
    return None


def violations(
    messages: Any, data: Any = None, prefix: str = "", unknown_message: str = BodySchema.UNKNOWN_MESSAGE
) -> Iterable[dict[str, Any]]:
    """The errors in marshmallow's `messages` about the body (part) `data`; a key the caller made up
    is named by its position unless it is a plain identifier (`reported_name`)."""
    if isinstance(messages, Mapping):
        # In the order of the body: marshmallow collects unknown keys in a set.
        for key, value in sorted(messages.items(), key=lambda item: key_position(data, item[0])):
            if key == "_schema":
                yield from violations(value, data, prefix, unknown_message)
                continue
            name = "from" if key == "from_" else str(key)
            if value == UNKNOWN:
                name = reported_name(key, key_position(data, key))
            yield from violations(value, _child(data, key), f"{prefix}.{name}" if prefix else name, unknown_message)
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from violations(message, data, prefix, unknown_message)
    else:
        code = getattr(messages, "code", None)
        text = str(messages)
        if code is None:
            code, text = ("not_allowed", unknown_message) if text == UNKNOWN[0] else ("invalid", MESSAGES["invalid"])
        yield {"record": None, "field": prefix or None, "code": code, "message": text}
