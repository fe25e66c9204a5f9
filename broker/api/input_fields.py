"""The fields of the API's request bodies. Every error carries a rule code and a Dutch message.

Free texts are screened for BSNs (a description must not become a copy of the data); no message
ever repeats one. Each field also says what it looks like in /openapi.json (`broker.api.field_docs`).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from typing import Any

import marshmallow as ma

from broker.timefmt import AmbiguousLocalTime, from_local
from schemas.screening import Lexicon, load_default_lexicon
from schemas.validation import Coded, CodedField, Text

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
